package hubtest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// WaitTimeout is how long the suites wait for an asynchronous delivery.
const WaitTimeout = 10 * time.Second

// Recorder is a hub.Handler that records every delivery and checks that,
// per room, publications arrive in seq order without gaps or duplicates
// within an epoch. It is safe for concurrent use.
type Recorder struct {
	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every delivery
	pubs       map[string][]hub.Publication
	roomEvents map[string][]hub.Event
	userEvents map[string][]hub.Event
	last       map[string]hub.Position // last publication per room
	violations []string
}

var _ hub.Handler = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		changed:    make(chan struct{}),
		pubs:       make(map[string][]hub.Publication),
		roomEvents: make(map[string][]hub.Event),
		userEvents: make(map[string][]hub.Event),
		last:       make(map[string]hub.Position),
	}
}

// HandlePublication implements hub.Handler.
func (r *Recorder) HandlePublication(room string, p hub.Publication) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.last[room]; ok && last.Epoch == p.Epoch && p.Seq != last.Seq+1 {
		r.violations = append(r.violations,
			fmt.Sprintf("room %q epoch %s: seq %d after %d", room, p.Epoch, p.Seq, last.Seq))
	}
	r.last[room] = hub.Position{Seq: p.Seq, Epoch: p.Epoch}
	p.Frame = slices.Clone(p.Frame)
	r.pubs[room] = append(r.pubs[room], p)
	r.notifyLocked()
}

// HandleRoomEvent implements hub.Handler.
func (r *Recorder) HandleRoomEvent(room string, e hub.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Frame = slices.Clone(e.Frame)
	r.roomEvents[room] = append(r.roomEvents[room], e)
	r.notifyLocked()
}

// HandleUserEvent implements hub.Handler.
func (r *Recorder) HandleUserEvent(user string, e hub.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Frame = slices.Clone(e.Frame)
	r.userEvents[user] = append(r.userEvents[user], e)
	r.notifyLocked()
}

func (r *Recorder) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Publications returns the publications delivered for room, in delivery
// order.
func (r *Recorder) Publications(room string) []hub.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs[room])
}

// RoomEvents returns the events delivered for room.
func (r *Recorder) RoomEvents(room string) []hub.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.roomEvents[room])
}

// UserEvents returns the events delivered for user.
func (r *Recorder) UserEvents(user string) []hub.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.userEvents[user])
}

// Forget resets the order check of room, for a test that unsubscribes and
// subscribes again: a gap across that is expected.
func (r *Recorder) Forget(room string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.last, room)
}

// Violations returns the order violations seen so far.
func (r *Recorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.violations)
}

// Check fails t for every order violation seen so far.
func (r *Recorder) Check(t testing.TB) {
	t.Helper()
	for _, v := range r.Violations() {
		t.Errorf("delivery order: %s", v)
	}
}

// Wait waits until cond, evaluated after every delivery, reports true, and
// fails t after WaitTimeout. cond must not call the Recorder's Wait.
func (r *Recorder) Wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", WaitTimeout, what)
		}
	}
}

// WaitPublications waits until at least n publications of room were
// delivered and returns them.
func (r *Recorder) WaitPublications(t testing.TB, room string, n int) []hub.Publication {
	t.Helper()
	r.Wait(t, fmt.Sprintf("%d publications in room %q", n, room), func() bool {
		return len(r.Publications(room)) >= n
	})
	return r.Publications(room)
}
