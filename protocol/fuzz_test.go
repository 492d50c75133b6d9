package protocol_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/protocol"
)

// seed is a client frame from testdata/frames. Its file is named
// <outcome>.<description>.json, where outcome is "ok" or the error code
// Decode must return.
type seed struct {
	name, outcome string
	frame         []byte
}

func seeds(t testing.TB) []seed {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "frames", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no seed frames in testdata/frames")
	}
	var ss []seed
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(p)
		outcome, _, _ := strings.Cut(name, ".")
		ss = append(ss, seed{name: name, outcome: outcome, frame: b})
	}
	return ss
}

func TestDecodeSeeds(t *testing.T) {
	t.Parallel()
	for _, s := range seeds(t) {
		req, err := protocol.Decode(s.frame)
		got := code(t, err)
		if got == "" {
			got = "ok"
			checkRequest(t, req)
		}
		if got != s.outcome {
			t.Errorf("%s: Decode outcome %s (%v), want %s", s.name, got, err, s.outcome)
		}
	}
}

// FuzzDecode checks that Decode never panics, that what it accepts is valid
// and survives a round trip, and that it fails only with client error codes.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.frame)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := protocol.Decode(b)
		if err != nil {
			checkDecodeError(t, req, err)
			return
		}
		checkRequest(t, req)
		checkRoundTrip(t, req)
		checkEcho(t, req)
	})
}

// checkEcho checks the round trip through the server's encoders: the frames
// answering or relaying req carry its id byte for byte and its data exactly
// as sent, only compacted.
func checkEcho(t testing.TB, req protocol.Request) {
	t.Helper()
	if req.ID != nil {
		var e protocol.ErrorFrame
		frame := protocol.EncodeError(req.ID, protocol.Errorf(protocol.CodeRateLimited, "slow <down> & retry"))
		if err := json.Unmarshal(frame, &e); err != nil || !bytes.Equal(e.ID, req.ID) || e.Message != "slow <down> & retry" {
			t.Errorf("error frame %s for id %s: id %s, message %q, error %v", frame, req.ID, e.ID, e.Message, err)
		}
	}
	var frame []byte
	switch req.Type {
	case protocol.TypeSend:
		tmpl, err := protocol.NewMessage(req.Room, "u", req.Data, 1)
		if err != nil {
			t.Fatalf("NewMessage of decoded data %s: %v", req.Data, err)
		}
		frame = tmpl.Frame(1)
	case protocol.TypeEdit:
		tmpl, err := protocol.NewEdited(req.Room, "u", req.Seq, req.Data, 1)
		if err != nil {
			t.Fatalf("NewEdited of decoded data %s: %v", req.Data, err)
		}
		frame = tmpl.Frame(req.Seq + 1)
	case protocol.TypeDM:
		var err error
		if frame, err = protocol.NewDM("u", req.To, req.Data, 1); err != nil {
			t.Fatalf("NewDM of decoded data %s: %v", req.Data, err)
		}
	default:
		return
	}
	var m struct{ Data json.RawMessage }
	if err := json.Unmarshal(frame, &m); err != nil {
		t.Fatalf("frame %q: %v", frame, err)
	}
	if got, want := string(m.Data), compact(t, req.Data); got != want {
		t.Errorf("%s frame carries data %s, want %s", req.Type, got, want)
	}
	if bytes.ContainsAny(frame, "\r\n") {
		t.Errorf("frame %q is not one line", frame)
	}
}

func checkDecodeError(t testing.TB, req protocol.Request, err error) {
	t.Helper()
	switch c := code(t, err); c {
	case protocol.CodeBadJSON:
		if req.ID != nil {
			t.Errorf("bad_json error %v with ID %s: no ID can be read from bad JSON", err, req.ID)
		}
	case protocol.CodeBadRequest, protocol.CodeUnknownType:
	default:
		t.Errorf("Decode error code %q (%v) is not a client frame error code", c, err)
	}
	if req.ID != nil {
		checkID(t, req.ID)
	}
}

