package redisbroker

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
)

// resyncInterval is how often a failed or postponed resync is tried again.
const resyncInterval = 500 * time.Millisecond

// receive is the receive loop: it delivers what the node's pub/sub
// connection receives and has the repair workers read gaps from history
// (see repair.go); it never waits on Redis. On exit it releases the callers
// awaiting a confirmation, closes the connection and drains go-redis's
// buffer so that its goroutine ends too.
func (b *Broker) receive(ctx context.Context, ch <-chan any) {
	defer func() {
		close(b.stopped)
		b.ps.Close()
		for range ch {
		}
	}()
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	full := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			b.resyncPending()
		case res := <-b.repairs.done:
			b.repaired(res, time.Now())
		case m, ok := <-ch:
			if !ok {
				return
			}
			wasFull := full
			full = b.noteBacklog(len(ch), full)
			switch m := m.(type) {
			case *redis.Message:
				b.onMessage(m)
			case *redis.Subscription:
				if st := b.onSubscription(m); st != nil {
					b.needResync(st)
				}
			}
			if wasFull && !full {
				b.resyncAll()
			}
		}
		b.dispatch(ctx)
	}
}

// resyncAll resyncs every subscribed room whose position is known, once a
// full buffer has drained. While it was full go-redis may have dropped
// messages, of any room; a drop is repaired when the room's next
// publication shows the gap, but the last ones dropped may have none.
func (b *Broker) resyncAll() {
	b.mu.Lock()
	rooms := slices.Collect(maps.Values(b.rooms))
	b.mu.Unlock()
	for _, st := range rooms {
		b.needResync(st)
	}
}

// noteBacklog counts and logs the buffer becoming full (n is its length
// after a receive) and reports whether it is still considered full: from
// then until it is half empty.
func (b *Broker) noteBacklog(n int, full bool) bool {
	switch {
	case !full && n >= b.opt.channelSize-1:
		b.stats.backlogged.Add(1)
		b.log.Warn().Int("buffered", n).Dur("drop_after", b.opt.channelSendTimeout).
			Msg("receive buffer full: pub/sub messages may be dropped; publications will be repaired from history")
		return true
	case full && n < b.opt.channelSize/2:
		return false
	}
	return full
}

// onSubscription handles Redis's confirmation of a SUBSCRIBE or
// UNSUBSCRIBE, sent for a call of this node or when go-redis resubscribes
// after reconnecting. It returns a confirmed room, to be resynced.
func (b *Broker) onSubscription(m *redis.Subscription) *roomSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.confirmLocked(m.Channel, m.Kind)
	if m.Kind != "subscribe" {
		return nil
	}
	delete(b.pending, m.Channel)
	room, ok := strings.CutPrefix(m.Channel, b.roomChannel(""))
	if !ok {
		return nil
	}
	return b.rooms[room]
}

// onMessage delivers a publication or event.
func (b *Broker) onMessage(m *redis.Message) {
	if room, ok := strings.CutPrefix(m.Channel, b.roomChannel("")); ok {
		if strings.HasPrefix(m.Payload, "p") {
			b.onPublication(room, m.Payload)
			return
		}
		b.onEvent(m.Payload, func(e hub.Event) {
			if b.subscribedRoom(room) != nil {
				b.h.HandleRoomEvent(room, e)
			}
		})
		return
	}
	if user, ok := strings.CutPrefix(m.Channel, b.userChannel("")); ok {
		b.onEvent(m.Payload, func(e hub.Event) {
			if b.subscribedUser(user) {
				b.h.HandleUserEvent(user, e)
			}
		})
	}
}

// onEvent decodes an event envelope and calls deliver with b.deliverMu held.
func (b *Broker) onEvent(payload string, deliver func(hub.Event)) {
	e, err := decodeEvent(payload)
	if err != nil {
		b.malformed(payload)
		return
	}
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	deliver(e)
}

func (b *Broker) malformed(payload string) {
	b.stats.malformed.Add(1)
	b.log.Error().Int("len", len(payload)).Msg("malformed pub/sub message")
}

// subscribedRoom returns the room's subscription, or nil.
func (b *Broker) subscribedRoom(room string) *roomSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rooms[room]
}

func (b *Broker) subscribedUser(user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.users[user]
}
