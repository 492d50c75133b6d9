package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Every server frame is one line of compact JSON: strings are escaped, so
// they hold no raw newline, and data is compacted, so a batch of frames can
// be joined with '\n'. Nothing is HTML-escaped: <, > and & go out as they
// came in, one byte each (encoding/json's default turns each into six), and
// data is re-emitted exactly as the client sent it, only compacted.

// Welcome is the first frame of every connection.
type Welcome struct {
	Type     string `json:"type"`
	Session  string `json:"session"`
	User     string `json:"user"`
	Name     string `json:"name,omitempty"`
	Node     string `json:"node"`
	Protocol int    `json:"protocol"`
}

// Joined answers a join.
type Joined struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	Room string          `json:"room"`
	// Members are the room's first JoinedMembers members, sorted: all of
	// them unless MembersNext is set.
	Members []string `json:"members"`
	// MemberCount is the number of members of the room.
	MemberCount int `json:"member_count"`
	// MembersNext, set when Members is not the whole list, is the last
	// user of Members: a presence request with it as after pages on.
	MembersNext string `json:"members_next,omitempty"`
	Seq         uint64 `json:"seq"`
	Epoch       string `json:"epoch"`
	// Recovered is set only when the join asked for recovery with since.
	Recovered *bool `json:"recovered,omitempty"`
	// ReadSeq is the user's read position in the room (see Read): the seq
	// of the last message read, in this epoch; 0, and left out, when none.
	ReadSeq uint64 `json:"read_seq,omitempty"`
	// Unread counts the messages of other users after ReadSeq, up to Seq,
	// that the room's history holds; left out when 0.
	Unread int `json:"unread,omitempty"`
	// UnreadCapped reports that the history no longer reaches back to
	// ReadSeq: more messages than Unread may be unread.
	UnreadCapped bool `json:"unread_capped,omitempty"`
	// Frozen reports that the room is frozen: members may not write (see
	// RoomUpdated); left out when not.
	Frozen bool `json:"frozen,omitempty"`
	// Muted reports that the user is muted in the room, until MutedUntil
	// (unix ms; 0, left out, until lifted); left out when not.
	Muted      bool  `json:"muted,omitempty"`
	MutedUntil int64 `json:"muted_until,omitempty"`
}

// Left answers a leave, or tells the session the server took it out of a
// room, with a Reason.
type Left struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	Room string          `json:"room"`
	// Reason is set only when the server made the session leave: then ID
	// is empty.
	Reason string `json:"reason,omitempty"`
}

// Reasons of a left frame the client did not ask for.
const (
	// ReasonForbidden: a refresh's new token no longer allows the room.
	ReasonForbidden = "forbidden"
	// ReasonBanned: the user was banned from the room (moderation.go).
	ReasonBanned = "banned"
)

// Ack confirms a send (with its seq and epoch) or a dm (without).
type Ack struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id,omitempty"`
	Seq   uint64          `json:"seq,omitempty"`
	Epoch string          `json:"epoch,omitempty"`
}

// Presence answers a presence request with a page of the room's members.
type Presence struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	Room string          `json:"room"`
	// Members are the members after the request's after, sorted, at most
	// the request's limit.
	Members []string `json:"members"`
	// MemberCount is the number of members of the room.
	MemberCount int `json:"member_count"`
	// MembersNext, set when more members follow, is the last user of
	// Members: the after of the next page.
	MembersNext string `json:"members_next,omitempty"`
}

// History answers a history request; Messages are message frames, oldest first.
type History struct {
	Type     string            `json:"type"`
	ID       json.RawMessage   `json:"id,omitempty"`
	Room     string            `json:"room"`
	Epoch    string            `json:"epoch"`
	Messages []json.RawMessage `json:"messages"`
}

// Pong answers a ping.
type Pong struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
}

// ErrorFrame reports a failed request; the connection stays open.
type ErrorFrame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	// Until is Error.Until: set only for a timed mute or ban.
	Until int64 `json:"until,omitempty"`
}

// MemberEvent is typing; Encode also gives the shape of member_joined and
// member_left without their member_count (see MemberChange).
type MemberEvent struct {
	Type string `json:"type"`
	Room string `json:"room"`
	User string `json:"user"`
}

// MemberChange is member_joined or member_left, with the number of members
// the room has after the change. It is sent only in rooms of at most
// MemberEventsMax members before or after the change.
type MemberChange struct {
	Type        string `json:"type"`
	Room        string `json:"room"`
	User        string `json:"user"`
	MemberCount int    `json:"member_count"`
}

// Announced reports whether a member change that left the room with count
// members is announced with member_joined (joined) or member_left: only
// when the room had at most MemberEventsMax members before or after it.
func Announced(joined bool, count int) bool {
	if joined {
		return count <= MemberEventsMax+1
	}
	return count <= MemberEventsMax
}

// Epoch tells a room's members that its history was lost and restarted in a
// new epoch: the next message has seq 1 of that epoch.
type Epoch struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Epoch string `json:"epoch"`
}

// DM is a direct message as delivered to the sessions of its sender and
// recipient. NewDM builds its frame.
type DM struct {
	Type string          `json:"type"`
	From string          `json:"from"`
	To   string          `json:"to"`
	Data json.RawMessage `json:"data"`
	TS   int64           `json:"ts"`
}

// Refreshed answers a refresh with the new expiry (unix seconds; 0 when the
// new token does not expire).
type Refreshed struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	Exp  int64           `json:"exp"`
}

