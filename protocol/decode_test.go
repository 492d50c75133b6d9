package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// request is a comparable copy of protocol.Request, with raw JSON as strings.
type request struct {
	Type     string
	ID       string
	Room     string
	To       string
	Data     string
	Limit    int
	Before   uint64
	After    string
	HasSince bool
	Since    uint64
	Epoch    string
	Token    string
	Seq      uint64
	User     string
	Duration time.Duration
	Reason   string
}

func flatten(r protocol.Request) request {
	return request{
		Type: r.Type, ID: string(r.ID), Room: r.Room, To: r.To, Data: string(r.Data),
		Limit: r.Limit, Before: r.Before, After: r.After, HasSince: r.HasSince, Since: r.Since,
		Epoch: r.Epoch, Token: r.Token, Seq: r.Seq,
		User: r.User, Duration: r.Duration, Reason: r.Reason,
	}
}

// code returns the code of err, which must be nil or a *protocol.Error.
func code(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *protocol.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
	}
	if e.Message == "" {
		t.Errorf("error %q has no message", e.Code)
	}
	return e.Code
}

var (
	room64  = strings.Repeat("r", 64)
	user32  = strings.Repeat("u", 32)
	id64    = strings.Repeat("i", 64)
	token4k = strings.Repeat("t", protocol.MaxTokenLen)
)

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want request
	}{
		{"join", `{"type":"join","room":"lobby"}`, request{Type: "join", Room: "lobby"}},
		{"join every room char", `{"type":"join","room":"aZ0_.:-"}`, request{Type: "join", Room: "aZ0_.:-"}},
		{"join room 64", `{"type":"join","room":"` + room64 + `"}`, request{Type: "join", Room: room64}},
		{"join since", `{"type":"join","room":"r","since":41,"epoch":"e1"}`,
			request{Type: "join", Room: "r", HasSince: true, Since: 41, Epoch: "e1"}},
		{"join since 0", `{"type":"join","room":"r","since":0,"epoch":"e1"}`,
			request{Type: "join", Room: "r", HasSince: true, Epoch: "e1"}},
		{"join epoch 64", `{"type":"join","room":"r","since":1,"epoch":"` + strings.Repeat("e", 64) + `"}`,
			request{Type: "join", Room: "r", HasSince: true, Since: 1, Epoch: strings.Repeat("e", 64)}},
		{"join since null", `{"type":"join","room":"r","since":null,"epoch":null}`, request{Type: "join", Room: "r"}},
		{"leave", `{"type":"leave","room":"r"}`, request{Type: "leave", Room: "r"}},
		{"send object", `{"type":"send","room":"r","data":{"text":"hi"}}`,
			request{Type: "send", Room: "r", Data: `{"text":"hi"}`}},
		{"send string", `{"type":"send","room":"r","data":"hi"}`, request{Type: "send", Room: "r", Data: `"hi"`}},
		{"send number", `{"type":"send","room":"r","data":-1.5e3}`, request{Type: "send", Room: "r", Data: `-1.5e3`}},
		{"send false", `{"type":"send","room":"r","data":false}`, request{Type: "send", Room: "r", Data: `false`}},
		{"send empty array", `{"type":"send","room":"r","data":[]}`, request{Type: "send", Room: "r", Data: `[]`}},
		{"send data first", `{"data":{"a":[1,{"b":null}]},"room":"r","type":"send"}`,
			request{Type: "send", Room: "r", Data: `{"a":[1,{"b":null}]}`}},
		{"typing", `{"type":"typing","room":"r"}`, request{Type: "typing", Room: "r"}},
		{"dm", `{"type":"dm","to":"ann","data":{"t":1}}`, request{Type: "dm", To: "ann", Data: `{"t":1}`}},
		{"dm every user char", `{"type":"dm","to":"aZ0_.-","data":1}`, request{Type: "dm", To: "aZ0_.-", Data: `1`}},
		{"dm user 32", `{"type":"dm","to":"` + user32 + `","data":1}`, request{Type: "dm", To: user32, Data: `1`}},
		{"presence", `{"type":"presence","room":"r"}`, request{Type: "presence", Room: "r", Limit: 1000}},
		{"presence page", `{"type":"presence","room":"r","after":"ann","limit":10}`,
			request{Type: "presence", Room: "r", After: "ann", Limit: 10}},
		{"presence limit 1", `{"type":"presence","room":"r","limit":1}`, request{Type: "presence", Room: "r", Limit: 1}},
		{"presence limit 1000", `{"type":"presence","room":"r","limit":1000}`, request{Type: "presence", Room: "r", Limit: 1000}},
		{"presence after empty", `{"type":"presence","room":"r","after":""}`, request{Type: "presence", Room: "r", Limit: 1000}},
		{"presence after 32", `{"type":"presence","room":"r","after":"` + user32 + `"}`,
			request{Type: "presence", Room: "r", After: user32, Limit: 1000}},
		{"presence nulls", `{"type":"presence","room":"r","after":null,"limit":null}`,
			request{Type: "presence", Room: "r", Limit: 1000}},
		{"history ignores after", `{"type":"history","room":"r","after":"!"}`, request{Type: "history", Room: "r", Limit: 50}},
		{"history default", `{"type":"history","room":"r"}`, request{Type: "history", Room: "r", Limit: 50}},
		{"history limit 1", `{"type":"history","room":"r","limit":1}`, request{Type: "history", Room: "r", Limit: 1}},
		{"history limit 100", `{"type":"history","room":"r","limit":100}`, request{Type: "history", Room: "r", Limit: 100}},
		{"history before", `{"type":"history","room":"r","limit":10,"before":17}`,
			request{Type: "history", Room: "r", Limit: 10, Before: 17}},
		{"history before 0", `{"type":"history","room":"r","before":0}`, request{Type: "history", Room: "r", Limit: 50}},
		{"history before max", `{"type":"history","room":"r","before":18446744073709551615}`,
			request{Type: "history", Room: "r", Limit: 50, Before: 1<<64 - 1}},
		{"history nulls", `{"type":"history","room":"r","limit":null,"before":null}`,
			request{Type: "history", Room: "r", Limit: 50}},
		{"ping", `{"type":"ping"}`, request{Type: "ping"}},
		{"refresh", `{"type":"refresh","token":"abc.def"}`, request{Type: "refresh", Token: "abc.def"}},
		{"read", `{"type":"read","room":"lobby","seq":42}`, request{Type: "read", Room: "lobby", Seq: 42}},
		{"read with id", `{"type":"read","id":"r1","room":"r","seq":1}`, request{Type: "read", ID: `"r1"`, Room: "r", Seq: 1}},
		{"read seq max", `{"type":"read","room":"r","seq":18446744073709551615}`, request{Type: "read", Room: "r", Seq: 1<<64 - 1}},
		{"seq of other types ignored", `{"type":"typing","room":"r","seq":5}`, request{Type: "typing", Room: "r"}},
		{"refresh token max", `{"type":"refresh","token":"` + token4k + `"}`, request{Type: "refresh", Token: token4k}},

		{"id string", `{"type":"ping","id":"p1"}`, request{Type: "ping", ID: `"p1"`}},
		{"id string 64", `{"type":"ping","id":"` + id64 + `"}`, request{Type: "ping", ID: `"` + id64 + `"`}},
		{"id unicode 64 chars", `{"type":"ping","id":"` + strings.Repeat("é", 64) + `"}`,
			request{Type: "ping", ID: `"` + strings.Repeat("é", 64) + `"`}},
		{"id escapes 64 chars", `{"type":"ping","id":"` + strings.Repeat(`\u00e9`, 64) + `"}`,
			request{Type: "ping", ID: `"` + strings.Repeat(`\u00e9`, 64) + `"`}},
		{"id quote", `{"type":"ping","id":"a\"b"}`, request{Type: "ping", ID: `"a\"b"`}},
		{"id number", `{"type":"ping","id":7}`, request{Type: "ping", ID: `7`}},
		{"id zero", `{"type":"ping","id":0}`, request{Type: "ping", ID: `0`}},
		{"id negative float", `{"type":"ping","id":-1.5e3}`, request{Type: "ping", ID: `-1.5e3`}},
		{"id number 64", `{"type":"ping","id":` + strings.Repeat("9", 64) + `}`,
			request{Type: "ping", ID: strings.Repeat("9", 64)}},

		{"whitespace", " \r\n\t{ \"type\" : \"ping\" , \"id\" : 1 }\n", request{Type: "ping", ID: `1`}},
		{"unknown fields", `{"type":"ping","v":2,"extra":{"x":[1,2]},"flag":true}`, request{Type: "ping"}},
		{"fields of other types ignored", `{"type":"leave","room":"r","to":"!!","data":null,"token":""}`,
			request{Type: "leave", Room: "r"}},
		{"ping ignores room", `{"type":"ping","room":"not a room"}`, request{Type: "ping"}},
		{"unicode in data", `{"type":"send","room":"r","data":"héllo ☃ 😀"}`,
			request{Type: "send", Room: "r", Data: `"héllo ☃ 😀"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := protocol.Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%s): %v", tt.in, err)
			}
			if got := flatten(req); got != tt.want {
				t.Errorf("Decode(%s)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	const (
		badJSON    = protocol.CodeBadJSON
		badRequest = protocol.CodeBadRequest
		unknown    = protocol.CodeUnknownType
	)
	tests := []struct {
		name string
		in   string
		code string
		id   string // the ID the failed Request must still carry
	}{
		// Not one JSON object.
		{"empty", ``, badJSON, ""},
		{"blank", " \n", badJSON, ""},
		{"array", `[]`, badJSON, ""},
		{"array of frame", `[{"type":"ping"}]`, badJSON, ""},
		{"string", `"x"`, badJSON, ""},
		{"number", `1`, badJSON, ""},
		{"null", `null`, badJSON, ""},
		{"null padded", ` null `, badJSON, ""},
		{"true", `true`, badJSON, ""},
		{"two objects", `{"type":"ping"} {"type":"ping"}`, badJSON, ""},
		{"trailing garbage", `{"type":"ping"}x`, badJSON, ""},
		{"unterminated", `{"type":"ping"`, badJSON, ""},
		{"unterminated with id", `{"type":"ping","id":"a"`, badJSON, ""},
		{"trailing comma", `{"type":"ping",}`, badJSON, ""},
		{"single quotes", `{'type':'ping'}`, badJSON, ""},
		{"bare key", `{type:"ping"}`, badJSON, ""},
		{"raw newline in string", "{\"type\":\"ping\",\"id\":\"a\nb\"}", badJSON, ""},
		{"bad escape", `{"type":"ping","id":"\x"}`, badJSON, ""},
		{"invalid utf-8 in id", "{\"type\":\"ping\",\"id\":\"\xff\"}", badJSON, ""},
		{"invalid utf-8 in data", "{\"type\":\"send\",\"room\":\"r\",\"data\":\"\xc3\x28\"}", badJSON, ""},
		{"byte order mark", "\xef\xbb\xbf{\"type\":\"ping\"}", badJSON, ""},

		// Type.
		{"no type", `{}`, badRequest, ""},
		{"no type with id", `{"id":"a"}`, badRequest, `"a"`},
		{"type null", `{"type":null}`, badRequest, ""},
		{"type number", `{"type":1,"id":2}`, badRequest, `2`},
		{"type array", `{"type":["join"]}`, badRequest, ""},
		{"unknown type", `{"type":"nope","id":"u"}`, unknown, `"u"`},
		{"type empty", `{"type":""}`, unknown, ""},
		{"type wrong case", `{"type":"JOIN","room":"r"}`, unknown, ""},
		{"server type message", `{"type":"message","room":"r"}`, unknown, ""},
		{"server type pong", `{"type":"pong"}`, unknown, ""},
		{"server type welcome", `{"type":"welcome"}`, unknown, ""},

		// Id.
		{"id object", `{"type":"ping","id":{}}`, badRequest, ""},
		{"id array", `{"type":"ping","id":["a"]}`, badRequest, ""},
		{"id true", `{"type":"ping","id":true}`, badRequest, ""},
		{"id false", `{"type":"ping","id":false}`, badRequest, ""},
		{"id null", `{"type":"ping","id":null}`, badRequest, ""},
		{"id empty", `{"type":"ping","id":""}`, badRequest, ""},
		{"id string 65", `{"type":"ping","id":"` + id64 + `i"}`, badRequest, ""},
		{"id unicode 65 chars", `{"type":"ping","id":"` + strings.Repeat("é", 65) + `"}`, badRequest, ""},
		{"id number 65", `{"type":"ping","id":` + strings.Repeat("9", 65) + `}`, badRequest, ""},
		{"invalid id hides type error", `{"type":"send","id":{},"room":5}`, badRequest, ""},

		// Rooms, for every type that has one.
		{"join no room", `{"type":"join"}`, badRequest, ""},
		{"join room null", `{"type":"join","room":null}`, badRequest, ""},
		{"join room empty", `{"type":"join","room":""}`, badRequest, ""},
		{"join room 65", `{"type":"join","room":"` + room64 + `r"}`, badRequest, ""},
		{"join room space", `{"type":"join","room":"a b"}`, badRequest, ""},
		{"join room slash", `{"type":"join","room":"a/b"}`, badRequest, ""},
		{"join room unicode", `{"type":"join","room":"café"}`, badRequest, ""},
		{"join room escaped unicode", `{"type":"join","room":"caf\u00e9"}`, badRequest, ""},
		{"join room NUL", `{"type":"join","room":"a\u0000"}`, badRequest, ""},
		{"join room number", `{"type":"join","room":5,"id":"j"}`, badRequest, `"j"`},
		{"join room object", `{"type":"join","room":{"name":"r"}}`, badRequest, ""},
		{"leave no room", `{"type":"leave"}`, badRequest, ""},
		{"leave room bad", `{"type":"leave","room":"a b"}`, badRequest, ""},
		{"send no room", `{"type":"send","data":1}`, badRequest, ""},
		{"send room bad", `{"type":"send","room":"ü","data":1}`, badRequest, ""},
		{"typing no room", `{"type":"typing"}`, badRequest, ""},
		{"typing room bad", `{"type":"typing","room":""}`, badRequest, ""},
		{"presence no room", `{"type":"presence"}`, badRequest, ""},
		{"presence room bad", `{"type":"presence","room":"` + room64 + `x"}`, badRequest, ""},
		{"history no room", `{"type":"history"}`, badRequest, ""},
		{"history room bad", `{"type":"history","room":"#r"}`, badRequest, ""},

		// Read.
		{"read no room", `{"type":"read","seq":1}`, badRequest, ""},
		{"read room bad", `{"type":"read","room":"a b","seq":1}`, badRequest, ""},
		{"read no seq", `{"type":"read","room":"r","id":3}`, badRequest, `3`},
		{"read seq null", `{"type":"read","room":"r","seq":null}`, badRequest, ""},
		{"read seq 0", `{"type":"read","room":"r","seq":0}`, badRequest, ""},
		{"read seq negative", `{"type":"read","room":"r","seq":-1}`, badRequest, ""},
		{"read seq string", `{"type":"read","room":"r","seq":"4","id":"x"}`, badRequest, `"x"`},
		{"read seq fraction", `{"type":"read","room":"r","seq":1.5}`, badRequest, ""},
		{"read seq too large", `{"type":"read","room":"r","seq":18446744073709551616}`, badRequest, ""},

		// Join recovery.
		{"since without epoch", `{"type":"join","room":"r","since":4}`, badRequest, ""},
		{"epoch without since", `{"type":"join","room":"r","epoch":"e"}`, badRequest, ""},
		{"epoch empty", `{"type":"join","room":"r","since":4,"epoch":""}`, badRequest, ""},
		{"epoch 65", `{"type":"join","room":"r","since":4,"epoch":"` + strings.Repeat("e", 65) + `"}`, badRequest, ""},
		{"epoch number", `{"type":"join","room":"r","since":4,"epoch":5}`, badRequest, ""},
		{"since negative", `{"type":"join","room":"r","since":-1,"epoch":"e"}`, badRequest, ""},
		{"since string", `{"type":"join","room":"r","since":"4","epoch":"e"}`, badRequest, ""},
		{"since fraction", `{"type":"join","room":"r","since":1.5,"epoch":"e"}`, badRequest, ""},

		// Data.
		{"send no data", `{"type":"send","room":"r"}`, badRequest, ""},
		{"send data null", `{"type":"send","room":"r","data":null}`, badRequest, ""},
		{"send data null padded", `{"type":"send","room":"r","data" :  null }`, badRequest, ""},
		{"dm no data", `{"type":"dm","to":"ann"}`, badRequest, ""},
		{"dm data null", `{"type":"dm","to":"ann","data":null}`, badRequest, ""},

		// Users.
		{"dm no to", `{"type":"dm","data":1}`, badRequest, ""},
		{"dm to null", `{"type":"dm","to":null,"data":1}`, badRequest, ""},
		{"dm to empty", `{"type":"dm","to":"","data":1}`, badRequest, ""},
		{"dm to 33", `{"type":"dm","to":"` + user32 + `u","data":1}`, badRequest, ""},
		{"dm to colon", `{"type":"dm","to":"a:b","data":1}`, badRequest, ""},
		{"dm to space", `{"type":"dm","to":"a b","data":1}`, badRequest, ""},
		{"dm to unicode", `{"type":"dm","to":"zoë","data":1}`, badRequest, ""},
		{"dm to number", `{"type":"dm","to":5,"data":1}`, badRequest, ""},

		// History paging.
		{"limit 0", `{"type":"history","room":"r","limit":0}`, badRequest, ""},
		{"limit 101", `{"type":"history","room":"r","limit":101}`, badRequest, ""},
		{"limit -1", `{"type":"history","room":"r","limit":-1}`, badRequest, ""},
		{"limit string", `{"type":"history","room":"r","limit":"5"}`, badRequest, ""},
		{"limit fraction", `{"type":"history","room":"r","limit":1.5}`, badRequest, ""},
		{"limit huge", `{"type":"history","room":"r","limit":1e400}`, badRequest, ""},
		{"before negative", `{"type":"history","room":"r","before":-1}`, badRequest, ""},
		{"before string", `{"type":"history","room":"r","before":"3"}`, badRequest, ""},
		{"before too big", `{"type":"history","room":"r","before":18446744073709551616}`, badRequest, ""},

		// Presence paging.
		{"presence limit 0", `{"type":"presence","room":"r","limit":0}`, badRequest, ""},
		{"presence limit 1001", `{"type":"presence","room":"r","limit":1001}`, badRequest, ""},
		{"presence limit string", `{"type":"presence","room":"r","limit":"5"}`, badRequest, ""},
		{"presence after bad", `{"type":"presence","room":"r","after":"a b"}`, badRequest, ""},
		{"presence after 33", `{"type":"presence","room":"r","after":"` + user32 + `u"}`, badRequest, ""},
		{"presence after number", `{"type":"presence","room":"r","after":5,"id":2}`, badRequest, "2"},
		{"presence no room", `{"type":"presence","after":"ann"}`, badRequest, ""},

		// Refresh.
		{"refresh no token", `{"type":"refresh"}`, badRequest, ""},
		{"refresh token empty", `{"type":"refresh","token":""}`, badRequest, ""},
		{"refresh token too long", `{"type":"refresh","token":"` + token4k + `t"}`, badRequest, ""},
		{"refresh token number", `{"type":"refresh","token":5}`, badRequest, ""},

		// The id is echoed whatever failed after it was read.
		{"echo string id", `{"type":"send","id":"s1","room":"r"}`, badRequest, `"s1"`},
		{"echo number id", `{"type":"history","id":9,"room":"r","limit":0}`, badRequest, `9`},
		{"echo id after type error", `{"type":"send","room":5,"data":1,"id":"late"}`, badRequest, `"late"`},
		{"echo id on wrong type", `{"type":"history","room":"r","limit":"5","id":-2}`, badRequest, `-2`},
		{"echo id on unknown type", `{"id":"x","type":"nope"}`, unknown, `"x"`},
		{"echo id on bad user", `{"type":"dm","id":"d","to":"","data":1}`, badRequest, `"d"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := protocol.Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want error %s", tt.in, flatten(req), tt.code)
			}
			if got := code(t, err); got != tt.code {
				t.Errorf("Decode(%s) error %v, want code %s", tt.in, err, tt.code)
			}
			if got := string(req.ID); got != tt.id {
				t.Errorf("Decode(%s) ID = %q, want %q", tt.in, got, tt.id)
			}
		})
	}
}