// checkRequest checks that req obeys the rules of its type and sets no field
// its type does not use.
func checkRequest(t testing.TB, req protocol.Request) {
	t.Helper()
	if req.ID != nil {
		checkID(t, req.ID)
	}
	unused := flatten(req)
	unused.Type, unused.ID = "", ""
	switch req.Type {
	case protocol.TypeJoin:
		checkRoom(t, req)
		if req.HasSince && (req.Epoch == "" || len(req.Epoch) > protocol.MaxEpochLen) {
			t.Errorf("join with since has epoch %q", req.Epoch)
		}
		unused.Room, unused.HasSince, unused.Since, unused.Epoch = "", false, 0, ""
	case protocol.TypeLeave, protocol.TypeTyping:
		checkRoom(t, req)
		unused.Room = ""
	case protocol.TypePresence:
		checkRoom(t, req)
		if req.Limit < 1 || req.Limit > protocol.MaxPresenceLimit {
			t.Errorf("presence limit %d out of 1-%d", req.Limit, protocol.MaxPresenceLimit)
		}
		if req.After != "" && !protocol.ValidUser(req.After) {
			t.Errorf("presence after invalid user %q", req.After)
		}
		unused.Room, unused.Limit, unused.After = "", 0, ""
	case protocol.TypeSend:
		checkRoom(t, req)
		checkData(t, req)
		unused.Room, unused.Data = "", ""
	case protocol.TypeDM:
		if !protocol.ValidUser(req.To) {
			t.Errorf("dm to invalid user %q", req.To)
		}
		checkData(t, req)
		unused.To, unused.Data = "", ""
	case protocol.TypeHistory:
		checkRoom(t, req)
		if req.Limit < 1 || req.Limit > protocol.MaxHistoryLimit {
			t.Errorf("history limit %d out of 1-%d", req.Limit, protocol.MaxHistoryLimit)
		}
		unused.Room, unused.Limit, unused.Before = "", 0, 0
	case protocol.TypeRefresh:
		if req.Token == "" || len(req.Token) > protocol.MaxTokenLen {
			t.Errorf("refresh token of %d bytes", len(req.Token))
		}
		unused.Token = ""
	case protocol.TypeEdit:
		checkRoom(t, req)
		checkData(t, req)
		if req.Seq == 0 {
			t.Errorf("edit of seq 0")
		}
		unused.Room, unused.Data, unused.Seq = "", "", 0
	case protocol.TypeDelete:
		checkRoom(t, req)
		if req.Seq == 0 {
			t.Errorf("delete of seq 0")
		}
		unused.Room, unused.Seq = "", 0
	case protocol.TypeRead:
		checkRoom(t, req)
		if req.Seq == 0 {
			t.Errorf("read of seq 0")
		}
		unused.Room, unused.Seq = "", 0
	case protocol.TypeFreeze, protocol.TypeUnfreeze:
		checkRoom(t, req)
		unused.Room = ""
	case protocol.TypeMute, protocol.TypeUnmute, protocol.TypeBan, protocol.TypeUnban:
		checkModeration(t, req)
		unused.Room, unused.User, unused.Duration, unused.Reason = "", "", 0, ""
	case protocol.TypePing:
	default:
		t.Fatalf("Decode accepted type %q, not a client frame type", req.Type)
	}
	if unused != (request{}) {
		t.Errorf("%s request sets fields it does not use: %+v", req.Type, unused)
	}
}

// checkModeration checks a mute's, unmute's, ban's or unban's fields: a
// duration and a reason only where they belong, and within bounds.
func checkModeration(t testing.TB, req protocol.Request) {
	t.Helper()
	checkRoom(t, req)
	if !protocol.ValidUser(req.User) {
		t.Errorf("%s of invalid user %q", req.Type, req.User)
	}
	timed := req.Type == protocol.TypeMute || req.Type == protocol.TypeBan
	if req.Duration < 0 || req.Duration > protocol.MaxModDuration || !timed && req.Duration != 0 {
		t.Errorf("%s with duration %v", req.Type, req.Duration)
	}
	if len(req.Reason) > protocol.MaxReasonLen || req.Type != protocol.TypeBan && req.Reason != "" {
		t.Errorf("%s with reason of %d bytes", req.Type, len(req.Reason))
	}
}

func checkRoom(t testing.TB, req protocol.Request) {
	t.Helper()
	if !protocol.ValidRoom(req.Room) {
		t.Errorf("%s with invalid room %q", req.Type, req.Room)
	}
}

func checkData(t testing.TB, req protocol.Request) {
	t.Helper()
	if !json.Valid(req.Data) || !utf8.Valid(req.Data) || string(req.Data) == "null" {
		t.Errorf("%s with data %q: want valid UTF-8 JSON, not null", req.Type, req.Data)
	}
}

// checkID checks that id is a JSON string of 1-64 characters or a JSON number
// of at most 64 bytes, which a reply may echo verbatim.
func checkID(t testing.TB, id json.RawMessage) {
	t.Helper()
	if !json.Valid(id) || !utf8.Valid(id) {
		t.Errorf("ID %q is not valid UTF-8 JSON", id)
		return
	}
	switch v := decodeAny(t, id).(type) {
	case string:
		if n := utf8.RuneCountInString(v); n < 1 || n > protocol.MaxIDLen {
			t.Errorf("string ID %s has %d characters, want 1-%d", id, n, protocol.MaxIDLen)
		}
	case json.Number:
		if len(id) > protocol.MaxIDLen {
			t.Errorf("number ID %s has %d bytes, want at most %d", id, len(id), protocol.MaxIDLen)
		}
	default:
		t.Errorf("ID %s is a %T, want a string or a number", id, v)
	}
}