// Encode returns the JSON encoding of a server frame, one of the types above
// or a pointer to one. Nil Members and Messages encode as [] rather than null,
// so clients can iterate them unchecked. The types cannot fail to encode; a
// failure is a bug and panics.
func Encode(v any) []byte {
	b, err := marshal(withLists(v))
	if err != nil {
		panic("protocol: encode " + err.Error())
	}
	return b
}

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// withLists returns v, as a value, with its nil lists replaced by empty ones.
func withLists(v any) any {
	switch f := v.(type) {
	case *Joined:
		return withLists(*f)
	case *Presence:
		return withLists(*f)
	case *History:
		return withLists(*f)
	case Joined:
		f.Members = orEmpty(f.Members)
		return f
	case Presence:
		f.Members = orEmpty(f.Members)
		return f
	case History:
		f.Messages = orEmpty(f.Messages)
		return f
	}
	return v
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// EncodeError returns an error frame echoing id.
func EncodeError(id json.RawMessage, e *Error) []byte {
	return Encode(ErrorFrame{Type: TypeError, ID: id, Code: e.Code, Message: e.Message, Until: e.Until})
}

// MessageTemplate is a message frame whose seq is not yet known: the broker
// that assigns the seq builds the frame as Prefix + decimal seq + Suffix, so the
// frame is encoded once, even when the seq is assigned inside Redis.
type MessageTemplate struct {
	Prefix []byte // {"type":"message","room":"…","seq":
	Suffix []byte // ,"from":"…","data":…,"ts":…}
}

// NewMessage returns the template of a message frame. data must be valid
// JSON; it is compacted so that the frame is one line.
func NewMessage(room, from string, data json.RawMessage, ts int64) (MessageTemplate, error) {
	suffix, err := dataSuffix(appendString([]byte(`,"from":`), from), data, ts)
	if err != nil {
		return MessageTemplate{}, err
	}
	return MessageTemplate{Prefix: templatePrefix(TypeMessage, room), Suffix: suffix}, nil
}

// templatePrefix is {"type":"<typ>","room":"<room>","seq":, the head of the
// frame of every entry of a room's stream.
func templatePrefix(typ, room string) []byte {
	b := append([]byte(`{"type":`), appendString(nil, typ)...)
	b = append(b, `,"room":`...)
	b = appendString(b, room)
	return append(b, `,"seq":`...)
}

// dataSuffix appends ,"data":<data, compacted>,"ts":<ts>} to head, the
// end of the frames that carry data; data must be valid JSON.
func dataSuffix(head []byte, data json.RawMessage, ts int64) ([]byte, error) {
	s := bytes.NewBuffer(head)
	s.WriteString(`,"data":`)
	if err := json.Compact(s, data); err != nil {
		return nil, err
	}
	b := append(s.Bytes(), `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	return append(b, '}'), nil
}

// Frame returns the message frame with the given seq.
func (t MessageTemplate) Frame(seq uint64) []byte {
	b := make([]byte, 0, len(t.Prefix)+20+len(t.Suffix))
	b = append(b, t.Prefix...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, t.Suffix...)
}

// appendString appends s as a JSON string, not HTML-escaped. Invalid UTF-8
// becomes U+FFFD, as in encoding/json.
func appendString(b []byte, s string) []byte {
	q, _ := marshal(s) // a string always encodes
	return append(b, q...)
}

// NewDM returns a dm frame: data from user from to user to, sent at ts (unix
// milliseconds). data must be valid JSON; like a message's, it is compacted
// and otherwise kept as the client sent it. The frame is the same as
// Encode(DM{…}) but is built without re-encoding data, and a bad data is an
// error rather than a panic.
func NewDM(from, to string, data json.RawMessage, ts int64) ([]byte, error) {
	b := bytes.NewBuffer(make([]byte, 0, len(`{"type":"dm","from":"","to":"","data":,"ts":}`)+len(from)+len(to)+len(data)+20))
	b.WriteString(`{"type":"dm","from":`)
	b.Write(appendString(nil, from))
	b.WriteString(`,"to":`)
	b.Write(appendString(nil, to))
	b.WriteString(`,"data":`)
	if err := json.Compact(b, data); err != nil {
		return nil, err
	}
	b.WriteString(`,"ts":`)
	b.Write(strconv.AppendInt(nil, ts, 10))
	b.WriteByte('}')
	return b.Bytes(), nil
}

// EncodeHistory returns a history frame holding the given message frames,
// oldest first, as they are: unlike Encode(History{…}) it neither re-parses
// nor re-escapes them, so its size is exactly HistorySize of the same frames.
func EncodeHistory(id json.RawMessage, room, epoch string, frames [][]byte) []byte {
	b := make([]byte, 0, HistorySize(id, room, epoch, frames))
	b = append(b, `{"type":"history"`...)
	if id != nil {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	b = append(b, `,"room":`...)
	b = appendString(b, room)
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	b = append(b, `,"messages":[`...)
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	return append(b, "]}"...)
}

// HistorySize returns the length of EncodeHistory's frame, assuming room and
// epoch need no escaping (valid names and epochs never do).
func HistorySize(id json.RawMessage, room, epoch string, frames [][]byte) int {
	n := len(`{"type":"history","room":"","epoch":"","messages":[]}`) + len(room) + len(epoch)
	if id != nil {
		n += len(`,"id":`) + len(id)
	}
	for i, f := range frames {
		if i > 0 {
			n++
		}
		n += len(f)
	}
	return n
}
