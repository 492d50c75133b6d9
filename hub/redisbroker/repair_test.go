package redisbroker

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestSlowRepairStallsOnlyItsRoom: while the history read repairing room a
// is held up, room b's publications are still delivered; once the read is
// back, a gets every publication, those received meanwhile included,
// exactly once and in order.
func TestSlowRepairStallsOnlyItsRoom(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	s := slowRepair(t, b, "a")
	rec := s.start(t, "a", "b")
	for i := range 5 {
		mustPublish(t, b, "b")
		rec.WaitPublications(t, "b", i+1)
		mustPublish(t, b, "a") // seqs 4 to 8, held while a is repaired
	}
	if got := seqs(rec.Publications("a")); !slices.Equal(got, []uint64{1}) {
		t.Errorf("room a delivered seqs %v while its repair was held up, want [1]", got)
	}

	close(s.gate)
	if got := seqs(rec.WaitPublications(t, "a", 8)); !slices.Equal(got, span(1, 8)) {
		t.Errorf("room a got seqs %v, want 1..8", got)
	}
	mustPublish(t, b, "a")
	if got := seqs(rec.WaitPublications(t, "a", 9)); !slices.Equal(got, span(1, 9)) {
		t.Errorf("after the repair room a got seqs %v, want 1..9", got)
	}
	if s := b.Stats(); s.Repaired == 0 || s.Lost != 0 {
		t.Errorf("stats %+v, want repairs, none lost", s)
	}
}

// TestRepairBufferOverflow: a room under repair that receives more than its
// buffer holds drops it and is resynced from history: it still gets every
// publication exactly once, in order.
func TestRepairBufferOverflow(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	b.setRepairBuffer(3, 1<<20)
	s := slowRepair(t, b, "a")
	rec := s.start(t, "a")
	for range 10 {
		mustPublish(t, b, "a") // seqs 4 to 13, beyond the buffer
	}
	eventually(t, hubtest.WaitTimeout, "the buffer dropped", func() error {
		if !s.dropped() {
			return errors.New("still buffered")
		}
		return nil
	})
	close(s.gate)
	if got := seqs(rec.WaitPublications(t, "a", 13)); !slices.Equal(got, span(1, 13)) {
		t.Errorf("room a got seqs %v, want 1..13", got)
	}
	mustPublish(t, b, "a")
	if got := seqs(rec.WaitPublications(t, "a", 14)); !slices.Equal(got, span(1, 14)) {
		t.Errorf("after the repair room a got seqs %v, want 1..14", got)
	}
}

// slowed is a broker whose repairs of one room wait, once armed, until
// gate is closed.
type slowed struct {
	b       *Broker
	room    string
	armed   atomic.Bool
	entered chan struct{}
	gate    chan struct{}
}

// slowRepair makes b's repairs of room slow, from when start arms them.
func slowRepair(t *testing.T, b *Broker, room string) *slowed {
	s := &slowed{b: b, room: room, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b.setBeforeRead(func(ctx context.Context, r string) {
		if r != room || !s.armed.Load() {
			return
		}
		select {
		case s.entered <- struct{}{}:
		default:
		}
		select {
		case <-s.gate:
		case <-ctx.Done():
		}
	})
	return s
}

// start starts the broker, subscribes it to rooms and makes the slow
// room's repair start: seq 1 is delivered, seq 2 lost by pub/sub, seq 3
// shows the gap. It returns once the repair's read is held up.
func (s *slowed) start(t *testing.T, rooms ...string) *hubtest.Recorder {
	t.Helper()
	rec := hubtest.NewRecorder()
	if err := s.b.Start(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		rec.Check(t)
	})
	ctx := t.Context()
	for _, room := range rooms {
		if err := s.b.SubscribeRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	// Once seq 1 is delivered the room's first resync is done: the next
	// read is the gap's.
	mustPublish(t, s.b, s.room)
	rec.WaitPublications(t, s.room, 1)
	s.armed.Store(true)
	if _, err := s.b.publishSilently(ctx, s.room, msg(t, s.room).Message); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, s.b, s.room)
	select {
	case <-s.entered:
	case <-time.After(hubtest.WaitTimeout):
		t.Fatalf("room %s's repair did not start", s.room)
	}
	return rec
}

// dropped reports whether a room dropped its repair buffer.
func (s *slowed) dropped() bool { return s.b.Stats().Overflowed > 0 }
