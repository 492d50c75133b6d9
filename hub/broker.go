package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// ErrUnavailable is returned (wrapped) by a Broker or Presence that cannot
// reach its backing store. Clients see it as the error code "unavailable".
var ErrUnavailable = errors.New("hub: broker unavailable")

// ErrMaybeDelivered is returned (wrapped, together with ErrUnavailable) when a
// publish timed out after it may already have taken effect: the client is told
// so, and its retry with the same id is made safe by idempotency.
var ErrMaybeDelivered = errors.New("hub: publish timed out and may have been delivered")

// Position is a place in a room's stream: the seq of its last message and the
// epoch, the id of this life of the room's history. When history is lost
// (Redis restarted without persistence, keys expired) a new epoch starts and
// seq starts again at 1.
type Position struct {
	Seq   uint64
	Epoch string
}

// Publication is one message of a room as stored in history and delivered to
// subscribers: its seq, the epoch it belongs to, and its encoded message frame.
type Publication struct {
	Seq   uint64
	Epoch string
	Frame []byte
}

// Event is an ephemeral frame for a room or a user: typing, member events,
// direct messages, or a control command. Events have no seq and are not stored.
type Event struct {
	Kind EventKind
	// Exclude names a user whose sessions must not get the frame (the typer,
	// the joiner); empty for none.
	Exclude string
	// User is the user an EventTo or EventBan is about.
	User string
	// Frame is the encoded frame; empty for EventKick.
	Frame []byte
}

// EventKind says what the hub does with an Event.
type EventKind uint8

const (
	// EventFrame delivers Frame to the local sessions of the room or user.
	EventFrame EventKind = iota
	// EventKick closes every local session of the user (server API).
	EventKick
	// EventTo delivers Frame only to User's local sessions in the room.
	EventTo
	// EventBan takes User's local sessions out of the room, sending each
	// Frame, its left frame (moderation.go).
	EventBan
)

// PublishRequest is what Publish stores and delivers.
type PublishRequest struct {
	Message protocol.MessageTemplate
	// IdempotencyKey, when not empty, makes the publish happen at most once
	// per key within IdempotencyTTL: a repeat returns the first publish's
	// Seq and Epoch (not its Frame: only that much is kept per key) with
	// duplicate = true and publishes nothing.
	IdempotencyKey string
	// Target, when its Seq is not 0, makes the publish an edit or delete
	// of an earlier message, checked atomically with the append (see
	// Target, in edit.go).
	Target Target
	// Member, when not "", makes the publish a member's own write (not the
	// server API's, not an operator's): it is refused with a
	// *RestrictedError of ErrBanned or ErrMuted when Member is banned or
	// muted in the room, else with ErrFrozen when the room is frozen,
	// checked atomically with the append, after the idempotency check and
	// before the target's. (A banned member is taken out of the room, but
	// the event that does so may be lost with a node's Redis connection.)
	Member string
}

// HistoryQuery selects publications of a room, always returned oldest first.
type HistoryQuery struct {
	// Since, when HasSince, asks for every retained publication with seq >
	// Since (recovery); Limit and Before are then ignored. When Epoch is
	// set and is not the room's epoch, no publication is returned: they
	// would be of another life of the room.
	HasSince bool
	Since    uint64
	Epoch    string
	// Before, when not 0, asks for publications with seq < Before.
	Before uint64
	// Limit caps the number of publications (the newest Limit below Before).
	// 0 asks for none: only the current Position.
	Limit int
	// MaxBytes, when not 0, caps the summed Frame sizes returned, so that
	// nothing is read that would not be sent. A Limit query returns the
	// newest publications that fit (at least one); a Since query stops
	// before the first that does not fit and sets Truncated.
	MaxBytes int
}

// HistoryPage is the answer to History.
type HistoryPage struct {
	Publications []Publication
	// Position is the room's current position (last seq and epoch). A room
	// never published to has seq 0 and a fresh epoch.
	Position Position
	// Truncated reports that a Since query left out publications to stay
	// within MaxBytes.
	Truncated bool
}

// Handler receives what a Broker delivers. The hub implements it. Its methods
// never block on a client and never call back into the Broker. A Broker may
// call them from several goroutines at once, but for one room (or one user)
// from one at a time, in order.
type Handler interface {
	// HandlePublication delivers a room message. Per room, publications come
	// in seq order without gaps or duplicates within an epoch.
	HandlePublication(room string, p Publication)
	// HandleRoomEvent delivers an ephemeral event to a room.
	HandleRoomEvent(room string, e Event)
	// HandleUserEvent delivers an ephemeral event to a user.
	HandleUserEvent(user string, e Event)
}

