package protocol_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestEditedFrame(t *testing.T) {
	t.Parallel()
	tmpl, err := protocol.NewEdited("lobby", "ann", 12, json.RawMessage("{ \"text\": \"fixed\" }"), 1700000000000)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"message_edited","room":"lobby","seq":15,"target":12,"from":"ann","data":{"text":"fixed"},"ts":1700000000000}`
	if got := string(tmpl.Frame(15)); got != want {
		t.Errorf("frame\n got %s\nwant %s", got, want)
	}
	if _, err := protocol.NewEdited("lobby", "ann", 12, json.RawMessage(`{`), 1); err == nil {
		t.Error("NewEdited accepted invalid data")
	}
}

func TestDeletedFrame(t *testing.T) {
	t.Parallel()
	got := string(protocol.NewDeleted("lobby", "system", 12, 1700000000000).Frame(16))
	want := `{"type":"message_deleted","room":"lobby","seq":16,"target":12,"from":"system","ts":1700000000000}`
	if got != want {
		t.Errorf("frame\n got %s\nwant %s", got, want)
	}
}

func TestMessageSenderOfChanges(t *testing.T) {
	t.Parallel()
	msg, _ := protocol.NewMessage("a:b", "ann", json.RawMessage(`{"from":"eve"}`), 1)
	edited, _ := protocol.NewEdited("a:b", "ann", 1, json.RawMessage(`1`), 1)
	tests := []struct {
		frame    []byte
		from     string
		ok       bool
		describe string
	}{
		{msg.Frame(7), "ann", true, "message"},
		{edited.Frame(8), "", false, "message_edited"},
		{protocol.NewDeleted("a:b", "ann", 1, 1).Frame(9), "", false, "message_deleted"},
		{[]byte(`{"type":"message","room":"r","seq":,"from":"ann"}`), "", false, "no seq"},
		{[]byte(`{"type":"message","room":"r","seq":1,"from":"ann`), "", false, "cut"},
		{[]byte(`{"type":"message","room":"r","seq":1}`), "", false, "no from"},
		{nil, "", false, "empty"},
	}
	for _, tt := range tests {
		from, ok := protocol.MessageSender(tt.frame)
		if from != tt.from || ok != tt.ok {
			t.Errorf("%s: MessageSender(%s) = %q, %v, want %q, %v", tt.describe, tt.frame, from, ok, tt.from, tt.ok)
		}
	}
}

// FuzzNewEdited checks that NewEdited takes exactly the valid JSON data,
// that its frames are one line of JSON naming the target and carrying the
// data as sent, compacted, and that MessageSender never takes them (nor a
// delete) for a message, while it reads the sender of every message.
func FuzzNewEdited(f *testing.F) {
	f.Add("lobby", "ann", uint64(12), []byte(`{"text":"hi"}`), int64(1700000000000), uint64(15))
	f.Add("r", "<u>", uint64(1<<64-1), []byte(" [1, \"\\u2028\"]\n"), int64(-1), uint64(0))
	f.Add("r", "u", uint64(1), []byte(`[1,]`), int64(1), uint64(1))
	f.Fuzz(func(t *testing.T, room, from string, target uint64, data []byte, ts int64, seq uint64) {
		tmpl, err := protocol.NewEdited(room, from, target, data, ts)
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("NewEdited accepted invalid data %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("NewEdited(%q): %v", data, err)
		}
		for _, frame := range [][]byte{tmpl.Frame(seq), protocol.NewDeleted(room, from, target, ts).Frame(seq)} {
			if bytes.ContainsAny(frame, "\r\n") {
				t.Errorf("frame %q is not one line", frame)
			}
			if _, ok := protocol.MessageSender(frame); ok {
				t.Errorf("MessageSender takes %s for a message", frame)
			}
			var m struct {
				Type, Room, From string
				Seq, Target      uint64
				TS               int64
				Data             json.RawMessage
			}
			if err := json.Unmarshal(frame, &m); err != nil {
				t.Fatalf("frame %q: %v", frame, err)
			}
			if m.Seq != seq || m.Target != target || m.TS != ts {
				t.Errorf("frame %s: seq %d target %d ts %d, want %d %d %d", frame, m.Seq, m.Target, m.TS, seq, target, ts)
			}
			if utf8.ValidString(room) && utf8.ValidString(from) && (m.Room != room || m.From != from) {
				t.Errorf("frame %s: room %q from %q, want %q %q", frame, m.Room, m.From, room, from)
			}
			if m.Type == protocol.TypeMessageEdited && string(m.Data) != compact(t, data) {
				t.Errorf("frame %s has data %s, want %s", frame, m.Data, compact(t, data))
			}
		}
		msg, _ := protocol.NewMessage(room, from, data, ts)
		got, ok := protocol.MessageSender(msg.Frame(seq))
		if protocol.ValidRoom(room) && protocol.ValidUser(from) && (!ok || got != from) {
			t.Errorf("MessageSender(%s) = %q, %v, want %q", msg.Frame(seq), got, ok, from)
		}
	})
}
