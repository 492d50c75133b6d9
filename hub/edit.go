package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Errors of edits and deletes; Describe maps them to not_found and
// forbidden.
var (
	// ErrNotFound: the target is not a message of the room's retained
	// history in its current epoch, or it was deleted.
	ErrNotFound = errors.New("hub: no such message")
	// ErrNotAuthor: the target was sent by another user.
	ErrNotAuthor = errors.New("hub: not the sender of the message")
)

// Target makes a publish an edit or a delete of an earlier message: a
// PublishRequest whose Target.Seq is not 0 is published only when, at the
// moment the broker appends it (atomically with the append), the room's
// retained history in its current epoch holds a message (a frame built by
// protocol.NewMessage; not an edit or delete entry) with seq Seq that no
// delete has targeted, sent by Author unless Author is "". Otherwise the
// broker publishes nothing and returns ErrNotFound or ErrNotAuthor, in that
// order of checks, after the idempotency check (a repeat of a publish that
// succeeded returns its position, whatever the target's state now).
// A Delete marks the target deleted for later edits and deletes.
type Target struct {
	Seq    uint64
	Author string
	Delete bool
}

// Edit replaces the data of a message the session's user sent to a room the
// session joined, by publishing a message_edited entry, and returns the
// entry's position. A repeat of an id the user already used recently to
// edit the same message publishes nothing and returns the first position.
func (h *Hub) Edit(ctx context.Context, s Session, room string, seq uint64, data, id json.RawMessage) (Position, error) {
	if !h.joined(s, room) {
		return Position{}, ErrNotMember
	}
	msg, err := protocol.NewEdited(room, s.User(), seq, data, time.Now().UnixMilli())
	if err != nil {
		return Position{}, err
	}
	return h.change(ctx, room, s.User(), data, PublishRequest{
		Message: msg, IdempotencyKey: idempotencyKey(s.User(), changeTarget("edit", room, seq), id),
		Target: Target{Seq: seq, Author: s.User()}, Member: asMember(s, room),
	})
}

// Delete deletes a message the session's user sent to a room the session
// joined (any message of the room when the session operates it, see
// Operator), by publishing a message_deleted entry, and returns the
// entry's position. Ids work as in Edit.
func (h *Hub) Delete(ctx context.Context, s Session, room string, seq uint64, id json.RawMessage) (Position, error) {
	if !h.joined(s, room) {
		return Position{}, ErrNotMember
	}
	author := asMember(s, room) // "" for an operator: any message
	msg := protocol.NewDeleted(room, s.User(), seq, time.Now().UnixMilli())
	return h.change(ctx, room, s.User(), nil, PublishRequest{
		Message: msg, IdempotencyKey: idempotencyKey(s.User(), changeTarget("delete", room, seq), id),
		Target: Target{Seq: seq, Author: author, Delete: true}, Member: author,
	})
}

// EditAs publishes, as user from, an edit of the room's message seq with
// data: only of a message author sent, or of any message when author is ""
// (the server API, operators). idempotencyKey may be empty.
func (h *Hub) EditAs(ctx context.Context, room, from, author string, seq uint64, data json.RawMessage, idempotencyKey string) (Position, error) {
	msg, err := protocol.NewEdited(room, from, seq, data, time.Now().UnixMilli())
	if err != nil {
		return Position{}, err
	}
	return h.change(ctx, room, from, data, PublishRequest{Message: msg, IdempotencyKey: idempotencyKey, Target: Target{Seq: seq, Author: author}})
}

// DeleteAs publishes, as user from, a delete of the room's message seq:
// only of a message author sent, or of any message when author is "".
// idempotencyKey may be empty.
func (h *Hub) DeleteAs(ctx context.Context, room, from, author string, seq uint64, idempotencyKey string) (Position, error) {
	msg := protocol.NewDeleted(room, from, seq, time.Now().UnixMilli())
	return h.change(ctx, room, from, nil, PublishRequest{Message: msg, IdempotencyKey: idempotencyKey, Target: Target{Seq: seq, Author: author, Delete: true}})
}

// change publishes an edit or delete entry r by from (data: the edit's) and
// reports it to webhooks unless it was an idempotent repeat.
func (h *Hub) change(ctx context.Context, room, from string, data json.RawMessage, r PublishRequest) (Position, error) {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	p, dup, err := h.broker.Publish(ctx, room, r)
	if err != nil {
		return Position{}, err
	}
	if !dup {
		h.count.published.Add(1)
		typ := WebhookMessageEdited
		if r.Target.Delete {
			typ = WebhookMessageDeleted
		}
		h.Emit(typ, WebhookMessage{Room: room, Seq: p.Seq, Epoch: p.Epoch, From: from, Target: r.Target.Seq, Data: data})
	}
	return Position{Seq: p.Seq, Epoch: p.Epoch}, nil
}

// changeTarget scopes an edit's or delete's id to its message, so that an
// id reused for another message is not taken for a retry.
func changeTarget(op, room string, seq uint64) string {
	return op + ":" + room + ":" + strconv.FormatUint(seq, 10)
}
