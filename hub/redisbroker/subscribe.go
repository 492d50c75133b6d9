package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// retryInterval is how often SUBSCRIBE commands that failed are retried.
const retryInterval = 500 * time.Millisecond

// waiter is a caller awaiting Redis's confirmation (kind "subscribe" or
// "unsubscribe") of a channel.
type waiter struct {
	kind string
	done chan struct{}
}

// SubscribeRoom implements hub.Broker. It reads the room's position first, so
// that a publication pub/sub loses, even the first one, is repaired from
// history; then it subscribes and waits, up to OpTimeout, for Redis to
// confirm. When Redis is unreachable it still returns nil: the subscription
// is made when Redis is back.
func (b *Broker) SubscribeRoom(ctx context.Context, room string) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("subscribe room: %w", errClosed)
	}
	st := &roomSub{name: room}
	if pos, err := b.position(ctx, room); err == nil {
		st.known, st.epoch, st.last = true, pos.Epoch, pos.Seq
	} else {
		b.log.Warn().Err(err).Str("room", room).Msg("subscribe room: position unknown; delivery starts with the first publication received")
	}
	s := b.shardOf(room)
	return b.subscribe(ctx, b.roomChannel(room), func() { s.setRoom(room, st) })
}

// UnsubscribeRoom implements hub.Broker. Nothing of the room is delivered
// once it returned.
func (b *Broker) UnsubscribeRoom(ctx context.Context, room string) error {
	s := b.shardOf(room)
	return b.unsubscribe(ctx, s, b.roomChannel(room), func() { s.setRoom(room, nil) })
}

// SubscribeUser implements hub.Broker, as SubscribeRoom.
func (b *Broker) SubscribeUser(ctx context.Context, user string) error {
	s := b.shardOf(user)
	return b.subscribe(ctx, b.userChannel(user), func() { s.setUser(user, true) })
}

// UnsubscribeUser implements hub.Broker, as UnsubscribeRoom.
func (b *Broker) UnsubscribeUser(ctx context.Context, user string) error {
	s := b.shardOf(user)
	return b.unsubscribe(ctx, s, b.userChannel(user), func() { s.setUser(user, false) })
}

// subscribe records the subscription (record runs with b.mu held), sends
// SUBSCRIBE and waits for the confirmation. go-redis remembers the channel
// even when SUBSCRIBE fails and subscribes again whenever it reconnects;
// the channel is also marked pending, for maintain to retry, in case the
// connection was replaced without it.
func (b *Broker) subscribe(ctx context.Context, channel string, record func()) error {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	w, err := b.begin(channel, "subscribe", record)
	if err != nil {
		return err
	}
	err = b.psSubscribe(psContext(ctx), channel)
	if err != nil {
		b.stats.errors.Add(1)
		b.mu.Lock()
		b.pending[channel] = true
		b.mu.Unlock()
	}
	b.subMu.Unlock()
	if err != nil {
		b.log.Warn().Err(err).Str("channel", channel).Msg("subscribe: will subscribe when Redis is back")
		b.stopWaiting(channel, w)
		return nil
	}
	b.await(ctx, channel, w)
	return nil
}

// unsubscribe forgets the subscription (forget runs with b.mu held), waits
// for a delivery of s under way, sends UNSUBSCRIBE and waits for the
// confirmation, so that a SendUser that follows does not count this node. A failed UNSUBSCRIBE needs no retry:
// go-redis forgot the channel, and the broken connection it was on is
// replaced without it.
func (b *Broker) unsubscribe(ctx context.Context, s *shard, channel string, forget func()) error {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	w, err := b.begin(channel, "unsubscribe", func() {
		forget()
		delete(b.pending, channel)
	})
	if err != nil {
		return err
	}
	s.deliverMu.Lock() // wait for a delivery under way: none follows
	s.deliverMu.Unlock()
	err = b.psUnsubscribe(psContext(ctx), channel)
	b.subMu.Unlock()
	if err != nil {
		b.stats.errors.Add(1)
		b.log.Debug().Err(err).Str("channel", channel).Msg("unsubscribe failed; the connection is replaced without it")
		b.stopWaiting(channel, w)
		return nil
	}
	b.await(ctx, channel, w)
	return nil
}

