package protocol_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestDecodeModeration(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", protocol.MaxReasonLen+1)
	tests := []struct {
		frame string
		want  request
		code  string
	}{
		{`{"type":"mute","room":"lobby","user":"bob","duration":"10m"}`,
			request{Type: "mute", Room: "lobby", User: "bob", Duration: 10 * time.Minute}, ""},
		{`{"type":"mute","room":"lobby","user":"bob","duration":""}`,
			request{Type: "mute", Room: "lobby", User: "bob"}, ""},
		{`{"type":"ban","room":"lobby","user":"eve","duration":"8784h","reason":"spam"}`,
			request{Type: "ban", Room: "lobby", User: "eve", Duration: protocol.MaxModDuration, Reason: "spam"}, ""},
		// An unmute and an unban take no duration, a mute no reason: ignored.
		{`{"type":"unmute","room":"lobby","user":"bob","duration":"10m","reason":"x"}`,
			request{Type: "unmute", Room: "lobby", User: "bob"}, ""},
		{`{"type":"mute","room":"lobby","user":"bob","reason":"x"}`,
			request{Type: "mute", Room: "lobby", User: "bob"}, ""},
		{`{"type":"freeze","room":"lobby","user":"bob"}`, request{Type: "freeze", Room: "lobby"}, ""},
		{`{"type":"unfreeze","room":"lobby"}`, request{Type: "unfreeze", Room: "lobby"}, ""},
		{`{"type":"mute","room":"lobby","user":"bob","duration":"8785h"}`, request{Type: "mute"}, protocol.CodeBadRequest},
		{`{"type":"mute","room":"lobby","user":"bob","duration":"0s"}`, request{Type: "mute"}, protocol.CodeBadRequest},
		{`{"type":"mute","room":"lobby","user":"bob","duration":10}`, request{}, protocol.CodeBadRequest},
		{`{"type":"ban","room":"lobby","user":"b b"}`, request{Type: "ban"}, protocol.CodeBadRequest},
		{`{"type":"ban","room":"lobby","user":"eve","reason":"` + long + `"}`, request{Type: "ban"}, protocol.CodeBadRequest},
		{`{"type":"unban","user":"eve"}`, request{Type: "unban"}, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		req, err := protocol.Decode([]byte(tt.frame))
		if got := code(t, err); got != tt.code {
			t.Errorf("Decode(%s) code %q, want %q", tt.frame, got, tt.code)
			continue
		}
		if tt.code == "" && flatten(req) != tt.want {
			t.Errorf("Decode(%s)\n got %+v\nwant %+v", tt.frame, flatten(req), tt.want)
		}
	}
}

func TestEncodeModeration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    any
		want string
	}{
		{protocol.Muted{Type: protocol.TypeMuted, Room: "lobby", Until: 1700000000000}, `{"type":"muted","room":"lobby","until":1700000000000}`},
		{protocol.Muted{Type: protocol.TypeMuted, Room: "lobby"}, `{"type":"muted","room":"lobby","until":0}`},
		{protocol.Unmuted{Type: protocol.TypeUnmuted, Room: "lobby"}, `{"type":"unmuted","room":"lobby"}`},
		{protocol.RoomUpdated{Type: protocol.TypeRoomUpdated, Room: "lobby", Frozen: false}, `{"type":"room_updated","room":"lobby","frozen":false}`},
		{protocol.Left{Type: protocol.TypeLeft, Room: "lobby", Reason: protocol.ReasonBanned}, `{"type":"left","room":"lobby","reason":"banned"}`},
	}
	for _, tt := range tests {
		if got := string(protocol.Encode(tt.v)); got != tt.want {
			t.Errorf("Encode(%+v)\n got %s\nwant %s", tt.v, got, tt.want)
		}
	}
	e := &protocol.Error{Code: protocol.CodeMuted, Message: "muted", Until: 5}
	if got, want := string(protocol.EncodeError([]byte(`"s1"`), e)), `{"type":"error","id":"s1","code":"muted","message":"muted","until":5}`; got != want {
		t.Errorf("EncodeError\n got %s\nwant %s", got, want)
	}
}
