package redisbroker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// resyncInterval is how often a failed or postponed resync is tried again.
const resyncInterval = 500 * time.Millisecond

// receive is the receive loop: it hands what the node's pub/sub connection
// receives to the shard of its room or user (see shard.go), waiting while
// that shard's queue is full, and releases the callers awaiting a
// subscription's confirmation. It neither decodes payloads nor waits on
// Redis. On exit it releases the callers still waiting, ends the shards,
// closes the connection and drains go-redis's buffer so that its goroutine
// ends too.
func (b *Broker) receive(ctx context.Context, ch <-chan any) {
	defer func() {
		close(b.stopped)
		for _, s := range b.shards {
			close(s.queue)
		}
		b.ps.Close()
		for range ch {
		}
	}()
	full := false
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			wasFull := full
			full = b.noteBacklog(len(ch), full)
			switch m := m.(type) {
			case *redis.Message:
				b.route(ctx, m)
			case *redis.Subscription:
				if st := b.onSubscription(m); st != nil {
					b.handOver(ctx, b.shardOf(st.name), delivery{kind: resyncRoom, st: st})
				}
			}
			if wasFull && !full {
				for _, s := range b.shards {
					b.handOver(ctx, s, delivery{kind: resyncRooms})
				}
			}
		}
	}
}

// route hands a message to the shard of its room or user.
func (b *Broker) route(ctx context.Context, m *redis.Message) {
	name, room, ok := b.channelName(m.Channel)
	switch {
	case !ok:
	case room:
		b.handOver(ctx, b.shardOf(name), delivery{kind: roomMessage, name: name, payload: m.Payload})
	default:
		b.handOver(ctx, b.shardOf(name), delivery{kind: userMessage, name: name, payload: m.Payload})
	}
}

// handOver queues d for s, waiting while s's queue is full (meanwhile
// go-redis buffers, see noteBacklog), unless ctx ends.
func (b *Broker) handOver(ctx context.Context, s *shard, d delivery) {
	select {
	case s.queue <- d:
	case <-ctx.Done():
	}
}

// noteBacklog counts and logs the buffer becoming full (n is its length
// after a receive) and reports whether it is still considered full: from
// then until it is half empty.
func (b *Broker) noteBacklog(n int, full bool) bool {
	switch {
	case !full && n >= b.opt.channelSize-1:
		b.stats.backlogged.Add(1)
		b.log.Warn().Int("buffered", n).Dur("drop_after_ms", b.opt.channelSendTimeout).
			Msg("receive buffer full: pub/sub messages may be dropped; publications will be repaired from history")
		return true
	case full && n < b.opt.channelSize/2:
		return false
	}
	return full
}

// onSubscription handles Redis's confirmation of a SUBSCRIBE or
// UNSUBSCRIBE (SSUBSCRIBE, SUNSUBSCRIBE on a cluster, counted as the
// same), sent for a call of this node or when go-redis resubscribes after
// reconnecting. It returns a confirmed room, to be resynced.
func (b *Broker) onSubscription(m *redis.Subscription) *roomSub {
	kind := m.Kind
	switch kind {
	case "ssubscribe":
		kind = "subscribe"
	case "sunsubscribe":
		kind = "unsubscribe"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.confirmLocked(m.Channel, kind)
	if kind != "subscribe" {
		return nil
	}
	delete(b.pending, m.Channel)
	room, isRoom, ok := b.channelName(m.Channel)
	if !ok || !isRoom {
		return nil
	}
	return b.shardOf(room).room(room)
}

func (b *Broker) malformed(payload string) {
	b.stats.malformed.Add(1)
	b.log.Error().Int("len", len(payload)).Msg("malformed pub/sub message")
}