// Broker moves messages between the sessions of a room or user, on this node
// and, for a networked implementation, on every node. It also owns room
// history, so that assigning a seq, storing the message and publishing it are
// one atomic step. Implementations are safe for concurrent use.
type Broker interface {
	// Start makes the broker deliver to h. It is called once, before any other
	// method.
	Start(ctx context.Context, h Handler) error

	// Publish assigns the room's next seq, appends the message to history and
	// delivers it to every node subscribed to the room.
	Publish(ctx context.Context, room string, r PublishRequest) (p Publication, duplicate bool, err error)
	// History returns publications of a room and its current position. It
	// never creates state for a room (reading a room nobody published to
	// stores nothing); SubscribeRoom may.
	History(ctx context.Context, room string, q HistoryQuery) (HistoryPage, error)
	// BroadcastRoom delivers an event to every node subscribed to the room.
	BroadcastRoom(ctx context.Context, room string, e Event) error
	// SendUser delivers an event to every node subscribed to the user and
	// reports whether any was. idempotencyKey works as in PublishRequest;
	// a duplicate reports delivered = true and sends nothing.
	SendUser(ctx context.Context, user string, e Event, idempotencyKey string) (delivered, duplicate bool, err error)

	// SubscribeRoom and UnsubscribeRoom start and stop delivery of a room to
	// this node's Handler. The hub reference-counts them: it calls
	// SubscribeRoom when the room's first local member joins and
	// UnsubscribeRoom when the last one leaves, never twice in a row.
	SubscribeRoom(ctx context.Context, room string) error
	UnsubscribeRoom(ctx context.Context, room string) error
	// SubscribeUser and UnsubscribeUser do the same for a user's events, held
	// while the user has a session on this node.
	SubscribeUser(ctx context.Context, user string) error
	UnsubscribeUser(ctx context.Context, user string) error

	// Moderate applies a moderation change to the room (moderation.go)
	// and, atomically with it, delivers e, unless it is the zero Event, to
	// every node subscribed to the room: a node that subscribed before a
	// Moderation read which missed the change gets e. A mute or ban of a
	// user replaces the user's earlier one; one beyond MaxModEntries is
	// refused with ErrModFull. Mutes and bans end by themselves at Until.
	Moderate(ctx context.Context, room string, a ModAction, e Event) error
	// Moderation returns the room's moderation state in force; with user
	// not "", only that user's mute and ban. It never creates state.
	Moderation(ctx context.Context, room, user string) (ModState, error)

	// Ready reports whether the broker can serve traffic now.
	Ready(ctx context.Context) error
	// Close stops delivery and releases resources.
	Close(ctx context.Context) error
}

// Presence tracks which users are in which rooms across all nodes, and
// announces the changes. The hub calls Add when a user's first session on
// this node joins a room and Remove when the user's last session on this
// node leaves it; an implementation shared by several nodes keeps one entry
// per (room, user, node) and expires the entries of a node that stops
// refreshing them.
//
// Presence, not the hub, sends member_joined and member_left (excluding the
// user's own sessions, built with MemberChange), atomically with the change
// that causes them, so that every node sees a room's member events in the
// order of its presence changes: a client that applies joined.members (and
// the further pages of Members) and then the events ends with the same set
// as Members. An entry that expires (its node crashed) is announced as
// member_left exactly once, by whichever node notices it, and reported to
// that node's hub when the Presence is a DepartureReporter. A change is
// announced only while protocol.Announced says so: in rooms of more than
// protocol.MemberEventsMax members nobody is told of each join, so that a
// storm of N joins costs O(N) frames, not O(N²).
//
// Add, Remove and Members cost O(log N) in the room's members (Members
// plus the page it returns).
type Presence interface {
	// Add records user in room for this node and reports whether the user
	// was in the room on no node before; then it announces member_joined.
	Add(ctx context.Context, room, user string) (first bool, err error)
	// Remove drops this node's entry and reports whether the user is now in
	// the room on no node; then it announces member_left. When it fails
	// (the backing store is unreachable) the removal is retried until it
	// succeeds or the user is added again, so the announcement is late,
	// never lost (a DepartureReporter reports the retry that took the
	// user's last entry).
	Remove(ctx context.Context, room, user string) (last bool, err error)
	// Members returns a page of the users in room on any node: up to limit
	// (at least 1) of them, sorted, after the user after ("" for the first
	// page), read together with the room's member count.
	Members(ctx context.Context, room, after string, limit int) (MemberPage, error)
}

// DepartureReporter is an optional capability of a Presence shared by
// several nodes, which the hub finds by type assertion. Some users leave a
// room without a Remove that reports last = true to a hub: the users of a
// node that crashed, whose entries expired (their last session never left),
// and users whose Remove failed and was retried later. The Presence reports
// each of these departures once, on the one node whose call found it (the
// node that reaped the expired entries, the node that retried the removal),
// by calling f with the room and the users that left it on every node.
//
// New calls ReportDepartures once, before Start; f emits member.left for
// each user, as Remove's last = true does. f does not block and may be
// called from any goroutine, the Presence's own included.
type DepartureReporter interface {
	ReportDepartures(f func(room string, users []string))
}

// ReturnReporter is an optional capability of a Presence shared by several
// nodes, which the hub finds by type assertion. A node cut off from the
// shared store for longer than its entries live is taken for crashed: its
// users' departures are reported (DepartureReporter) elsewhere. Once it
// reaches the store again it adds the entries it still holds, and the
// Presence reports each user who is thus in a room again, on every node,
// by calling f with the room and those users, once, on that node.
//
// New calls ReportReturns once, before Start; f emits member.joined for
// each user, as Add's first = true does. f does not block and may be
// called from any goroutine, the Presence's own included.
type ReturnReporter interface {
	ReportReturns(f func(room string, users []string))
}

// MemberPage is a page of a room's members.
type MemberPage struct {
	// Users are the members in the page, sorted by name.
	Users []string
	// Count is the number of members of the room.
	Count int
	// More reports that members follow the last of Users.
	More bool
}

// MemberChange returns the member_joined or member_left event of user in
// room, which has count members after the change, for the room's other
// users.
func MemberChange(room, typ, user string, count int) Event {
	frame := protocol.Encode(protocol.MemberChange{Type: typ, Room: room, User: user, MemberCount: count})
	return Event{Frame: frame, Exclude: user}
}

// DefaultIdempotencyTTL is how long a publish's idempotency key is kept.
const DefaultIdempotencyTTL = 5 * time.Minute

// DefaultHistoryMaxBytes is the default cap on the summed frame sizes of one
// room's history.
const DefaultHistoryMaxBytes = 1 << 20

// NewEpoch returns a new random epoch id.
func NewEpoch() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