// TestDecodeCopies checks that a Request does not alias the frame, so a
// session may reuse its read buffer while the hub still holds the data.
func TestDecodeCopies(t *testing.T) {
	t.Parallel()
	in := []byte(`{"type":"send","id":"abc","room":"r","data":{"k":"v"}}`)
	req, err := protocol.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if got, want := string(req.ID), `"abc"`; got != want {
		t.Errorf("ID after reusing the buffer = %s, want %s", got, want)
	}
	if got, want := string(req.Data), `{"k":"v"}`; got != want {
		t.Errorf("Data after reusing the buffer = %s, want %s", got, want)
	}
}

// TestDecodeRoundTrip decodes frames rebuilt from decoded Requests.
func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"type":"join","id":"j","room":"r"}`,
		`{"type":"join","room":"r","since":3,"epoch":"e"}`,
		`{"type":"leave","id":1,"room":"r"}`,
		`{"type":"send","room":"r","data":{"a":[1,"<b>"]}}`,
		`{"type":"typing","room":"r"}`,
		`{"type":"dm","to":"ann","data":"hi"}`,
		`{"type":"presence","room":"r"}`,
		`{"type":"presence","room":"r","after":"bob","limit":3}`,
		`{"type":"history","room":"r","limit":7,"before":99}`,
		`{"type":"ping","id":"\u00e9\"\\"}`,
		`{"type":"refresh","token":"t"}`,
		`{"type":"read","id":7,"room":"r","seq":12}`,
	} {
		req, err := protocol.Decode([]byte(in))
		if err != nil {
			t.Fatalf("Decode(%s): %v", in, err)
		}
		checkRoundTrip(t, req)
	}
}

// checkRoundTrip checks that req, rebuilt as a frame, decodes to itself.
// Data is compared compacted: a Request keeps the client's spacing.
func checkRoundTrip(t testing.TB, req protocol.Request) {
	t.Helper()
	frame := frameOf(t, req)
	again, err := protocol.Decode(frame)
	if err != nil {
		t.Fatalf("Decode(%s) of rebuilt %+v: %v", frame, flatten(req), err)
	}
	want := flatten(req)
	want.Data = compact(t, req.Data)
	if got := flatten(again); got != want {
		t.Errorf("Decode(%s)\n got %+v\nwant %+v", frame, got, want)
	}
}

// frameOf encodes req as a client frame.
func frameOf(t testing.TB, req protocol.Request) []byte {
	t.Helper()
	m := map[string]any{"type": req.Type}
	if req.ID != nil {
		m["id"] = req.ID
	}
	if req.Room != "" {
		m["room"] = req.Room
	}
	if req.To != "" {
		m["to"] = req.To
	}
	if req.Data != nil {
		m["data"] = req.Data
	}
	if req.Type == protocol.TypeHistory {
		m["limit"], m["before"] = req.Limit, req.Before
	}
	if req.Type == protocol.TypePresence {
		m["limit"], m["after"] = req.Limit, req.After
	}
	if req.HasSince {
		m["since"], m["epoch"] = req.Since, req.Epoch
	}
	if req.Seq != 0 {
		m["seq"] = req.Seq
	}
	if req.Token != "" {
		m["token"] = req.Token
	}
	if req.User != "" {
		m["user"] = req.User
	}
	if req.Duration != 0 {
		m["duration"] = req.Duration.String()
	}
	if req.Reason != "" {
		m["reason"] = req.Reason
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep raw ids verbatim
	if err := enc.Encode(m); err != nil {
		t.Fatalf("encode %+v: %v", m, err)
	}
	return b.Bytes()
}

// compact returns raw JSON without insignificant space ("" for nil).
func compact(t testing.TB, raw []byte) string {
	t.Helper()
	if raw == nil {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %s: %v", raw, err)
	}
	return b.String()
}
