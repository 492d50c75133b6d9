package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestMessageSender(t *testing.T) {
	t.Parallel()
	tmpl, err := protocol.NewMessage("a:b", "ann.b-c_9", json.RawMessage(`{"from":"eve"}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		frame string
		want  string // "" for not a message
	}{
		{"message", string(tmpl.Frame(42)), "ann.b-c_9"},
		{"seq 0", string(tmpl.Frame(0)), "ann.b-c_9"},
		{"edit", `{"type":"message_edited","room":"r","seq":3,"from":"bob","data":1}`, ""},
		{"dm", `{"type":"dm","from":"bob","to":"ann","data":1,"ts":1}`, ""},
		{"no seq digits", `{"type":"message","room":"r","seq":,"from":"bob"}`, ""},
		{"from not a user", `{"type":"message","room":"r","seq":1,"from":"b b","data":1}`, ""},
		{"from empty", `{"type":"message","room":"r","seq":1,"from":"","data":1}`, ""},
		{"cut short", `{"type":"message","room":"r","seq":1,"from":"bob`, ""},
		{"fields reordered", `{"type":"message","seq":1,"room":"r","from":"bob"}`, ""},
		{"empty", ``, ""},
	}
	for _, tt := range tests {
		got, ok := protocol.MessageSender([]byte(tt.frame))
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: MessageSender(%s) = %q, %v; want %q", tt.name, tt.frame, got, ok, tt.want)
		}
	}
}

func TestEncodeRead(t *testing.T) {
	t.Parallel()
	got := string(protocol.Encode(protocol.Read{Type: protocol.TypeRead, Room: "lobby", User: "alice", Seq: 42}))
	if want := `{"type":"read","room":"lobby","user":"alice","seq":42}`; got != want {
		t.Errorf("read frame %s, want %s", got, want)
	}
	got = string(protocol.Encode(protocol.Joined{Type: protocol.TypeJoined, Room: "r", Seq: 9, Epoch: "e", ReadSeq: 4, Unread: 3, UnreadCapped: true}))
	if want := `{"type":"joined","room":"r","members":[],"member_count":0,"seq":9,"epoch":"e","read_seq":4,"unread":3,"unread_capped":true}`; got != want {
		t.Errorf("joined frame %s, want %s", got, want)
	}
}

// FuzzMessageSender checks that MessageSender finds the sender of every
// message NewMessage builds, whatever its data, and never returns an
// invalid user name.
func FuzzMessageSender(f *testing.F) {
	f.Add("lobby", "ann", []byte(`{"from":"eve","type":"message"}`), uint64(42), []byte(`{"type":"message","room":"r","seq":1,"from":"bob"}`))
	f.Add("a:b", "x", []byte(`"\"from\":\"eve\""`), uint64(0), []byte(`{"type":"message","room":"`))
	f.Fuzz(func(t *testing.T, room, from string, data []byte, seq uint64, raw []byte) {
		if got, ok := protocol.MessageSender(raw); ok && !protocol.ValidUser(got) {
			t.Errorf("MessageSender(%q) = %q, not a user name", raw, got)
		}
		if !protocol.ValidRoom(room) || !protocol.ValidUser(from) {
			return
		}
		tmpl, err := protocol.NewMessage(room, from, data, 1)
		if err != nil {
			return
		}
		if got, ok := protocol.MessageSender(tmpl.Frame(seq)); !ok || got != from {
			t.Errorf("MessageSender(%s) = %q, %v; want %q", tmpl.Frame(seq), got, ok, from)
		}
	})
}
