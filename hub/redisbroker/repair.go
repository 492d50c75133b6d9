package redisbroker

import (
	"context"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// resyncGrace is how long a resync that found history trimmed waits for a
// publication of the room to tell what pub/sub still delivers, before it
// delivers what history has and counts the rest as lost.
const resyncGrace = 2 * time.Second

// How delivery stays complete, per room: pub/sub delivers in seq order, so a
// publication p after last+1 means (last, p.Seq) was lost; exactly that range
// is read from history (not beyond p: later publications are on their way,
// and history may have moved past them).
//
// After a subscription is confirmed, what was published before it took
// effect is missing; what came after is buffered behind the confirmation.
// The resync reads everything after last at once. If history still reaches
// back to last, all of it is delivered (pub/sub's copies are then dropped as
// duplicates). If it does not, some of what it lacks may be buffered, so
// the resync waits for the room's next publication, which settles the gap as
// above; without one within resyncGrace it delivers what history has.
//
// go-redis drops messages when its buffer stays full (the receive loop fell
// far behind). A drop followed by a publication of the room is a gap as
// above, but the last ones dropped may be followed by none: once the buffer
// has drained, every room is resynced.

// roomSub is the delivery state of a subscribed room. SubscribeRoom fills it
// in before it is in Broker.rooms; from then on only the receive loop uses
// it, as it alone uses Broker.resyncs.
type roomSub struct {
	known bool   // epoch and last are known
	epoch string // the epoch of last
	last  uint64 // the seq last delivered, or the room's seq at subscription
	// resync is set when what was published while the node was not
	// subscribed is still to be read from history: after a subscription is
	// confirmed, or after a failed read.
	resync bool
	failed bool // the last read failed: retried on the tick, logged once
	// trimmed is when a resync found that history no longer reaches back to
	// last; zero otherwise.
	trimmed time.Time
}

// onPublication delivers a publication in order: the next seq is delivered,
// an old one dropped, and a gap before it (or a new epoch) is first filled
// from history.
func (b *Broker) onPublication(ctx context.Context, room, payload string) {
	p, err := decodePublication(payload)
	if err != nil {
		b.malformed(payload)
		return
	}
	st := b.subscribedRoom(room)
	if st == nil {
		return
	}
	if !st.known || (p.Epoch == st.epoch && p.Seq <= st.last+1) {
		b.accept(room, st, p)
		return
	}
	from := st.last + 1
	if p.Epoch != st.epoch {
		from = 1
	}
	page, err := b.readHistory(ctx, room, historyRead{mode: "range", from: seqID(from), to: seqID(p.Seq - 1), epoch: p.Epoch})
	if !b.readDone(room, st, err) {
		return // p is in history: the resync reads it
	}
	for _, q := range page.Publications {
		b.stats.repaired.Add(1)
		b.accept(room, st, q)
	}
	b.accept(room, st, p)
}

// accept delivers p unless it was delivered already or the room was
// unsubscribed. A publication of another epoch starts that epoch. A gap left
// (history no longer had what was missed) is counted and logged.
func (b *Broker) accept(room string, st *roomSub, p hub.Publication) {
	if st.known && p.Epoch != st.epoch {
		b.log.Info().Str("room", room).Str("epoch", p.Epoch).Msg("room history restarted: new epoch")
		st.epoch, st.last = p.Epoch, 0
	}
	if st.known && p.Seq <= st.last {
		b.stats.duplicates.Add(1)
		return
	}
	if st.known && p.Seq > st.last+1 {
		b.stats.lost.Add(p.Seq - st.last - 1)
		b.log.Warn().Str("room", room).Uint64("after", st.last).Uint64("seq", p.Seq).
			Msg("publications lost: no longer in history")
	}
	st.known, st.epoch, st.last = true, p.Epoch, p.Seq
	b.settled(st)
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	if b.subscribedRoom(room) == st {
		b.h.HandlePublication(room, p)
	}
}

// readDone records the outcome of a history read for st and reports whether
// its result is to be delivered: the read succeeded and st is still the
// room's subscription. A failed read marks the room for resync.
func (b *Broker) readDone(room string, st *roomSub, err error) bool {
	if b.subscribedRoom(room) != st {
		return false
	}
	if err != nil {
		if !st.failed { // log once per outage, not every retry
			b.log.Warn().Err(err).Str("room", room).Msg("reading missed publications failed; retrying")
		}
		st.failed = true
		b.unsettled(room, st)
		return false
	}
	st.failed = false
	return true
}

// unsettled marks st for resync.
func (b *Broker) unsettled(room string, st *roomSub) {
	st.resync = true
	b.resyncs[st] = room
}

// settled clears st's resync.
func (b *Broker) settled(st *roomSub) {
	st.resync, st.trimmed = false, time.Time{}
	delete(b.resyncs, st)
}

// resyncPending retries the resyncs that failed or wait for history to be
// settled.
func (b *Broker) resyncPending(ctx context.Context) {
	now := time.Now()
	for st, room := range b.resyncs {
		if b.subscribedRoom(room) != st {
			delete(b.resyncs, st)
			continue
		}
		b.resync(ctx, room, st, now)
	}
}

// resync reads everything after a room's last delivery (when the room's
// epoch changed, everything of the new one) and delivers it, unless history
// no longer reaches back to last and resyncGrace has not passed. A room
// whose position is unknown (SubscribeRoom could not read it) has nothing
// to resync: its delivery starts with the first publication received.
func (b *Broker) resync(ctx context.Context, room string, st *roomSub, now time.Time) {
	if !st.known {
		return
	}
	b.unsettled(room, st)
	page, err := b.readHistory(ctx, room, historyRead{mode: "resync", from: seqID(st.last + 1), epoch: st.epoch})
	if !b.readDone(room, st, err) {
		return
	}
	last := st.last
	if page.Position.Epoch != st.epoch {
		last = 0
	}
	pubs := page.Publications
	complete := len(pubs) > 0 && pubs[0].Seq <= last+1 || page.Position.Seq <= last
	if !complete {
		if st.trimmed.IsZero() {
			st.trimmed = now
		}
		if now.Sub(st.trimmed) < resyncGrace {
			return // the room's next publication settles it
		}
	}
	for _, q := range pubs {
		if q.Epoch != st.epoch || q.Seq > st.last {
			b.stats.repaired.Add(1)
		}
		b.accept(room, st, q)
	}
	b.settled(st)
}
