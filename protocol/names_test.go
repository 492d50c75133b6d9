package protocol_test

import (
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestValidNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		user, room bool
	}{
		{"a", true, true},
		{"Z", true, true},
		{"0", true, true},
		{"ann.b-c_9", true, true},
		{"...", true, true},
		{"-", true, true},
		{"team:general", false, true},
		{":", false, true},
		{strings.Repeat("u", 32), true, true},
		{strings.Repeat("u", 33), false, true},
		{strings.Repeat("r", 64), false, true},
		{strings.Repeat("r", 65), false, false},
		{"", false, false},
		{" ", false, false},
		{"a b", false, false},
		{" a", false, false},
		{"a\n", false, false},
		{"a\x00", false, false},
		{"a/b", false, false},
		{"a@b", false, false},
		{"#room", false, false},
		{"a+b", false, false},
		{"café", false, false},
		{"é", false, false},
		{"ｒｏｏｍ", false, false},   // fullwidth letters
		{"\u212a", false, false}, // Kelvin sign, which folds to K
		{"\u0430", false, false}, // Cyrillic a
		{"😀", false, false},
		{"\xff", false, false},
		{strings.Repeat("é", 16), false, false}, // 16 characters, 32 bytes
	}
	for _, tt := range tests {
		if got := protocol.ValidUser(tt.name); got != tt.user {
			t.Errorf("ValidUser(%q) = %v, want %v", tt.name, got, tt.user)
		}
		if got := protocol.ValidRoom(tt.name); got != tt.room {
			t.Errorf("ValidRoom(%q) = %v, want %v", tt.name, got, tt.room)
		}
	}
}
