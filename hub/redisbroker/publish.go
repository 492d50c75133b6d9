package redisbroker

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// Publish implements hub.Broker with one Lua script: it checks the
// idempotency key, assigns the seq, appends to history and publishes. A
// timeout or lost connection returns an error matching hub.ErrUnavailable
// and hub.ErrMaybeDelivered: the script may have run.
func (b *Broker) Publish(ctx context.Context, room string, r hub.PublishRequest) (hub.Publication, bool, error) {
	keys := []string{b.metaKey(room), b.streamKey(room)}
	if r.IdempotencyKey != "" {
		keys = append(keys, b.pubIdemKey(r.IdempotencyKey))
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	res, err := publishScript.Run(ctx, b.client, keys,
		r.Message.Prefix, r.Message.Suffix, hub.NewEpoch(),
		b.cfg.HistorySize, ms(b.cfg.HistoryTTL), b.roomChannel(room), ms(b.cfg.IdempotencyTTL),
	).Slice()
	if err != nil {
		return hub.Publication{}, false, wrapMaybe("publish", err)
	}
	if len(res) != 2 {
		return hub.Publication{}, false, fmt.Errorf("publish: %w", errEnvelope)
	}
	dup, _ := res[0].(int64)
	env, _ := res[1].(string)
	p, err := decodePublication(env)
	if err != nil {
		return hub.Publication{}, false, fmt.Errorf("publish: %w", err)
	}
	return p, dup == 1, nil
}

// History implements hub.Broker.
func (b *Broker) History(ctx context.Context, room string, q hub.HistoryQuery) (hub.HistoryPage, error) {
	switch {
	case q.HasSince && q.Since < math.MaxUint64:
		return b.readHistory(ctx, room, "since", seqID(q.Since+1), 0, "")
	case !q.HasSince && q.Limit > 0 && q.Before != 1:
		last := "+"
		if q.Before != 0 {
			last = seqID(q.Before - 1)
		}
		page, err := b.readHistory(ctx, room, "before", last, q.Limit, "")
		slices.Reverse(page.Publications) // XREVRANGE: newest first
		return page, err
	}
	return b.readHistory(ctx, room, "pos", "", 0, "")
}

// position returns the room's position, giving a new room its epoch.
func (b *Broker) position(ctx context.Context, room string) (hub.Position, error) {
	page, err := b.readHistory(ctx, room, "pos", "", 0, "")
	return page.Position, err
}

// readHistory runs history.lua: mode "pos" reads the position only, "since"
// the publications from stream id on (all of them when the room's epoch is
// not epoch, unless epoch is empty), "range" those from id to arg (none
// when the room's epoch is not epoch), "before" the newest arg up to id.
func (b *Broker) readHistory(ctx context.Context, room, mode, id string, arg any, epoch string) (hub.HistoryPage, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	res, err := historyScript.Run(ctx, b.client, []string{b.metaKey(room), b.streamKey(room)},
		hub.NewEpoch(), ms(b.cfg.HistoryTTL), mode, id, arg, epoch,
	).Slice()
	if err != nil {
		return hub.HistoryPage{}, wrap("history", err)
	}
	page, err := parseHistory(res)
	if err != nil {
		return hub.HistoryPage{}, fmt.Errorf("history: %w", err)
	}
	return page, nil
}

// parseHistory decodes history.lua's {epoch, seq, entries}.
func parseHistory(res []any) (hub.HistoryPage, error) {
	var page hub.HistoryPage
	if len(res) != 3 {
		return page, errEnvelope
	}
	epoch, _ := res[0].(string)
	seq, err := strconv.ParseUint(fmt.Sprint(res[1]), 10, 64)
	if err != nil {
		return page, errEnvelope
	}
	page.Position = hub.Position{Seq: seq, Epoch: epoch}
	entries, _ := res[2].([]any)
	for _, e := range entries {
		p, err := parseEntry(e)
		if err != nil {
			return page, err
		}
		p.Epoch = epoch
		page.Publications = append(page.Publications, p)
	}
	return page, nil
}

// parseEntry decodes one stream entry, [id, [field, value, ...]].
func parseEntry(e any) (hub.Publication, error) {
	entry, _ := e.([]any)
	if len(entry) != 2 {
		return hub.Publication{}, errEnvelope
	}
	id, _ := entry[0].(string)
	seq, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return hub.Publication{}, errEnvelope
	}
	fields, _ := entry[1].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "f" {
			frame, _ := fields[i+1].(string)
			return hub.Publication{Seq: n, Frame: []byte(frame)}, nil
		}
	}
	return hub.Publication{}, errEnvelope
}

// BroadcastRoom implements hub.Broker.
func (b *Broker) BroadcastRoom(ctx context.Context, room string, e hub.Event) error {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	return wrap("broadcast room", b.client.Publish(ctx, b.roomChannel(room), encodeEvent(e)).Err())
}

// SendUser implements hub.Broker. delivered reports whether a node was
// subscribed to the user when Redis published the event; with an
// idempotency key, checking, publishing and remembering the key (only when
// delivered) are one Lua script.
func (b *Broker) SendUser(ctx context.Context, user string, e hub.Event, idempotencyKey string) (delivered, duplicate bool, err error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	channel, env := b.userChannel(user), encodeEvent(e)
	if idempotencyKey == "" {
		n, err := b.client.Publish(ctx, channel, env).Result()
		return n > 0, false, wrapMaybe("send user", err)
	}
	n, err := sendUserScript.Run(ctx, b.client, []string{b.userIdemKey(idempotencyKey)},
		channel, env, ms(b.cfg.IdempotencyTTL),
	).Int64()
	if err != nil {
		return false, false, wrapMaybe("send user", err)
	}
	if n < 0 {
		return true, true, nil
	}
	return n > 0, false, nil
}

// seqID returns the stream id, without its always-0 sequence part, of seq.
func seqID(seq uint64) string {
	return strconv.FormatUint(seq, 10)
}

// ms returns d in whole milliseconds, at least 1.
func ms(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}
