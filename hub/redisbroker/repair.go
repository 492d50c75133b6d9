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
// go-redis drops messages when its buffer stays full (a shard, and with it
// the receive loop handing it messages, fell far behind). A drop followed by
// a publication of the room is a gap as above, but the last ones dropped may
// be followed by none: once the buffer has drained, every room is resynced.
//
// All of this is done per shard, by the shard's loop, which never waits on
// Redis: a room that needs a read is blocked, the read is made by one of at
// most shard.workers goroutines, and the publications the room receives
// meanwhile are held in its buffer. When the read is back the shard
// delivers its result, then the buffer, in order, as if the buffered
// publications were arriving only then (so that one may start the next
// read). Other rooms are delivered all the while. A buffer that grows beyond
// its bounds is dropped: a resync reads its publications from history
// instead.

// roomSub is the delivery state of a subscribed room. SubscribeRoom fills it
// in before it is in its shard's rooms; from then on only the shard's loop
// uses it, as it alone uses the shard's repairs.
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

// repairs is a shard loop's bookkeeping of reads. The workers only send on
// done.
type repairs struct {
	resyncs  map[*roomSub]struct{} // rooms to resync, retried on the tick
	queue    []*roomSub            // rooms whose read awaits a worker
	running  int                   // reads in flight
	buffered int                   // bytes held in the buffers of the shard's rooms
	done     chan repairResult     // capacity shard.workers
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
func (s *shard) onPublication(room, payload string) {
	p, err := decodePublication(payload)
	if err != nil {
		s.b.malformed(payload)
		return
	}
	st := s.room(room)
	switch {
	case st == nil:
	case st.blocked:
		s.hold(st, p)
	default:
		s.deliver(st, p)
	}
}

// deliver delivers p in order: the next seq is delivered, an old one
// dropped, and a gap before it (or a new epoch not starting at 1) first
// read from history, which blocks the room.
func (s *shard) deliver(st *roomSub, p hub.Publication) {
	if !st.known || (p.Epoch == st.epoch && p.Seq <= st.last+1) || (p.Epoch != st.epoch && p.Seq == 1) {
		s.accept(st, p)
		return
	}
	from := st.last + 1
	if p.Epoch != st.epoch {
		from = 1
	}
	s.startRead(st, &repairRead{
		q:   historyRead{mode: "range", from: seqID(from), to: seqID(p.Seq - 1), epoch: p.Epoch},
		gap: &p,
	})
}

// hold buffers p for a blocked room. A buffer beyond its bounds is dropped,
// p with it: a resync reads them from history once the read is back.
func (s *shard) hold(st *roomSub, p hub.Publication) {
	n := len(p.Frame)
	if len(st.buf) < s.b.opt.repairBufferCount && st.bufBytes+n <= s.b.opt.repairBufferBytes &&
		s.repairs.buffered+n <= s.bufferTotal {
		st.buf = append(st.buf, p)
		st.bufBytes += n
		s.repairs.buffered += n
		return
	}
	s.b.stats.overflowed.Add(1)
	if !st.again && !st.failed { // once per repair; an outage is logged already
		s.b.log.Warn().Str("room", st.name).Int("buffered", len(st.buf)).
			Msg("repair buffer full: dropped; the room is resynced from history")
	}
	s.release(st)
	st.again = true
}

// release empties st's buffer.
func (s *shard) release(st *roomSub) {
	s.repairs.buffered -= st.bufBytes
	st.buf, st.bufBytes = nil, 0
}

// accept delivers p unless it was delivered already or the room was
// unsubscribed. A publication of another epoch starts that epoch. A gap left
// (history no longer had what was missed) is counted and logged.
func (s *shard) accept(st *roomSub, p hub.Publication) {
	if st.known && p.Epoch != st.epoch {
		s.b.log.Info().Str("room", st.name).Str("epoch", p.Epoch).Msg("room history restarted: new epoch")
		st.epoch, st.last = p.Epoch, 0
	}
	if st.known && p.Seq <= st.last {
		s.b.stats.duplicates.Add(1)
		return
	}
	if st.known && p.Seq > st.last+1 {
		s.b.stats.lost.Add(p.Seq - st.last - 1)
		s.b.log.Warn().Str("room", st.name).Uint64("after", st.last).Uint64("seq", p.Seq).
			Msg("publications lost: no longer in history")
	}
	st.known, st.epoch, st.last = true, p.Epoch, p.Seq
	s.settled(st)
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	if s.room(st.name) == st {
		s.b.h.HandlePublication(st.name, p)
	}
}

// needResync resyncs st now, or once its read in flight is back. A room
// whose position is unknown (SubscribeRoom could not read it) has nothing
// to resync: its delivery starts with the first publication received.
func (s *shard) needResync(st *roomSub) {
	if !st.known {
		return
	}
	s.unsettled(st)
	if st.read != nil {
		st.again = true
		return
	}
	s.startRead(st, s.resyncRead(st))
}

// resyncRead returns the read of everything after st's last delivery (when
// the room's epoch changed, everything of the new one).
func (s *shard) resyncRead(st *roomSub) *repairRead {
	return &repairRead{q: historyRead{mode: "resync", from: seqID(st.last + 1), epoch: st.epoch}}
}

// startRead blocks st and queues r for a worker.
func (s *shard) startRead(st *roomSub, r *repairRead) {
	if r.gap == nil {
		s.unsettled(st)
		st.again = false // this read covers what called for another
	}
	st.blocked, st.read = true, r
	s.repairs.queue = append(s.repairs.queue, st)
}

// unsettled marks st for resync.
func (s *shard) unsettled(st *roomSub) {
	st.resync = true
	s.repairs.resyncs[st] = struct{}{}
}

// settled clears st's resync.
func (s *shard) settled(st *roomSub) {
	st.resync, st.trimmed = false, time.Time{}
	delete(s.repairs.resyncs, st)
}

// forget drops what the shard holds for st, a room no longer subscribed.
func (s *shard) forget(st *roomSub) {
	s.release(st)
	delete(s.repairs.resyncs, st)
}

// resyncPending starts the resyncs that failed or wait for history to be
// settled.
func (s *shard) resyncPending() {
	for st := range s.repairs.resyncs {
		if s.room(st.name) != st {
			s.forget(st)
			continue
		}
		if st.read == nil {
			s.startRead(st, s.resyncRead(st))
		}
	}
}

// dispatch starts queued reads while fewer than repairWorkers are running.
func (s *shard) dispatch(ctx context.Context) {
	r := &s.repairs
	for r.running < s.workers && len(r.queue) > 0 {
		st := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		if len(r.queue) == 0 {
			r.queue = nil
		}
		if s.room(st.name) != st {
			s.forget(st)
			continue
		}
		r.running++
		read := st.read
		s.b.wg.Add(1)
		go func() {
			defer s.b.wg.Done()
			s.runRead(ctx, st, read)
		}()
	}
}

// runRead is a worker: it reads history for st and hands the result to the
// shard's loop.
func (s *shard) runRead(ctx context.Context, st *roomSub, r *repairRead) {
	if s.b.opt.beforeRead != nil {
		s.b.opt.beforeRead(ctx, st.name)
	}
	page, err := s.b.readHistory(ctx, st.name, r.q)
	select {
	case s.repairs.done <- repairResult{st: st, read: r, page: page, err: err}:
	case <-s.stopped:
	}
}

// repaired delivers a read's result, then, unless another read is due, the
// room's buffer, after which the room is live again.
func (s *shard) repaired(res repairResult, now time.Time) {
	s.repairs.running--
	st := res.st
	st.read = nil
	if s.room(st.name) != st {
		s.forget(st)
		return
	}
	if res.read.gap != nil {
		s.repairGap(st, res)
	} else {
		s.resync(st, res, now)
	}
	switch {
	case st.failed: // still blocked: the tick retries
	case st.again:
		st.again = false
		s.startRead(st, s.resyncRead(st))
	default:
		s.drain(st)
	}
}

// repairGap delivers what was missing before a publication, then it.
func (s *shard) repairGap(st *roomSub, res repairResult) {
	if !s.readDone(st, res.err) {
		return // the publication is in history: the resync reads it
	}
	s.b.stats.gapRepairs.Add(1)
	for _, q := range res.page.Publications {
		s.b.stats.repaired.Add(1)
		s.accept(st, q)
	}
	s.accept(st, *res.read.gap)
}

// resync delivers everything after a room's last delivery, unless history
// no longer reaches back to last and resyncGrace has not passed.
func (s *shard) resync(st *roomSub, res repairResult, now time.Time) {
	if !s.readDone(st, res.err) {
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
			s.b.stats.repaired.Add(1)
		}
		s.accept(st, q)
	}
	s.settled(st)
	s.b.stats.resyncs.Add(1)
}

// readDone records the outcome of a read for st and reports whether its
// result is to be delivered. A failed read marks the room for resync.
func (s *shard) readDone(st *roomSub, err error) bool {
	if err != nil {
		if !st.failed { // log once per outage, not every retry
			s.b.log.Warn().Err(err).Str("room", st.name).Msg("reading missed publications failed; retrying")
		}
		st.failed = true
		s.unsettled(st)
		return false
	}
	st.failed = false
	return true
}

// drain unblocks st and delivers its buffer, in order, until a publication
// starts another read: the rest is held again.
func (s *shard) drain(st *roomSub) {
	buf := st.buf
	s.release(st)
	st.blocked = false
	for i, p := range buf {
		if st.blocked {
			for _, q := range buf[i:] {
				s.hold(st, q)
			}
			return
		}
		s.deliver(st, p)
	}
}
