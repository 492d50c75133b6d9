package protocol

import (
	"strconv"
	"time"
)

// Moderation. Operators (users whose token has the op claim for the room)
// send mute, unmute, ban, unban, freeze and unfreeze frames; the server
// sends muted and unmuted to the sessions of the user concerned that are in
// the room, room_updated to the room's members when it freezes or thaws,
// and left with reason banned to a banned user's sessions in the room.
const (
	TypeMute        = "mute"
	TypeUnmute      = "unmute"
	TypeBan         = "ban"
	TypeUnban       = "unban"
	TypeFreeze      = "freeze"
	TypeUnfreeze    = "unfreeze"
	TypeMuted       = "muted"
	TypeUnmuted     = "unmuted"
	TypeRoomUpdated = "room_updated"
)

// Bounds of moderation requests.
const (
	// MaxModDuration is the longest mute or ban with a duration; without
	// one, a mute or ban lasts until it is lifted.
	MaxModDuration = 366 * 24 * time.Hour
	// MaxReasonLen is the longest ban reason, in bytes.
	MaxReasonLen = 256
)

// Muted tells a user's sessions in a room that the user may no longer
// write to it until Until (unix milliseconds; 0: until unmuted).
type Muted struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Until int64  `json:"until"`
}

// Unmuted tells a user's sessions in a room that its mute was lifted.
type Unmuted struct {
	Type string `json:"type"`
	Room string `json:"room"`
}

// RoomUpdated tells a room's members that it was frozen or thawed.
type RoomUpdated struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Frozen bool   `json:"frozen"`
}

// ParseModDuration parses the duration of a mute or ban: Go duration
// syntax ("90s", "10m", "1h30m"), positive and at most MaxModDuration; ""
// is 0, meaning until lifted.
func ParseModDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxModDuration {
		return 0, Errorf(CodeBadRequest, "duration must be a positive Go duration (\"10m\", \"2h\") of at most "+
			strconv.Itoa(int(MaxModDuration/time.Hour))+"h, or absent for until lifted")
	}
	return d, nil
}

// moderation reads a moderation request's room and, but for freeze and
// unfreeze, user; a mute's and a ban's duration; a ban's reason.
func (req *Request) moderation(w *wire) error {
	if err := req.room(w); err != nil {
		return err
	}
	if req.Type == TypeFreeze || req.Type == TypeUnfreeze {
		return nil
	}
	if w.User == nil || !ValidUser(*w.User) {
		return Errorf(CodeBadRequest, "user must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
	}
	req.User = *w.User
	if req.Type != TypeMute && req.Type != TypeBan {
		return nil
	}
	if w.Duration != nil {
		d, err := ParseModDuration(*w.Duration)
		if err != nil {
			return err
		}
		req.Duration = d
	}
	if w.Reason != nil && req.Type == TypeBan {
		if len(*w.Reason) > MaxReasonLen {
			return Errorf(CodeBadRequest, "reason must be at most 256 bytes")
		}
		req.Reason = *w.Reason
	}
	return nil
}
