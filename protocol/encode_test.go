package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestEncode(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"welcome", protocol.Welcome{Type: protocol.TypeWelcome, Session: "s1", User: "u1", Node: "n1", Protocol: protocol.Version},
			`{"type":"welcome","session":"s1","user":"u1","node":"n1","protocol":1}`},
		{"welcome name", protocol.Welcome{Type: protocol.TypeWelcome, Session: "s1", User: "u1", Name: "Ann", Node: "n1", Protocol: 1},
			`{"type":"welcome","session":"s1","user":"u1","name":"Ann","node":"n1","protocol":1}`},
		{"joined", protocol.Joined{Type: protocol.TypeJoined, ID: json.RawMessage(`"j1"`), Room: "r", Members: []string{"ann", "bob"}, Seq: 7, Epoch: "e"},
			`{"type":"joined","id":"j1","room":"r","members":["ann","bob"],"member_count":0,"seq":7,"epoch":"e"}`},
		{"joined partial", protocol.Joined{Type: protocol.TypeJoined, Room: "r", Members: []string{"ann", "bob"}, MemberCount: 5, MembersNext: "bob", Seq: 7, Epoch: "e"},
			`{"type":"joined","room":"r","members":["ann","bob"],"member_count":5,"members_next":"bob","seq":7,"epoch":"e"}`},
		{"joined nil members", protocol.Joined{Type: protocol.TypeJoined, Room: "r", Epoch: "e"},
			`{"type":"joined","room":"r","members":[],"member_count":0,"seq":0,"epoch":"e"}`},
		{"joined nil members pointer", &protocol.Joined{Type: protocol.TypeJoined, Room: "r", Epoch: "e"},
			`{"type":"joined","room":"r","members":[],"member_count":0,"seq":0,"epoch":"e"}`},
		{"joined recovered", protocol.Joined{Type: protocol.TypeJoined, Room: "r", Members: []string{}, Seq: 9, Epoch: "e", Recovered: &yes},
			`{"type":"joined","room":"r","members":[],"member_count":0,"seq":9,"epoch":"e","recovered":true}`},
		{"joined not recovered", protocol.Joined{Type: protocol.TypeJoined, Room: "r", Members: []string{"a"}, MemberCount: 1, Seq: 9, Epoch: "e", Recovered: &no},
			`{"type":"joined","room":"r","members":["a"],"member_count":1,"seq":9,"epoch":"e","recovered":false}`},
		{"left", protocol.Left{Type: protocol.TypeLeft, ID: json.RawMessage(`3`), Room: "r"},
			`{"type":"left","id":3,"room":"r"}`},
		{"left forbidden", protocol.Left{Type: protocol.TypeLeft, Room: "r", Reason: protocol.ReasonForbidden},
			`{"type":"left","room":"r","reason":"forbidden"}`},
		{"ack send", protocol.Ack{Type: protocol.TypeAck, ID: json.RawMessage(`"s"`), Seq: 12},
			`{"type":"ack","id":"s","seq":12}`},
		{"ack dm", protocol.Ack{Type: protocol.TypeAck, ID: json.RawMessage(`"d"`)},
			`{"type":"ack","id":"d"}`},
		{"presence", protocol.Presence{Type: protocol.TypePresence, Room: "r", Members: []string{"ann"}, MemberCount: 1},
			`{"type":"presence","room":"r","members":["ann"],"member_count":1}`},
		{"presence page", protocol.Presence{Type: protocol.TypePresence, ID: json.RawMessage(`4`), Room: "r", Members: []string{"bob"}, MemberCount: 3, MembersNext: "bob"},
			`{"type":"presence","id":4,"room":"r","members":["bob"],"member_count":3,"members_next":"bob"}`},
		{"presence nil members", protocol.Presence{Type: protocol.TypePresence, Room: "r"},
			`{"type":"presence","room":"r","members":[],"member_count":0}`},
		{"presence nil members pointer", &protocol.Presence{Type: protocol.TypePresence, Room: "r"},
			`{"type":"presence","room":"r","members":[],"member_count":0}`},
		{"history", protocol.History{Type: protocol.TypeHistory, ID: json.RawMessage(`1`), Room: "r", Epoch: "e",
			Messages: []json.RawMessage{json.RawMessage(`{"type":"message","room":"r","seq":1,"from":"a","data":1,"ts":5}`)}},
			`{"type":"history","id":1,"room":"r","epoch":"e","messages":[{"type":"message","room":"r","seq":1,"from":"a","data":1,"ts":5}]}`},
		{"history nil messages", protocol.History{Type: protocol.TypeHistory, Room: "r", Epoch: "e"},
			`{"type":"history","room":"r","epoch":"e","messages":[]}`},
		{"history nil messages pointer", &protocol.History{Type: protocol.TypeHistory, Room: "r", Epoch: "e"},
			`{"type":"history","room":"r","epoch":"e","messages":[]}`},
		{"pong", protocol.Pong{Type: protocol.TypePong, ID: json.RawMessage(`"p"`)}, `{"type":"pong","id":"p"}`},
		{"pong no id", protocol.Pong{Type: protocol.TypePong}, `{"type":"pong"}`},
		{"member joined", protocol.MemberEvent{Type: protocol.TypeMemberJoined, Room: "r", User: "ann"},
			`{"type":"member_joined","room":"r","user":"ann"}`},
		{"member left", protocol.MemberEvent{Type: protocol.TypeMemberLeft, Room: "r", User: "ann"},
			`{"type":"member_left","room":"r","user":"ann"}`},
		{"member change", protocol.MemberChange{Type: protocol.TypeMemberJoined, Room: "r", User: "ann", MemberCount: 3},
			`{"type":"member_joined","room":"r","user":"ann","member_count":3}`},
		{"member change to empty", protocol.MemberChange{Type: protocol.TypeMemberLeft, Room: "r", User: "ann"},
			`{"type":"member_left","room":"r","user":"ann","member_count":0}`},
		{"typing", protocol.MemberEvent{Type: protocol.TypeTyping, Room: "r", User: "ann"},
			`{"type":"typing","room":"r","user":"ann"}`},
		{"dm", protocol.DM{Type: protocol.TypeDM, From: "ann", To: "bob", Data: json.RawMessage(`{"t":"hi"}`), TS: 1700000000000},
			`{"type":"dm","from":"ann","to":"bob","data":{"t":"hi"},"ts":1700000000000}`},
		{"dm indented data", protocol.DM{Type: protocol.TypeDM, From: "a", To: "b", Data: json.RawMessage("{\n  \"t\": [1, 2]\n}\n"), TS: 1},
			`{"type":"dm","from":"a","to":"b","data":{"t":[1,2]},"ts":1}`},
		{"refreshed", protocol.Refreshed{Type: protocol.TypeRefreshed, ID: json.RawMessage(`"r"`), Exp: 1700003600},
			`{"type":"refreshed","id":"r","exp":1700003600}`},
		{"escaping", protocol.MemberEvent{Type: protocol.TypeMemberJoined, Room: "r", User: "a\"b\\c\nd\te\x01"},
			`{"type":"member_joined","room":"r","user":"a\"b\\c\nd\te\u0001"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(protocol.Encode(tt.v)); got != tt.want {
				t.Errorf("Encode(%+v)\n got %s\nwant %s", tt.v, got, tt.want)
			}
		})
	}
}

func TestEncodeError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   json.RawMessage
		err  *protocol.Error
		want string
	}{
		{json.RawMessage(`"s1"`), protocol.Errorf(protocol.CodeNotMember, "join the room first"),
			`{"type":"error","id":"s1","code":"not_member","message":"join the room first"}`},
		{json.RawMessage(`42`), protocol.Errorf(protocol.CodeRateLimited, "slow down"),
			`{"type":"error","id":42,"code":"rate_limited","message":"slow down"}`},
		{nil, protocol.Errorf(protocol.CodeBadJSON, "frame must be one JSON object"),
			`{"type":"error","code":"bad_json","message":"frame must be one JSON object"}`},
		{nil, protocol.Errorf(protocol.CodeInternal, "say \"hi\"\n"),
			`{"type":"error","code":"internal","message":"say \"hi\"\n"}`},
	}
	for _, tt := range tests {
		if got := string(protocol.EncodeError(tt.id, tt.err)); got != tt.want {
			t.Errorf("EncodeError(%s, %v)\n got %s\nwant %s", tt.id, tt.err, got, tt.want)
		}
	}
}

// TestEncodeDecodeError checks that a failed Decode yields an error frame
// that echoes the client's id.
func TestEncodeDecodeError(t *testing.T) {
	t.Parallel()
	req, err := protocol.Decode([]byte(`{"type":"join","id":"j7","room":"no room"}`))
	var e *protocol.Error
	if !errors.As(err, &e) {
		t.Fatalf("Decode error = %v, want a *protocol.Error", err)
	}
	var got protocol.ErrorFrame
	if err := json.Unmarshal(protocol.EncodeError(req.ID, e), &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != protocol.TypeError || string(got.ID) != `"j7"` || got.Code != protocol.CodeBadRequest || got.Message == "" {
		t.Errorf("error frame = %+v, want type error, id \"j7\", code bad_request and a message", got)
	}
}

// message is the decoded form of a message frame.
type message struct {
	Type string          `json:"type"`
	Room string          `json:"room"`
	Seq  uint64          `json:"seq"`
	From string          `json:"from"`
	Data json.RawMessage `json:"data"`
	TS   int64           `json:"ts"`
}

// decodeMessage decodes a message frame strictly: no unknown fields, no
// trailing data.
func decodeMessage(t testing.TB, frame []byte) message {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(frame))
	d.DisallowUnknownFields()
	var m message
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", frame, err)
	}
	if d.More() {
		t.Fatalf("frame %s has data after the message", frame)
	}
	return m
}

func TestMessageFrame(t *testing.T) {
	t.Parallel()
	tmpl, err := protocol.NewMessage("lobby", "ann", json.RawMessage(`{"text":"hi"}`), 1700000000000)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"message","room":"lobby","seq":42,"from":"ann","data":{"text":"hi"},"ts":1700000000000}`
	if got := string(tmpl.Frame(42)); got != want {
		t.Errorf("Frame(42)\n got %s\nwant %s", got, want)
	}
	for _, seq := range []uint64{0, 1, 42, math.MaxUint64} {
		got := decodeMessage(t, tmpl.Frame(seq))
		if got.Type != "message" || got.Room != "lobby" || got.Seq != seq || got.From != "ann" ||
			string(got.Data) != `{"text":"hi"}` || got.TS != 1700000000000 {
			t.Errorf("Frame(%d) decodes to %+v with data %s", seq, got, got.Data)
		}
	}
}

