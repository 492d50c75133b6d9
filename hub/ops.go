package hub

import (
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Send publishes data to a room the session joined and returns the
// message's position: its seq and epoch. A repeat of an id the user already
// used recently in this room publishes nothing and returns the first
// position.
func (h *Hub) Send(ctx context.Context, s Session, room string, data json.RawMessage, id json.RawMessage) (Position, error) {
	if !h.joined(s, room) {
		return Position{}, ErrNotMember
	}
	return h.publish(ctx, room, s.User(), data, idempotencyKey(s.User(), "send:"+room, id), asMember(s, room))
}

// Publish publishes data to a room as user from, whether or not from is
// connected (the server API uses it), and returns the message's position.
// idempotencyKey may be empty.
func (h *Hub) Publish(ctx context.Context, room, from string, data json.RawMessage, idempotencyKey string) (Position, error) {
	return h.publish(ctx, room, from, data, idempotencyKey, "")
}

// publish is Publish with PublishRequest.Member.
func (h *Hub) publish(ctx context.Context, room, from string, data json.RawMessage, idempotencyKey, member string) (Position, error) {
	msg, err := protocol.NewMessage(room, from, data, time.Now().UnixMilli())
	if err != nil {
		return Position{}, err
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	p, dup, err := h.broker.Publish(ctx, room, PublishRequest{Message: msg, IdempotencyKey: idempotencyKey, Member: member})
	if err != nil {
		return Position{}, err
	}
	if !dup {
		h.count.published.Add(1)
		h.Emit(WebhookMessageSent, WebhookMessage{Room: room, Seq: p.Seq, Epoch: p.Epoch, From: from, Data: data})
	}
	return Position{Seq: p.Seq, Epoch: p.Epoch}, nil
}

// Typing tells the room's other users that the session's user is typing.
func (h *Hub) Typing(ctx context.Context, s Session, room string) error {
	if !h.joined(s, room) {
		return ErrNotMember
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	return h.broker.BroadcastRoom(ctx, room, MemberEvent(room, protocol.TypeTyping, s.User()))
}

// DM sends data to every session of user to, and a copy to every session of
// the sender (so the sender's other tabs see it too). It returns ErrOffline
// when to has no session anywhere. A repeat of an id the sender already used
// recently for a DM to the same user sends nothing.
func (h *Hub) DM(ctx context.Context, s Session, to string, data json.RawMessage, id json.RawMessage) error {
	return h.DirectMessage(ctx, s.User(), to, data, idempotencyKey(s.User(), "dm:"+to, id), true)
}

// DirectMessage sends data from user from to every session of user to,
// copying it to from's sessions when echo is set.
func (h *Hub) DirectMessage(ctx context.Context, from, to string, data json.RawMessage, idempotencyKey string, echo bool) error {
	frame, err := protocol.NewDM(from, to, data, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	sctx, cancel := h.opContext(ctx)
	delivered, dup, err := h.broker.SendUser(sctx, to, Event{Frame: frame}, idempotencyKey)
	cancel()
	switch {
	case err != nil:
		return err
	case !delivered:
		return ErrOffline
	case dup || !echo || from == to:
		return nil
	}
	ctx, cancel = h.opContext(ctx)
	defer cancel()
	if _, _, err := h.broker.SendUser(ctx, from, Event{Frame: frame}, ""); err != nil {
		h.log.Warn().Err(err).Str("user", from).Msg("echo dm to sender")
	}
	return nil
}

// Kick closes every session of user on every node and reports whether it had
// any.
func (h *Hub) Kick(ctx context.Context, user string) (bool, error) {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	delivered, _, err := h.broker.SendUser(ctx, user, Event{Kind: EventKick}, "")
	return delivered, err
}

// Members returns every user in a room on any node, reading all the pages:
// for tests and tools; requests page with MemberPage.
func (h *Hub) Members(ctx context.Context, room string) ([]string, error) {
	return h.members(ctx, room)
}

// History returns up to limit messages of a room with seq below before (0:
// the newest), oldest first, and the room's position. maxBytes, when not 0,
// caps the messages' summed size: the newest that fit are returned, at
// least one.
func (h *Hub) History(ctx context.Context, room string, before uint64, limit, maxBytes int) (HistoryPage, error) {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	return h.broker.History(ctx, room, HistoryQuery{Before: before, Limit: limit, MaxBytes: maxBytes})
}

// delivery is the hub's Handler, kept off the Hub's own method set.
type delivery struct{ h *Hub }

func (d delivery) HandlePublication(room string, p Publication) { d.h.deliver(room, p) }
func (d delivery) HandleRoomEvent(room string, e Event)         { d.h.deliverEvent(room, e) }
func (d delivery) HandleUserEvent(user string, e Event)         { d.h.deliverUser(user, e) }

// deliverUser hands an event to the user's local sessions.
func (h *Hub) deliverUser(user string, e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[user]
	if u == nil {
		return
	}
	for s := range u.sessions {
		switch e.Kind {
		case EventKick:
			s.Close(protocol.CloseKicked, "disconnected by the server")
		default:
			s.Enqueue(e.Frame)
		}
	}
	if e.Kind != EventKick {
		h.count.framesOut.AddFrame(e.Frame, len(u.sessions))
	}
}

// MemberEvent returns the typing event (or another event of typ naming user)
// of user in room, for the room's other users. Member events, which carry
// the room's count, come from MemberChange.
func MemberEvent(room, typ, user string) Event {
	frame := protocol.Encode(protocol.MemberEvent{Type: typ, Room: room, User: user})
	return Event{Frame: frame, Exclude: user}
}
