package clients

import (
	"sync"
	"sync/atomic"
	"time"
)

// delayedWriters starts the writers of busy sessions a write delay after
// the first of them was claimed: one timer for the whole Server, armed only
// while a writer waits, instead of one per writer round. Every writer
// claimed within that delay starts together, so the frames a fan-out queued
// meanwhile share their sessions' writes. The timer's function is the owner
// of the writers it starts; it always fires, so a session waiting in due is
// never left without its writer.
//
// The delay adapts to the node's load (see adapt): Config.WriteDelay while
// the node's CPUs have room, up to Config.WriteDelayMax while they are
// busy, where fewer, larger writes cost less CPU and the latency they add
// is less than the queueing they save. Only the timer's function changes
// it, at most once per adaptEvery, from a load sample: an idle node takes
// no samples.
type delayedWriters struct {
	base, max time.Duration
	delay     atomic.Int64 // the current delay, ns

	mu    sync.Mutex
	due   []*Session // claimed writers waiting for the timer
	spare []*Session // an emptied due list, for the next round
	timer *time.Timer

	adaptMu sync.Mutex // the timer's function may run twice at once
	load    *cpuLoad   // nil when the delay does not adapt
}

// Adapting the write delay: every adaptEvery (while writers are delayed),
// the delay grows by a quarter (at least adaptStep) when the node's load
// is above loadHigh, and shrinks by a fifth when it is below loadLow. A
// gap of more than adaptRestart without delayed writers (the node was
// quiet) restarts from the base delay.
const (
	adaptEvery   = 250 * time.Millisecond
	adaptRestart = 2 * time.Second
	adaptStep    = time.Millisecond
	loadHigh     = 0.65
	loadLow      = 0.5
)

func newDelayedWriters(base, most time.Duration) *delayedWriters {
	w := &delayedWriters{base: base, max: max(base, most)}
	w.delay.Store(int64(base))
	if base > 0 && w.max > base {
		w.load = newCPULoad()
	}
	return w
}

// WriteDelay returns the write delay now (see Config.WriteDelayMax).
func (srv *Server) WriteDelay() time.Duration { return srv.delayed.current() }

// current returns the delay a writer claimed now waits for.
func (w *delayedWriters) current() time.Duration { return time.Duration(w.delay.Load()) }

// add queues s's claimed writer, arming the timer when it is the first.
func (w *delayedWriters) add(s *Session) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.due = append(w.due, s)
	if len(w.due) > 1 {
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(w.current(), w.start)
	} else {
		w.timer.Reset(w.current())
	}
}

// start starts the due writers, then adapts the delay.
func (w *delayedWriters) start() {
	w.mu.Lock()
	due := w.due
	w.due, w.spare = w.spare, nil
	w.mu.Unlock()
	for _, s := range due {
		go s.writeLoop()
	}
	clear(due)
	w.mu.Lock()
	if w.spare == nil && cap(due) <= maxPooledFrames {
		w.spare = due[:0]
	}
	w.mu.Unlock()
	w.adapt(time.Now())
}

// adapt samples the node's load, when adaptEvery has passed since the last
// sample, and moves the delay (see nextDelay).
func (w *delayedWriters) adapt(now time.Time) {
	if w.load == nil {
		return
	}
	w.adaptMu.Lock()
	defer w.adaptMu.Unlock()
	since := now.Sub(w.load.at)
	if since < adaptEvery {
		return
	}
	load, ok := w.load.sample(now)
	switch {
	case since > adaptRestart:
		w.delay.Store(int64(w.base)) // quiet meanwhile: the sample is of idle time
	case ok:
		w.delay.Store(int64(nextDelay(w.current(), w.base, w.max, load)))
	}
}

// nextDelay is the write delay after a load sample: longer (by a quarter,
// at least adaptStep, up to most) above loadHigh, shorter (by a fifth,
// down to base) below loadLow, else the same.
func nextDelay(d, base, most time.Duration, load float64) time.Duration {
	switch {
	case load > loadHigh:
		return min(most, d+max(d/4, adaptStep))
	case load < loadLow:
		return max(base, d-d/5)
	}
	return d
}
