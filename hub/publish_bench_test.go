package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// queueSession is a hub.Session whose Enqueue does what clients.Session's
// does: take the session's mutex, append the frame to its queue and wake
// its writer goroutine without blocking. The writer takes the whole queue
// and drops it instead of writing to a socket: the socket write is measured
// by the connection benchmarks of package clients.
type queueSession struct {
	id, user string
	run      *fanoutRun

	mu    sync.Mutex
	queue [][]byte
	wake  chan struct{} // capacity 1

	spare [][]byte // owned by the writer: the queue it took last, emptied
	got   int      // frames the writer took; owned by the writer
}

func (s *queueSession) ID() string        { return s.id }
func (s *queueSession) User() string      { return s.user }
func (s *queueSession) Close(int, string) {}

func (s *queueSession) Enqueue(frame []byte) {
	s.mu.Lock()
	s.queue = append(s.queue, frame)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// write is the session's writer: it waits to be woken, takes the queue and
// counts its frames, until stop is closed.
func (s *queueSession) write(stop <-chan struct{}) {
	for {
		select {
		case <-s.wake:
		case <-stop:
			return
		}
		s.mu.Lock()
		q := s.queue
		s.queue = s.spare[:0]
		s.mu.Unlock()
		before := s.got
		s.got += len(q)
		clear(q)
		s.spare = q
		s.run.progress(before, s.got)
	}
}

// fanoutRun tells when every session took the frames it was to get.
type fanoutRun struct {
	want atomic.Int64 // frames each session is to take, counted from its start
	left atomic.Int64 // sessions that did not take them yet
	done chan struct{}
}

// progress notes that a session's count of frames went from before to
// after; the last session to reach want closes done.
func (r *fanoutRun) progress(before, after int) {
	if want := r.want.Load(); want > 0 && int64(before) < want && int64(after) >= want {
		if r.left.Add(-1) == 0 {
			close(r.done)
		}
	}
}

// BenchmarkPublishFanout publishes through Hub.Publish (as the server API
// does) into a room of n members whose sessions queue like clients.Session
// and have a writer goroutine each. It reports the time Publish takes to
// return (publish-p50-ns, publish-p99-ns) and the fan-out throughput over
// the whole run until every member took every message (deliveries/s);
// ns/op is that run's time per publish.
func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			benchPublishFanout(b, n)
		})
	}
}

func benchPublishFanout(b *testing.B, n int) {
	ctx := context.Background()
	mb := memorybroker.New(memorybroker.Config{})
	h := hub.New(mb, memorybroker.NewPresence(mb), hub.Config{})
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	run := &fanoutRun{done: make(chan struct{})}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	sessions := make([]*queueSession, n)
	for i := range sessions {
		// 100 users: the joins' member lists and events stay small, and
		// no frame of the run has an exclude.
		s := &queueSession{id: fmt.Sprint(i), user: fmt.Sprint("user", i%100), run: run, wake: make(chan struct{}, 1)}
		sessions[i] = s
		if err := h.Connect(ctx, s); err != nil {
			b.Fatal(err)
		}
		if err := h.Join(ctx, s, hub.JoinRequest{Room: "lobby"}); err != nil {
			b.Fatal(err)
		}
	}
	settleSessions(b, mb, sessions)
	for _, s := range sessions {
		s.got = 0
		writers.Go(func() { s.write(stop) })
	}
	defer func() {
		close(stop)
		writers.Wait()
		for _, s := range sessions {
			h.Disconnect(s)
		}
		closeBroker(b, mb)
	}()

	data := json.RawMessage(`{"text":"hello, world, a message of about a hundred bytes in all, once framed."}`)
	lat := make([]time.Duration, b.N)
	run.left.Store(int64(n))
	run.want.Store(int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		t0 := time.Now()
		if _, err := h.Publish(ctx, "lobby", "api", data, ""); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	select {
	case <-run.done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d members did not get every message", run.left.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "publish-p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "publish-p99-ns")
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "deliveries/s")
}

// settleSessions waits until the frames of the joins were delivered, then
// empties every session's queue, before the writers start.
func settleSessions(b *testing.B, mb *memorybroker.Broker, sessions []*queueSession) {
	b.Helper()
	flushBroker(b, mb)
	for _, s := range sessions {
		s.mu.Lock()
		s.queue = nil
		s.mu.Unlock()
		select {
		case <-s.wake:
		default:
		}
	}
}
