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
// effect is missing; what came after is queued behind the confirmation.
// The resync reads everything after last at once. If history still reaches
// back to last, all of it is delivered (pub/sub's copies are then dropped as
// duplicates). If it does not, some of what it lacks may be queued, so the
// resync waits for the room's next publication, which settles the gap as
// above; without one within resyncGrace it delivers what history has.
//
// go-redis drops messages when its buffer stays full (the receive loop fell
// far behind). A drop followed by a publication of the room is a gap as
// above, but the last ones dropped may be followed by none: once the buffer
// has drained, every room is resynced.
//
// The receive loop never waits on Redis: a room that needs a read is
// blocked, the read is made by one of at most options.repairWorkers
// goroutines, and the publications the room receives meanwhile are held in
// its buffer. When the read is back the loop delivers its result, then the
// buffer, in order, as if the buffered publications were arriving only then
// (so that one may start the next read). Other rooms are delivered all the
// while. A buffer that grows beyond its bounds is dropped: a resync reads
// its publications from history instead.

// roomSub is the delivery state of a subscribed room. SubscribeRoom fills it
// in before it is in Broker.rooms; from then on only the receive loop uses
// it, as it alone uses Broker.repairs.
type roomSub struct {
	name  string
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

	// blocked is set while the room waits for a read (queued, in flight or,
	// after a failure, to be retried on the tick): what it receives is held
	// in buf, bufBytes long.
	blocked  bool
	read     *repairRead // the read queued or in flight, or nil
	again    bool        // resync once the read is back
	buf      []hub.Publication
	bufBytes int
}

// repairs is the receive loop's bookkeeping of reads. The workers only send
// on done.
type repairs struct {
	resyncs  map[*roomSub]struct{} // rooms to resync, retried on the tick
	queue    []*roomSub            // rooms whose read awaits a worker
	running  int                   // reads in flight
	buffered int                   // bytes held in the buffers of all rooms
	done     chan repairResult     // capacity options.repairWorkers
}

// repairRead is a history read for a room: a resync, or, when gap is set,
// the gap before gap, which is delivered after what the read returns.
type repairRead struct {
	q   historyRead
	gap *hub.Publication
}

// repairResult is a worker's answer to a repairRead.
type repairResult struct {
	st   *roomSub
	read *repairRead
	page hub.HistoryPage
	err  error
}

// onPublication delivers a publication of a subscribed room, or holds it
// while the room is blocked.
func (b *Broker) onPublication(room, payload string) {
	p, err := decodePublication(payload)
	if err != nil {
		b.malformed(payload)
		return
	}
	st := b.subscribedRoom(room)
	switch {
	case st == nil:
	case st.blocked:
		b.hold(st, p)
	default:
		b.deliver(st, p)
	}
}

// deliver delivers p in order: the next seq is delivered, an old one
// dropped, and a gap before it (or a new epoch not starting at 1) first
// read from history, which blocks the room.
func (b *Broker) deliver(st *roomSub, p hub.Publication) {
	if !st.known || (p.Epoch == st.epoch && p.Seq <= st.last+1) || (p.Epoch != st.epoch && p.Seq == 1) {
		b.accept(st, p)
		return
	}
	from := st.last + 1
	if p.Epoch != st.epoch {
		from = 1
	}
	b.startRead(st, &repairRead{
		q:   historyRead{mode: "range", from: seqID(from), to: seqID(p.Seq - 1), epoch: p.Epoch},
		gap: &p,
	})
}

// hold buffers p for a blocked room. A buffer beyond its bounds is dropped,
// p with it: a resync reads them from history once the read is back.
func (b *Broker) hold(st *roomSub, p hub.Publication) {
	n := len(p.Frame)
	if len(st.buf) < b.opt.repairBufferCount && st.bufBytes+n <= b.opt.repairBufferBytes &&
		b.repairs.buffered+n <= b.opt.repairBufferTotal {
		st.buf = append(st.buf, p)
		st.bufBytes += n
		b.repairs.buffered += n
		return
	}
	b.stats.overflowed.Add(1)
	if !st.again && !st.failed { // once per repair; an outage is logged already
		b.log.Warn().Str("room", st.name).Int("buffered", len(st.buf)).
			Msg("repair buffer full: dropped; the room is resynced from history")
	}
	b.release(st)
	st.again = true
}

// release empties st's buffer.
func (b *Broker) release(st *roomSub) {
	b.repairs.buffered -= st.bufBytes
	st.buf, st.bufBytes = nil, 0
}

// accept delivers p unless it was delivered already or the room was
// unsubscribed. A publication of another epoch starts that epoch. A gap left
// (history no longer had what was missed) is counted and logged.
func (b *Broker) accept(st *roomSub, p hub.Publication) {
	if st.known && p.Epoch != st.epoch {
		b.log.Info().Str("room", st.name).Str("epoch", p.Epoch).Msg("room history restarted: new epoch")
		st.epoch, st.last = p.Epoch, 0
	}
	if st.known && p.Seq <= st.last {
		b.stats.duplicates.Add(1)
		return
	}
	if st.known && p.Seq > st.last+1 {
		b.stats.lost.Add(p.Seq - st.last - 1)
		b.log.Warn().Str("room", st.name).Uint64("after", st.last).Uint64("seq", p.Seq).
			Msg("publications lost: no longer in history")
	}
	st.known, st.epoch, st.last = true, p.Epoch, p.Seq
	b.settled(st)
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	if b.subscribedRoom(st.name) == st {
		b.h.HandlePublication(st.name, p)
	}
}