// FuzzNewMessage checks that NewMessage takes exactly the valid JSON data
// and that its frames are one line of JSON that carries the data unchanged.
func FuzzNewMessage(f *testing.F) {
	f.Add("lobby", "ann", []byte(`{"text":"hi"}`), int64(1700000000000), uint64(42))
	f.Add("a:b", "u", []byte("{\n  \"a\": [1, 2],\n  \"b\": \"x\\ny\"\n}\n"), int64(-1), uint64(0))
	f.Add("r\"\n", "<u>", []byte(` "\u2028 \"q\"" `), int64(0), uint64(1<<64-1))
	f.Add("r", "u", []byte(`[1,]`), int64(1), uint64(1))
	f.Add("r", "u", []byte(`1 2`), int64(1), uint64(1))
	for _, s := range seeds(f) {
		var w struct{ Data json.RawMessage }
		if json.Unmarshal(s.frame, &w) == nil && w.Data != nil {
			f.Add("r", "u", []byte(w.Data), int64(1), uint64(7))
		}
	}
	f.Fuzz(func(t *testing.T, room, from string, data []byte, ts int64, seq uint64) {
		tmpl, err := protocol.NewMessage(room, from, data, ts)
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("NewMessage accepted invalid data %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("NewMessage(%q): %v", data, err)
		}
		frame := tmpl.Frame(seq)
		if bytes.ContainsAny(frame, "\r\n") {
			t.Errorf("frame %q is not one line", frame)
		}
		if utf8.Valid(data) && !utf8.Valid(frame) {
			t.Errorf("frame %q of UTF-8 data is not UTF-8", frame)
		}
		m := decodeMessage(t, frame)
		if m.Type != protocol.TypeMessage || m.Seq != seq || m.TS != ts {
			t.Errorf("frame %s decodes to type %q seq %d ts %d, want message %d %d", frame, m.Type, m.Seq, m.TS, seq, ts)
		}
		if utf8.ValidString(room) && m.Room != room {
			t.Errorf("frame %s has room %q, want %q", frame, m.Room, room)
		}
		if utf8.ValidString(from) && m.From != from {
			t.Errorf("frame %s has from %q, want %q", frame, m.From, from)
		}
		if got, want := decodeAny(t, m.Data), decodeAny(t, data); !reflect.DeepEqual(got, want) {
			t.Errorf("frame %s has data %#v, want %#v", frame, got, want)
		}
		if got, want := string(m.Data), compact(t, data); got != want {
			t.Errorf("frame %s has data %s, want it as sent, compacted: %s", frame, got, want)
		}
	})
}

// FuzzNewDM checks that NewDM takes exactly the valid JSON data and that its
// frames are one line of JSON that carries the data as sent, compacted.
func FuzzNewDM(f *testing.F) {
	f.Add("ann", "bob", []byte(`{"text":"hi"}`), int64(1700000000000))
	f.Add("<a>", "b&", []byte("[ \"<b>&amp;</b>\" ]\n"), int64(-1))
	f.Add("a\"\n", "\u2028", []byte(` "\u2028 \"q\"" `), int64(0))
	f.Add("a", "b", []byte(`[1,]`), int64(1))
	for _, s := range seeds(f) {
		var w struct{ Data json.RawMessage }
		if json.Unmarshal(s.frame, &w) == nil && w.Data != nil {
			f.Add("a", "b", []byte(w.Data), int64(1))
		}
	}
	f.Fuzz(func(t *testing.T, from, to string, data []byte, ts int64) {
		frame, err := protocol.NewDM(from, to, data, ts)
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("NewDM accepted invalid data %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("NewDM(%q): %v", data, err)
		}
		if bytes.ContainsAny(frame, "\r\n") {
			t.Errorf("frame %q is not one line", frame)
		}
		d := json.NewDecoder(bytes.NewReader(frame))
		d.DisallowUnknownFields()
		var m protocol.DM
		if err := d.Decode(&m); err != nil || d.More() {
			t.Fatalf("frame %q is not one dm: %v", frame, err)
		}
		if m.Type != protocol.TypeDM || m.TS != ts {
			t.Errorf("frame %s decodes to type %q ts %d, want dm %d", frame, m.Type, m.TS, ts)
		}
		if utf8.ValidString(from) && m.From != from || utf8.ValidString(to) && m.To != to {
			t.Errorf("frame %s is from %q to %q, want %q %q", frame, m.From, m.To, from, to)
		}
		if got, want := string(m.Data), compact(t, data); got != want {
			t.Errorf("frame %s has data %s, want it as sent, compacted: %s", frame, got, want)
		}
		want, _ := json.Marshal(protocol.DM{Type: protocol.TypeDM, From: from, To: to, Data: data, TS: ts})
		var a, b any
		json.Unmarshal(frame, &a)
		json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("NewDM = %s, want the same value as %s", frame, want)
		}
	})
}

// decodeAny decodes raw JSON keeping numbers as written.
func decodeAny(t testing.TB, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	return v
}