// begin starts a subscription change of kind on channel: it takes subMu
// (the caller releases it once the command is sent), runs change with b.mu
// held and registers a waiter for the confirmation. It fails once the broker
// is closed.
func (b *Broker) begin(channel, kind string, change func()) (*waiter, error) {
	b.subMu.Lock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.subMu.Unlock()
		return nil, fmt.Errorf("%s: %w", kind, errClosed)
	}
	change()
	return b.waitLocked(channel, kind), nil
}

// waitLocked registers a waiter for the confirmation of kind on channel. It
// returns nil before Start, when no receive loop would confirm.
func (b *Broker) waitLocked(channel, kind string) *waiter {
	if b.cancel == nil || b.closed {
		return nil
	}
	w := waiter{kind: kind, done: make(chan struct{})}
	b.waiters[channel] = append(b.waiters[channel], w)
	return &w
}

// confirmLocked releases the waiters for kind on channel.
func (b *Broker) confirmLocked(channel, kind string) {
	ws := b.waiters[channel]
	ws = slices.DeleteFunc(ws, func(w waiter) bool {
		if w.kind == kind {
			close(w.done)
			return true
		}
		return false
	})
	if len(ws) == 0 {
		delete(b.waiters, channel)
	} else {
		b.waiters[channel] = ws
	}
}

// await waits for w's confirmation, the end of the receive loop (Start's ctx
// was cancelled: no confirmation will come) or ctx. A confirmation that does
// not come in time is not an error: the command was sent.
func (b *Broker) await(ctx context.Context, channel string, w *waiter) {
	if w == nil {
		return
	}
	select {
	case <-w.done:
	case <-b.stopped:
		b.stopWaiting(channel, w)
	case <-ctx.Done():
		b.log.Warn().Str("channel", channel).Str("kind", w.kind).Msg("no confirmation from Redis in time")
		b.stopWaiting(channel, w)
	}
}

// stopWaiting drops w if it is still registered.
func (b *Broker) stopWaiting(channel string, w *waiter) {
	if w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := slices.DeleteFunc(b.waiters[channel], func(x waiter) bool { return x.done == w.done })
	if len(ws) == 0 {
		delete(b.waiters, channel)
	} else {
		b.waiters[channel] = ws
	}
}

// psContext returns the context for a command on the pub/sub connection:
// ctx's values without its deadline or cancellation. go-redis takes a
// deadline missed while it writes a command there (a caller's spent or
// short context) for a broken connection and replaces it, dropping what was
// in flight for every room and user of the node. The client's own timeouts
// (DialTimeout, WriteTimeout: OpTimeout) bound the command instead; callers
// still stop waiting for Redis's confirmation at their deadline (await).
func psContext(ctx context.Context) context.Context {
	return context.WithoutCancel(ctx)
}

// retryPending sends SUBSCRIBE again for the channels whose SUBSCRIBE failed
// and that no confirmation has covered since.
func (b *Broker) retryPending(ctx context.Context) {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	var channels []string
	for c := range b.pending {
		channels = append(channels, c)
	}
	b.mu.Unlock()
	if len(channels) == 0 {
		return
	}
	if b.sharded != nil {
		channels = b.sharded.subscribeEach(psContext(ctx), channels)
	} else if err := b.ps.Subscribe(psContext(ctx), channels...); err != nil {
		b.stats.errors.Add(1)
		return // still unreachable; the next tick tries again
	}
	b.mu.Lock()
	for _, c := range channels {
		delete(b.pending, c)
	}
	b.mu.Unlock()
}

// psSubscribe sends SUBSCRIBE, or SSUBSCRIBE on a cluster. subMu is held.
func (b *Broker) psSubscribe(ctx context.Context, channel string) error {
	if b.sharded != nil {
		return b.sharded.subscribe(ctx, []string{channel})
	}
	return b.ps.Subscribe(ctx, channel)
}

// psUnsubscribe sends UNSUBSCRIBE, or SUNSUBSCRIBE on a cluster. subMu is
// held.
func (b *Broker) psUnsubscribe(ctx context.Context, channel string) error {
	if b.sharded != nil {
		return b.sharded.unsubscribe(ctx, channel)
	}
	return b.ps.Unsubscribe(ctx, channel)
}
