package protocol

import (
	"bytes"
	"time"
)

// ReadInterval is how often a node stores the read positions its clients
// reported and tells the rooms: at most once per interval for each user
// and room, keeping the latest. It is part of the protocol: a client need
// not report reads more often.
const ReadInterval = 250 * time.Millisecond

// MaxReadRooms bounds the rooms a user has a read position in: storing one
// more forgets the position written longest ago, so that what a client can
// make the server keep stays bounded (MaxReadRooms × about 100 bytes).
const MaxReadRooms = 1000

// Read tells a room's members how far one of them has read: User has read
// the messages up to Seq. It is sent only in rooms of at most
// MemberEventsMax members, at most once per ReadInterval for each user.
type Read struct {
	Type string `json:"type"`
	Room string `json:"room"`
	User string `json:"user"`
	Seq  uint64 `json:"seq"`
}

// read checks a read frame: a room and a seq of 1 or more.
func (req *Request) read(w *wire) error {
	if err := req.room(w); err != nil {
		return err
	}
	if w.Seq == nil || *w.Seq == 0 {
		return Errorf(CodeBadRequest, "seq must be the seq of a message: 1 or more")
	}
	req.Seq = *w.Seq
	return nil
}

// messagePrefix starts every message frame NewMessage builds.
var messagePrefix = []byte(`{"type":"message","room":"`)

// MessageSender returns the sender of a message frame built by NewMessage,
// reading only its head: the type, room, seq and from fields, in that
// order, as NewMessage writes them. It reports false for any other frame,
// a frame of another type among them (message_edited included). It lets a
// history be counted, and a broker check who may edit or delete a message,
// without decoding each frame's data; the Redis broker's scripts match the
// same prefix.
func MessageSender(frame []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(frame, messagePrefix)
	if !ok {
		return "", false
	}
	i := bytes.IndexByte(rest, '"') // room names hold no quote or backslash
	if i < 0 {
		return "", false
	}
	rest, ok = bytes.CutPrefix(rest[i+1:], []byte(`,"seq":`))
	if !ok {
		return "", false
	}
	i = 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"from":"`))
	if i == 0 || !ok {
		return "", false
	}
	i = bytes.IndexByte(rest, '"') // user names hold no quote or backslash
	if i < 0 || !ValidUser(string(rest[:i])) {
		return "", false
	}
	return string(rest[:i]), true
}
