package protocol

import (
	"encoding/json"
	"time"
)

// Version is the protocol version announced in the welcome frame.
const Version = 1

// Frame types. Client frames are join, leave, send, typing, dm, presence,
// history, ping, refresh, read, edit and delete (edit.go), and mute, unmute,
// ban, unban, freeze and unfreeze (moderation.go); the server sends the
// others, and echoes typing, dm, presence, history and read under the same
// names.
const (
	TypeWelcome      = "welcome"
	TypeJoin         = "join"
	TypeJoined       = "joined"
	TypeLeave        = "leave"
	TypeLeft         = "left"
	TypeSend         = "send"
	TypeMessage      = "message"
	TypeAck          = "ack"
	TypeTyping       = "typing"
	TypeDM           = "dm"
	TypePresence     = "presence"
	TypeHistory      = "history"
	TypePing         = "ping"
	TypePong         = "pong"
	TypeError        = "error"
	TypeMemberJoined = "member_joined"
	TypeMemberLeft   = "member_left"
	TypeRefresh      = "refresh"
	TypeRefreshed    = "refreshed"
	TypeEpoch        = "epoch"
	TypeRead         = "read"
)

// History paging bounds.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 100
)

// Member lists of large rooms. A room's members are listed sorted by name,
// one page at a time, and member events are thinned in large rooms so that
// a storm of joins costs work linear in the joins (see docs/protocol.md,
// "Presence and member events").
const (
	// JoinedMembers is how many members a joined frame lists at most: the
	// first of the room's sorted members. A larger room's joined frame
	// names the last one listed in members_next.
	JoinedMembers = 100
	// MaxPresenceLimit is the largest page a presence request answers,
	// and the page it answers when the request gives no limit.
	MaxPresenceLimit = 1000
	// MemberEventsMax bounds the rooms whose member changes are announced:
	// member_joined and member_left are sent for a change only when the
	// room has at most this many members before or after it. Every node of
	// a cluster uses the same value: it is part of the protocol.
	MemberEventsMax = 1000
)

// Request is one decoded and validated client frame. Only the fields its Type
// uses are set.
type Request struct {
	Type string
	// ID is the client's correlation id as raw JSON (a string or a number),
	// echoed in the direct reply; nil when the frame had none.
	ID json.RawMessage
	// Room is the room of join, leave, send, typing, presence, history,
	// edit, delete and the moderation frames.
	Room string
	// To is the recipient of a dm.
	To string
	// Data is the payload of send, dm and edit: any JSON value but null.
	Data json.RawMessage
	// Limit is the page size of history, 1–100 (50 when the client gave
	// none), and of presence, 1–MaxPresenceLimit (MaxPresenceLimit when
	// the client gave none).
	Limit int
	// Before asks history for messages with seq below it; 0 means newest.
	Before uint64
	// After asks presence for the members sorted after this user name; ""
	// means from the first.
	After string
	// HasSince reports whether a join asked for recovery from Since in Epoch.
	HasSince bool
	Since    uint64
	Epoch    string
	// Token is the new credential of a refresh.
	Token string
	// Seq is the target message of edit and delete, and the last message read
	// of a read; at least 1.
	Seq uint64
	// User is the user a mute, unmute, ban or unban is about.
	User string
	// Duration is how long a mute or ban lasts: 0 until it is lifted,
	// else at most MaxModDuration.
	Duration time.Duration
	// Reason is a ban's reason, at most MaxReasonLen bytes; "" for none.
	Reason string
}
