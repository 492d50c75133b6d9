package redisbroker

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// Delivery is sharded: the receive loop only routes what the pub/sub
// connection receives, by the name of its room or user, to one of a few
// shards, each a goroutine that decodes and delivers its rooms' and users'
// messages in the order received and owns their delivery state (position,
// repairs, buffers). A room or user always maps to the same shard, so order
// per room and per user is kept, while rooms of different shards are
// delivered in parallel and a slow Handler call holds up only its shard, up
// to options.shardQueue messages: beyond that the receive loop waits for it,
// holding up the other shards too, and go-redis buffers (Stats.Backlogged).
//
// The subscription maps live in the shards too, each under its shard's mu,
// so that the delivery path takes no lock shared by all shards. Lock order:
// Broker.mu, then shard.mu; the Handler is called under shard.deliverMu
// alone, which UnsubscribeRoom and UnsubscribeUser take (after forgetting
// the subscription) to wait for a delivery under way: nothing is delivered
// once they returned.

// shard delivers the rooms and users that hash to it.
type shard struct {
	b     *Broker
	queue chan delivery // from the receive loop: options.shardQueue long

	// mu guards rooms and users. It is never held while calling the
	// Handler or Redis.
	mu    sync.Mutex
	rooms map[string]*roomSub // subscribed rooms by name
	users map[string]bool     // subscribed users

	// deliverMu is held while the shard calls the Handler.
	deliverMu sync.Mutex
	repairs   repairs // the shard loop's
	workers   int     // the shard's bound on repair reads at once
	// bufferTotal bounds what the shard's rooms under repair hold
	// together: its share of options.repairBufferTotal.
	bufferTotal int
	stopped     chan struct{} // closed when the shard's loop has ended
}

// delivery is what the receive loop hands a shard.
type delivery struct {
	kind    deliveryKind
	name    string   // the room or user, for roomMessage and userMessage
	payload string   // the envelope, for roomMessage and userMessage
	st      *roomSub // the room to resync, for resyncRoom
}

type deliveryKind uint8

const (
	roomMessage deliveryKind = iota // a publication or event on a room channel
	userMessage                     // an event on a user channel
	resyncRoom                      // a room's subscription was confirmed
	resyncRooms                     // go-redis's buffer drained after being full
)

// newShards returns n shards of b.
func newShards(b *Broker, n int) []*shard {
	shards := make([]*shard, n)
	// The node's repair reads are split among the shards, at least two
	// each, so that one slow read does not hold up a shard's other repairs.
	workers := max((b.opt.repairWorkers+n-1)/n, 2)
	for i := range shards {
		shards[i] = &shard{
			b:           b,
			queue:       make(chan delivery, b.opt.shardQueue),
			rooms:       make(map[string]*roomSub),
			users:       make(map[string]bool),
			workers:     workers,
			bufferTotal: b.opt.repairBufferTotal / n,
			repairs: repairs{
				resyncs: make(map[*roomSub]struct{}),
				done:    make(chan repairResult, workers),
			},
			stopped: make(chan struct{}),
		}
	}
	return shards
}

// shardOf returns the shard of a room or user name (FNV-1a).
func (b *Broker) shardOf(name string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return b.shards[h%uint32(len(b.shards))]
}

// run is the shard's loop: it delivers what the receive loop hands it and
// has the repair workers read gaps from history (see repair.go); it never
// waits on Redis. It ends with ctx or once the receive loop closed its
// queue.
func (s *shard) run(ctx context.Context) {
	defer close(s.stopped)
	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.resyncPending()
		case res := <-s.repairs.done:
			s.repaired(res, time.Now())
		case d, ok := <-s.queue:
			if !ok {
				return
			}
			s.handle(d)
		}
		s.dispatch(ctx)
	}
}

// handle delivers d, or starts the resyncs it calls for.
func (s *shard) handle(d delivery) {
	switch d.kind {
	case roomMessage:
		if strings.HasPrefix(d.payload, "p") {
			s.onPublication(d.name, d.payload)
			return
		}
		s.onEvent(d.payload, func(e hub.Event) {
			if s.room(d.name) != nil {
				s.b.h.HandleRoomEvent(d.name, e)
			}
		})
	case userMessage:
		s.onEvent(d.payload, func(e hub.Event) {
			if s.user(d.name) {
				s.b.h.HandleUserEvent(d.name, e)
			}
		})
	case resyncRoom:
		s.needResync(d.st)
	case resyncRooms:
		s.resyncAll()
	}
}

// onEvent decodes an event envelope and calls deliver with s.deliverMu held.
func (s *shard) onEvent(payload string, deliver func(hub.Event)) {
	e, err := decodeEvent(payload)
	if err != nil {
		s.b.malformed(payload)
		return
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	deliver(e)
}

// resyncAll resyncs every subscribed room of the shard whose position is
// known, once a full buffer has drained. While it was full go-redis may have
// dropped messages, of any room; a drop is repaired when the room's next
// publication shows the gap, but the last ones dropped may have none.
func (s *shard) resyncAll() {
	s.mu.Lock()
	rooms := make([]*roomSub, 0, len(s.rooms))
	for _, st := range s.rooms {
		rooms = append(rooms, st)
	}
	s.mu.Unlock()
	for _, st := range rooms {
		s.needResync(st)
	}
}

// room returns the room's subscription, or nil.
func (s *shard) room(name string) *roomSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[name]
}

// user reports whether the user is subscribed.
func (s *shard) user(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[name]
}

// setRoom records the room's subscription, or forgets it when st is nil.
func (s *shard) setRoom(name string, st *roomSub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == nil {
		delete(s.rooms, name)
		return
	}
	s.rooms[name] = st
}

// setUser records or forgets the user's subscription.
func (s *shard) setUser(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.users, name)
		return
	}
	s.users[name] = true
}
