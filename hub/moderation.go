package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Moderation: mutes, bans and freezes of a room. Their state lives in the
// broker, so that every node sees a change at once: a member's own write
// (send, edit, delete) is checked against mutes and the freeze atomically
// with its append (PublishRequest.Member), and a join against bans. A
// change travels to the room's nodes as an event delivered atomically with
// it: a ban takes the user's sessions out of the room on every node, each
// told with a left frame of reason banned; the muted user's sessions in the
// room get muted or unmuted, the room's members room_updated.
//
// The server API moderates every room; a user moderates the rooms its
// session operates (see Operator). Operators of a room, like the server
// API, are not held by its mutes and freeze: they still write to it. A
// ban holds everyone.

// Errors of moderation; Describe maps them to muted, banned, frozen,
// forbidden and too_many. ErrMuted and ErrBanned come wrapped in a
// *RestrictedError, which says until when.
var (
	ErrMuted       = errors.New("hub: muted in the room")
	ErrBanned      = errors.New("hub: banned from the room")
	ErrFrozen      = errors.New("hub: room frozen")
	ErrNotOperator = errors.New("hub: not an operator of the room")
	ErrModFull     = errors.New("hub: too many mutes and bans in the room")
)

// RestrictedError is a refusal because of a mute or a ban (Err is ErrMuted
// or ErrBanned) that lasts until Until (unix milliseconds; 0: until it is
// lifted).
type RestrictedError struct {
	Err   error
	Until int64
}

func (e *RestrictedError) Error() string {
	if e.Until == 0 {
		return e.Err.Error()
	}
	return e.Err.Error() + " until " + time.UnixMilli(e.Until).UTC().Format(time.RFC3339)
}

func (e *RestrictedError) Unwrap() error { return e.Err }

// ModKind is what a ModAction does.
type ModKind uint8

// The moderation actions.
const (
	ModMute ModKind = iota + 1
	ModUnmute
	ModBan
	ModUnban
	ModFreeze
	ModUnfreeze
)

// ModAction is one moderation change of a room.
type ModAction struct {
	Kind ModKind
	// User is the user a mute, unmute, ban or unban is about.
	User string
	// Duration is how long a mute or ban lasts; 0 until it is lifted.
	// Hub.Moderate turns it into Until.
	Duration time.Duration
	// Until is when a mute or ban ends, in unix milliseconds; 0 until it
	// is lifted. It is what a Broker stores; a later mute or ban of the
	// same user replaces it.
	Until int64
	// Reason is a ban's reason, kept with it; "" for none.
	Reason string
}

// Restriction is a mute or ban in force.
type Restriction struct {
	User string `json:"user"`
	// Until is when it ends, in unix milliseconds; 0 until it is lifted.
	Until int64 `json:"until"`
	// Reason is a ban's reason.
	Reason string `json:"reason,omitempty"`
}

// ModState is a room's moderation state.
type ModState struct {
	Frozen bool
	// Mutes and Bans are the restrictions in force, sorted by user, at
	// most MaxModList of each.
	Mutes, Bans []Restriction
	// More reports that mutes or bans beyond MaxModList were left out.
	More bool
}

// Bounds of a room's moderation state.
const (
	// MaxModEntries is how many mutes and bans a room holds at most, so
	// that its state has a byte budget: about 100 bytes each, with the
	// longest names and reasons some 300. A mute or ban beyond it is
	// refused with ErrModFull.
	MaxModEntries = 10000
	// MaxModList is how many mutes and how many bans ModState lists.
	MaxModList = 1000
)

// Operator is an optional capability of a Session: a session whose user
// may moderate some rooms (the token claim op) implements it. Operates
// must not block.
type Operator interface {
	Operates(room string) bool
}

// operates reports whether s moderates room.
func operates(s Session, room string) bool {
	op, ok := s.(Operator)
	return ok && op.Operates(room)
}

// asMember returns the PublishRequest.Member of s's write to room: its
// user, or "" for an operator of the room, whom mutes and freezes do not
// hold.
func asMember(s Session, room string) string {
	if operates(s, room) {
		return ""
	}
	return s.User()
}

// Moderate applies a to a room as the server API, tells the room, and
// returns a with Until set from Duration.
func (h *Hub) Moderate(ctx context.Context, room string, a ModAction) (ModAction, error) {
	return h.moderate(ctx, room, "system", a)
}