func TestMessageFrameIndependent(t *testing.T) {
	t.Parallel()
	tmpl, err := protocol.NewMessage("r", "u", json.RawMessage(`1`), 5)
	if err != nil {
		t.Fatal(err)
	}
	first := tmpl.Frame(1)
	second := tmpl.Frame(22222)
	if got, want := string(first), `{"type":"message","room":"r","seq":1,"from":"u","data":1,"ts":5}`; got != want {
		t.Errorf("Frame(1) after Frame(22222) = %s, want %s", got, want)
	}
	if got, want := string(second), `{"type":"message","room":"r","seq":22222,"from":"u","data":1,"ts":5}`; got != want {
		t.Errorf("Frame(22222) = %s, want %s", got, want)
	}
}

// TestMessageFrameConcurrent lets -race check that a template may be shared.
func TestMessageFrameConcurrent(t *testing.T) {
	t.Parallel()
	tmpl, err := protocol.NewMessage("r", "u", json.RawMessage(`{"a":1}`), 5)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				seq := uint64(i*100 + j)
				var m message
				if err := json.Unmarshal(tmpl.Frame(seq), &m); err != nil || m.Seq != seq {
					t.Errorf("Frame(%d) decodes to seq %d, error %v", seq, m.Seq, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestNewMessageData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want string // the data as it appears in the frame
	}{
		{"object", `{"a":1}`, `{"a":1}`},
		{"indented", "{\n\t\"a\": [\n\t\t1,\n\t\t2\n\t],\n\t\"b\": {}\n}\n", `{"a":[1,2],"b":{}}`},
		{"crlf", "[1,\r\n2]\r\n", `[1,2]`},
		{"padded scalar", "  \n 7 \n", `7`},
		{"string escapes kept", `"line1\nline2\t\"q\" \\ \u0001"`, `"line1\nline2\t\"q\" \\ \u0001"`},
		{"spaces in strings kept", `{"a b":" c "}`, `{"a b":" c "}`},
		{"html not escaped", `"<b>&</b>"`, `"<b>&</b>"`},
		{"unicode", `"héllo ☃ 😀"`, `"héllo ☃ 😀"`},
		{"null", `null`, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := protocol.NewMessage("r", "u", json.RawMessage(tt.data), 1)
			if err != nil {
				t.Fatalf("NewMessage(%q): %v", tt.data, err)
			}
			frame := tmpl.Frame(3)
			if bytes.ContainsAny(frame, "\r\n") {
				t.Errorf("frame %q contains a line break", frame)
			}
			if got := string(decodeMessage(t, frame).Data); got != tt.want {
				t.Errorf("data of %q = %s, want %s", tt.data, got, tt.want)
			}
		})
	}
}

