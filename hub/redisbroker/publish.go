package redisbroker

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
)

// Publish implements hub.Broker with one Lua script: it checks the
// idempotency key, assigns the seq, appends to history, trims it to
// HistorySize and HistoryMaxBytes and publishes. A timeout or lost
// connection returns an error matching hub.ErrUnavailable and
// hub.ErrMaybeDelivered: the script may have run. A duplicate returns the
// first publish's Seq and Epoch without Frame: the key keeps only those.
func (b *Broker) Publish(ctx context.Context, room string, r hub.PublishRequest) (hub.Publication, bool, error) {
	keys := []string{b.metaKey(room), b.streamKey(room), b.modKey(room)}
	if r.IdempotencyKey != "" {
		keys = append(keys, b.pubIdemKey(room, r.IdempotencyKey))
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	args := []any{r.Message.Prefix, r.Message.Suffix, hub.NewEpoch(),
		b.cfg.HistorySize, ms(b.cfg.HistoryTTL), b.roomChannel(room), ms(b.cfg.IdempotencyTTL),
		b.cfg.HistoryMaxBytes, b.publishCmd(), r.Member,
	}
	args = append(args, targetArgs(r.Target)...)
	res, err := b.scripts.publish.Run(ctx, b.client, keys, args...).Slice()
	if err != nil {
		return hub.Publication{}, false, wrapMaybe("publish", err)
	}
	if len(res) != 3 {
		return hub.Publication{}, false, fmt.Errorf("publish: %w", errEnvelope)
	}
	dup, _ := res[0].(int64)
	if dup == -1 {
		return hub.Publication{}, false, refused(res[1], res[2])
	}
	epoch, _ := res[1].(string)
	seq, err := strconv.ParseUint(fmt.Sprint(res[2]), 10, 64)
	if err != nil || epoch == "" {
		return hub.Publication{}, false, fmt.Errorf("publish: %w", errEnvelope)
	}
	p := hub.Publication{Seq: seq, Epoch: epoch}
	if dup == 1 {
		return p, true, nil
	}
	p.Frame = r.Message.Frame(seq)
	return p, false, nil
}

// History implements hub.Broker. It writes nothing to Redis.
func (b *Broker) History(ctx context.Context, room string, q hub.HistoryQuery) (hub.HistoryPage, error) {
	switch {
	case q.HasSince && q.Since < math.MaxUint64:
		return b.readHistory(ctx, room, historyRead{
			mode: "since", from: seqID(q.Since + 1), epoch: q.Epoch, maxBytes: q.MaxBytes,
		})
	case !q.HasSince && q.Limit > 0 && q.Before != 1:
		last := "+"
		if q.Before != 0 {
			last = seqID(q.Before - 1)
		}
		page, err := b.readHistory(ctx, room, historyRead{
			mode: "before", from: last, to: strconv.Itoa(q.Limit), maxBytes: q.MaxBytes,
		})
		slices.Reverse(page.Publications) // XREVRANGE: newest first
		return page, err
	}
	return b.readHistory(ctx, room, historyRead{mode: "pos"})
}

// position returns the room's position, giving a room without history its
// epoch: SubscribeRoom's read, the only one that writes.
func (b *Broker) position(ctx context.Context, room string) (hub.Position, error) {
	page, err := b.readHistory(ctx, room, historyRead{mode: "pos", create: true})
	return page.Position, err
}

// historyRead is one run of history.lua (see there for the modes).
type historyRead struct {
	mode     string // "pos", "since", "resync", "range" or "before"
	from, to string // ARGV[4] and ARGV[5]
	epoch    string // the epoch the caller knows, or ""
	maxBytes int    // cap on the frame bytes returned, 0 for none
	create   bool   // give a room without meta its meta
}

// readHistory runs history.lua.
func (b *Broker) readHistory(ctx context.Context, room string, r historyRead) (hub.HistoryPage, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	create := "0"
	if r.create {
		create = "1"
	}
	res, err := b.scripts.history.Run(ctx, b.client, []string{b.metaKey(room), b.streamKey(room)},
		hub.NewEpoch(), ms(b.cfg.HistoryTTL), r.mode, r.from, r.to, r.epoch, max(r.maxBytes, 0), create,
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

// parseHistory decodes history.lua's {epoch, seq, entries, truncated}.
func parseHistory(res []any) (hub.HistoryPage, error) {
	var page hub.HistoryPage
	if len(res) != 4 {
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
	truncated, _ := res[3].(int64)
	page.Truncated = truncated == 1
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
	return wrap("broadcast room", b.publish(ctx, b.roomChannel(room), encodeEvent(e)).Err())
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
		n, err := b.publish(ctx, channel, env).Result()
		return n > 0, false, wrapMaybe("send user", err)
	}
	n, err := sendUserScript.Run(ctx, b.client, []string{b.userIdemKey(user, idempotencyKey)},
		channel, env, ms(b.cfg.IdempotencyTTL), b.publishCmd(),
	).Int64()
	if err != nil {
		return false, false, wrapMaybe("send user", err)
	}
	if n < 0 {
		return true, true, nil
	}
	return n > 0, false, nil
}

// The scripts' publish command, boxed once: a string converted to any on
// every call would cost an allocation per publish.
var publishArg, spublishArg any = "PUBLISH", "SPUBLISH"

// publishCmd names the publish command of the scripts: SPUBLISH on a
// cluster, where the scripts' channels are in their keys' slot.
func (b *Broker) publishCmd() any {
	if b.cfg.Cluster {
		return spublishArg
	}
	return publishArg
}

// publish publishes payload on channel, with SPUBLISH on a cluster. The
// reply counts the subscribers (on a cluster, those of the channel's
// master: the only node the broker subscribes shard channels on).
func (b *Broker) publish(ctx context.Context, channel, payload string) *redis.IntCmd {
	if b.cfg.Cluster {
		return b.client.SPublish(ctx, channel, payload)
	}
	return b.client.Publish(ctx, channel, payload)
}

// seqID returns the stream id, without its always-0 sequence part, of seq.
func seqID(seq uint64) string {
	return strconv.FormatUint(seq, 10)
}

// ms returns d in whole milliseconds, at least 1.
func ms(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}