// needResync resyncs st now, or once its read in flight is back. A room
// whose position is unknown (SubscribeRoom could not read it) has nothing
// to resync: its delivery starts with the first publication received.
func (b *Broker) needResync(st *roomSub) {
	if !st.known {
		return
	}
	b.unsettled(st)
	if st.read != nil {
		st.again = true
		return
	}
	b.startRead(st, b.resyncRead(st))
}

// resyncRead returns the read of everything after st's last delivery (when
// the room's epoch changed, everything of the new one).
func (b *Broker) resyncRead(st *roomSub) *repairRead {
	return &repairRead{q: historyRead{mode: "resync", from: seqID(st.last + 1), epoch: st.epoch}}
}

// startRead blocks st and queues r for a worker.
func (b *Broker) startRead(st *roomSub, r *repairRead) {
	if r.gap == nil {
		b.unsettled(st)
		st.again = false // this read covers what called for another
	}
	st.blocked, st.read = true, r
	b.repairs.queue = append(b.repairs.queue, st)
}

// unsettled marks st for resync.
func (b *Broker) unsettled(st *roomSub) {
	st.resync = true
	b.repairs.resyncs[st] = struct{}{}
}

// settled clears st's resync.
func (b *Broker) settled(st *roomSub) {
	st.resync, st.trimmed = false, time.Time{}
	delete(b.repairs.resyncs, st)
}

// forget drops what the loop holds for st, a room no longer subscribed.
func (b *Broker) forget(st *roomSub) {
	b.release(st)
	delete(b.repairs.resyncs, st)
}

// resyncPending starts the resyncs that failed or wait for history to be
// settled.
func (b *Broker) resyncPending() {
	for st := range b.repairs.resyncs {
		if b.subscribedRoom(st.name) != st {
			b.forget(st)
			continue
		}
		if st.read == nil {
			b.startRead(st, b.resyncRead(st))
		}
	}
}

// dispatch starts queued reads while fewer than repairWorkers are running.
func (b *Broker) dispatch(ctx context.Context) {
	r := &b.repairs
	for r.running < b.opt.repairWorkers && len(r.queue) > 0 {
		st := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		if len(r.queue) == 0 {
			r.queue = nil
		}
		if b.subscribedRoom(st.name) != st {
			b.forget(st)
			continue
		}
		r.running++
		read := st.read
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.runRead(ctx, st, read)
		}()
	}
}

// runRead is a worker: it reads history for st and hands the result to the
// receive loop.
func (b *Broker) runRead(ctx context.Context, st *roomSub, r *repairRead) {
	if b.opt.beforeRead != nil {
		b.opt.beforeRead(ctx, st.name)
	}
	page, err := b.readHistory(ctx, st.name, r.q)
	select {
	case b.repairs.done <- repairResult{st: st, read: r, page: page, err: err}:
	case <-b.stopped:
	}
}

// repaired delivers a read's result, then, unless another read is due, the
// room's buffer, after which the room is live again.
func (b *Broker) repaired(res repairResult, now time.Time) {
	b.repairs.running--
	st := res.st
	st.read = nil
	if b.subscribedRoom(st.name) != st {
		b.forget(st)
		return
	}
	if res.read.gap != nil {
		b.repairGap(st, res)
	} else {
		b.resync(st, res, now)
	}
	switch {
	case st.failed: // still blocked: the tick retries
	case st.again:
		st.again = false
		b.startRead(st, b.resyncRead(st))
	default:
		b.drain(st)
	}
}

// repairGap delivers what was missing before a publication, then it.
func (b *Broker) repairGap(st *roomSub, res repairResult) {
	if !b.readDone(st, res.err) {
		return // the publication is in history: the resync reads it
	}
	for _, q := range res.page.Publications {
		b.stats.repaired.Add(1)
		b.accept(st, q)
	}
	b.accept(st, *res.read.gap)
}

// resync delivers everything after a room's last delivery, unless history
// no longer reaches back to last and resyncGrace has not passed.
func (b *Broker) resync(st *roomSub, res repairResult, now time.Time) {
	if !b.readDone(st, res.err) {
		return
	}
	page := res.page
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
		b.accept(st, q)
	}
	b.settled(st)
}

// readDone records the outcome of a read for st and reports whether its
// result is to be delivered. A failed read marks the room for resync.
func (b *Broker) readDone(st *roomSub, err error) bool {
	if err != nil {
		if !st.failed { // log once per outage, not every retry
			b.log.Warn().Err(err).Str("room", st.name).Msg("reading missed publications failed; retrying")
		}
		st.failed = true
		b.unsettled(st)
		return false
	}
	st.failed = false
	return true
}

// drain unblocks st and delivers its buffer, in order, until a publication
// starts another read: the rest is held again.
func (b *Broker) drain(st *roomSub) {
	buf := st.buf
	b.release(st)
	st.blocked = false
	for i, p := range buf {
		if st.blocked {
			for _, q := range buf[i:] {
				b.hold(st, q)
			}
			return
		}
		b.deliver(st, p)
	}
}