func TestNewMessageInvalidData(t *testing.T) {
	t.Parallel()
	for _, data := range []string{"", " ", "{", `{"a":}`, `{"a":1} {"b":2}`, `1 2`, `nul`, "\"a\nb\"", `'x'`, `[1,]`} {
		if _, err := protocol.NewMessage("r", "u", json.RawMessage(data), 1); err == nil {
			t.Errorf("NewMessage(%q) succeeded, want an error", data)
		}
	}
}

func TestNewMessageEscapesNames(t *testing.T) {
	t.Parallel()
	room, from := "a\"b\\c\nd", "<u>\x00\u2028"
	tmpl, err := protocol.NewMessage(room, from, json.RawMessage(`1`), -5)
	if err != nil {
		t.Fatal(err)
	}
	frame := tmpl.Frame(1)
	if bytes.ContainsAny(frame, "\r\n\x00") {
		t.Errorf("frame %q contains a raw control character", frame)
	}
	got := decodeMessage(t, frame)
	if got.Room != room || got.From != from || got.TS != -5 {
		t.Errorf("frame %s decodes to room %q from %q ts %d, want %q %q -5", frame, got.Room, got.From, got.TS, room, from)
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	tmpl, err := protocol.NewMessage("lobby", "ann", json.RawMessage(`{"text":"hello, world","mentions":["bob"]}`), 1700000000000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	seq := uint64(1 << 32)
	for b.Loop() {
		seq++
		if len(tmpl.Frame(seq)) == 0 {
			b.Fatal("empty frame")
		}
	}
}

func BenchmarkNewMessage(b *testing.B) {
	data := json.RawMessage(`{"text":"hello, world","mentions":["bob"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.NewMessage("lobby", "ann", data, 1700000000000); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEncodeHistoryMatchesEncode(t *testing.T) {
	frames := [][]byte{
		protocol.MessageTemplate{Prefix: []byte(`{"type":"message","room":"r","seq":`), Suffix: []byte(`,"from":"a","data":"<b>","ts":1}`)}.Frame(1),
		[]byte(`{"type":"message","room":"r","seq":2,"from":"b","data":{"x":[1,2]},"ts":2}`),
	}
	for _, id := range []json.RawMessage{nil, json.RawMessage(`"h1"`), json.RawMessage(`7`)} {
		got := protocol.EncodeHistory(id, "r", "e1", frames)
		if n := protocol.HistorySize(id, "r", "e1", frames); n != len(got) {
			t.Errorf("HistorySize = %d, len = %d", n, len(got))
		}
		var a, b any
		msgs := []json.RawMessage{frames[0], frames[1]}
		want := protocol.Encode(protocol.History{Type: "history", ID: id, Room: "r", Epoch: "e1", Messages: msgs})
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("EncodeHistory produced invalid JSON %s: %v", got, err)
		}
		json.Unmarshal(want, &b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("EncodeHistory = %s, want the same as %s", got, want)
		}
		if bytes.Contains(got, []byte("\\u003c")) {
			t.Errorf("EncodeHistory re-escaped a frame: %s", got)
		}
	}
	if got := string(protocol.EncodeHistory(nil, "r", "e", nil)); got != `{"type":"history","room":"r","epoch":"e","messages":[]}` {
		t.Errorf("empty history = %s", got)
	}
}

// html is data full of the characters encoding/json escapes for HTML by
// default, six bytes each: the server must send them as the client did.
const html = `"<b>a & b</b> <script>x>y</script>"`

// TestEncodeNoHTMLEscaping checks that no frame the server builds escapes
// < > and &: not in data, ids, names nor error messages; and that every
// frame stays one line.
func TestEncodeNoHTMLEscaping(t *testing.T) {
	t.Parallel()
	tmpl, err := protocol.NewMessage("r", "<u&>", json.RawMessage("{\"t\":\n"+html+"}"), 1)
	if err != nil {
		t.Fatal(err)
	}
	dm, err := protocol.NewDM("<a>", "b&", json.RawMessage("[ "+html+" ]\n"), 2)
	if err != nil {
		t.Fatal(err)
	}
	id := json.RawMessage(`"<id&>"`)
	tests := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"message", tmpl.Frame(1), `{"type":"message","room":"r","seq":1,"from":"<u&>","data":{"t":` + html + `},"ts":1}`},
		{"dm", dm, `{"type":"dm","from":"<a>","to":"b&","data":[` + html + `],"ts":2}`},
		{"encoded dm", protocol.Encode(protocol.DM{Type: protocol.TypeDM, From: "a", To: "b", Data: json.RawMessage(html), TS: 3}),
			`{"type":"dm","from":"a","to":"b","data":` + html + `,"ts":3}`},
		{"error", protocol.EncodeError(id, protocol.Errorf(protocol.CodeBadRequest, "a < b && b > c")),
			`{"type":"error","id":"<id&>","code":"bad_request","message":"a < b && b > c"}`},
		{"pong", protocol.Encode(protocol.Pong{Type: protocol.TypePong, ID: id}), `{"type":"pong","id":"<id&>"}`},
		{"member", protocol.Encode(protocol.MemberEvent{Type: protocol.TypeTyping, Room: "r", User: "<&>"}),
			`{"type":"typing","room":"r","user":"<&>"}`},
		{"welcome", protocol.Encode(protocol.Welcome{Type: protocol.TypeWelcome, Session: "s", User: "u", Name: "Tom & <Jerry>", Node: "n", Protocol: 1}),
			`{"type":"welcome","session":"s","user":"u","name":"Tom & <Jerry>","node":"n","protocol":1}`},
		{"history", protocol.EncodeHistory(id, "r", "e", [][]byte{tmpl.Frame(1)}),
			`{"type":"history","id":"<id&>","room":"r","epoch":"e","messages":[` + string(tmpl.Frame(1)) + `]}`},
	}
	for _, tt := range tests {
		if got := string(tt.frame); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
		if bytes.ContainsAny(tt.frame, "\r\n") {
			t.Errorf("%s: frame %q is not one line", tt.name, tt.frame)
		}
	}
}

// TestEncodeOneLine checks that strings with line breaks and control
// characters stay escaped, so that a batch of frames joined with '\n'
// splits back into the same frames.
func TestEncodeOneLine(t *testing.T) {
	t.Parallel()
	odd := "a\nb\r\u2028\u2029\x00\t\"\\"
	frames := [][]byte{
		protocol.EncodeError(nil, protocol.Errorf(protocol.CodeInternal, odd)),
		protocol.Encode(protocol.MemberEvent{Type: protocol.TypeMemberJoined, Room: odd, User: odd}),
	}
	if dm, err := protocol.NewDM(odd, odd, json.RawMessage("\"a\\nb\"\n"), 1); err != nil {
		t.Fatal(err)
	} else {
		frames = append(frames, dm)
	}
	for _, f := range frames {
		if bytes.ContainsAny(f, "\r\n\x00") {
			t.Errorf("frame %q contains a raw line break or control character", f)
		}
		if !json.Valid(f) {
			t.Errorf("frame %q is not valid JSON", f)
		}
	}
}

func TestNewDMInvalidData(t *testing.T) {
	t.Parallel()
	for _, data := range []string{"", " ", "{", `{"a":}`, `1 2`, "\"a\nb\"", `[1,]`} {
		if _, err := protocol.NewDM("a", "b", json.RawMessage(data), 1); err == nil {
			t.Errorf("NewDM(%q) succeeded, want an error", data)
		}
	}
}

// TestAnnounced: member changes are announced while the room has at most
// MemberEventsMax members before or after the change, so a client sees the
// room cross the bound in both directions.
func TestAnnounced(t *testing.T) {
	t.Parallel()
	const max = protocol.MemberEventsMax
	tests := []struct {
		joined bool
		count  int
		want   bool
	}{
		{true, 1, true},
		{true, max, true},
		{true, max + 1, true}, // from max to max+1: the room becomes large
		{true, max + 2, false},
		{false, 0, true},
		{false, max, true}, // from max+1 to max: the room is small again
		{false, max + 1, false},
	}
	for _, tt := range tests {
		if got := protocol.Announced(tt.joined, tt.count); got != tt.want {
			t.Errorf("Announced(joined %v, count %d) = %v, want %v", tt.joined, tt.count, got, tt.want)
		}
	}
}