// moderate applies a to a room on behalf of by ("system" for the server
// API, else the operator), tells the room and reports it to webhooks.
func (h *Hub) moderate(ctx context.Context, room, by string, a ModAction) (ModAction, error) {
	a.Until = 0
	if a.Duration > 0 && (a.Kind == ModMute || a.Kind == ModBan) {
		a.Until = time.Now().Add(a.Duration).UnixMilli()
	}
	if a.Kind != ModBan {
		a.Reason = ""
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	if err := h.broker.Moderate(ctx, room, a, modEvent(room, a)); err != nil {
		return a, err
	}
	h.Emit(modWebhookTypes[a.Kind], WebhookModeration{Room: room, User: a.User, Until: a.Until, Reason: a.Reason, By: by})
	return a, nil
}

// modWebhookTypes are the webhook event types of the moderation actions.
var modWebhookTypes = map[ModKind]string{
	ModMute: WebhookModerationMuted, ModUnmute: WebhookModerationUnmuted,
	ModBan: WebhookModerationBanned, ModUnban: WebhookModerationUnbanned,
	ModFreeze: WebhookModerationFrozen, ModUnfreeze: WebhookModerationUnfrozen,
}

// ModerateAs applies a to a room for session s, whose user must operate
// the room: else it returns ErrNotOperator.
func (h *Hub) ModerateAs(ctx context.Context, s Session, room string, a ModAction) (ModAction, error) {
	if !operates(s, room) {
		return a, ErrNotOperator
	}
	return h.moderate(ctx, room, s.User(), a)
}

// Moderation returns a room's moderation state.
func (h *Hub) Moderation(ctx context.Context, room string) (ModState, error) {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	return h.broker.Moderation(ctx, room, "")
}

// modEvent returns the event that tells the room of a: none (a zero Event)
// for an unban, whose user is in no room.
func modEvent(room string, a ModAction) Event {
	switch a.Kind {
	case ModMute:
		return Event{Kind: EventTo, User: a.User, Frame: protocol.Encode(protocol.Muted{Type: protocol.TypeMuted, Room: room, Until: a.Until})}
	case ModUnmute:
		return Event{Kind: EventTo, User: a.User, Frame: protocol.Encode(protocol.Unmuted{Type: protocol.TypeUnmuted, Room: room})}
	case ModBan:
		return Event{Kind: EventBan, User: a.User, Frame: protocol.Encode(protocol.Left{Type: protocol.TypeLeft, Room: room, Reason: protocol.ReasonBanned})}
	case ModFreeze, ModUnfreeze:
		return Event{Frame: protocol.Encode(protocol.RoomUpdated{Type: protocol.TypeRoomUpdated, Room: room, Frozen: a.Kind == ModFreeze})}
	}
	return Event{}
}

// standing is what a joining user must know of a room's moderation.
type standing struct {
	frozen     bool
	muted      bool
	mutedUntil int64
}

// checkBan returns a *RestrictedError when user is banned from room, else
// the user's standing in it.
func (h *Hub) checkBan(ctx context.Context, room, user string) (standing, error) {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	st, err := h.broker.Moderation(ctx, room, user)
	if err != nil {
		return standing{}, fmt.Errorf("check ban: %w", err)
	}
	for _, b := range st.Bans {
		if b.User == user {
			return standing{}, &RestrictedError{Err: ErrBanned, Until: b.Until}
		}
	}
	out := standing{frozen: st.Frozen}
	for _, m := range st.Mutes {
		if m.User == user {
			out.muted, out.mutedUntil = true, m.Until
		}
	}
	return out, nil
}

// evict takes the local sessions of the room's banned user out of it, each
// told with the ban's left frame. A member still joining is marked, and
// its join fails instead (see activate). The rest of each exit (presence,
// the node's subscription) does I/O, which a delivery must not: it runs on
// a goroutine of the hub's, which Drain waits for.
func (h *Hub) evict(name string, e Event) {
	r := h.lookup(name)
	if r == nil {
		return
	}
	var gone []*member
	r.mu.Lock()
	for i := 0; i < len(r.list); {
		m := r.list[i]
		switch {
		case m.user != e.User:
			i++
		case m.joining:
			m.banned = true
			i++
		default:
			r.removeLocked(m.s) // moves the last member to i
			m.s.Enqueue(e.Frame)
			gone = append(gone, m)
		}
	}
	r.mu.Unlock()
	h.count.framesOut.AddFrame(e.Frame, len(gone))
	if len(gone) == 0 {
		return
	}
	h.mu.Lock()
	for _, m := range gone {
		delete(h.sessions[m.s], name)
	}
	h.bg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.bg.Done()
		for _, m := range gone {
			h.leaveRoom(m.s, r, m)
		}
	}()
}

// restrictedError describes a mute or ban to the client.
func restrictedError(e *RestrictedError) *protocol.Error {
	var perr *protocol.Error
	if errors.Is(e.Err, ErrBanned) {
		perr = protocol.Errorf(protocol.CodeBanned, "you are banned from this room")
	} else {
		perr = protocol.Errorf(protocol.CodeMuted, "you are muted in this room: you may read but not write")
	}
	if e.Until != 0 {
		perr.Message += " until " + time.UnixMilli(e.Until).UTC().Format(time.RFC3339)
		perr.Until = e.Until
	}
	return perr
}
