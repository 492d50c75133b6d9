package clients_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/clients"
)

// waitDisconnects waits until the server counted n disconnects of reason.
func (s *server) waitDisconnects(reason string, n uint64) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.ws.Counters().Disconnects[reason]
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			s.t.Fatalf("disconnects %s = %d, want %d (all: %v)", reason, got, n, s.ws.Counters().Disconnects)
		}
		time.Sleep(time.Millisecond)
	}
}

// latencies records what ObserveLatency is given.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) observe(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *latencies) all() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.d...)
}

// TestCounters: the server counts every client frame it handles by type
// (what does not decode as invalid), the frames it builds itself by type,
// and each connection's end by reason; every write observes a latency.
func TestCounters(t *testing.T) {
	t.Parallel()
	var lat latencies
	srv := newServer(t, clients.Config{ObserveLatency: lat.observe}, options{})
	alice := srv.dial("alice")
	alice.send(`{"type":"ping","id":1}`)
	alice.expect(`{"type":"pong","id":1}`)
	alice.send(`{"type":"join","room":"lobby","id":2}`)
	alice.expect(`{"type":"joined","id":2,"room":"lobby","members":["alice"],"member_count":1,"seq":0,"epoch":"E"}`)
	alice.send(`{"type":"send","room":"lobby","data":"hi","id":3}`)
	alice.expectAnyOrder(
		`{"type":"message","room":"lobby","seq":1,"from":"alice","data":"hi","ts":"TS"}`,
		`{"type":"ack","id":3,"seq":1,"epoch":"E"}`,
	)
	alice.send(`{"type":"nope","id":4}`)
	alice.expect(`{"type":"error","id":4,"code":"unknown_type","message":"unknown frame type"}`)
	alice.send(`{"type":"join","id":5}`) // no room
	if m := decode(t, alice.next()); m["type"] != "error" || fmt.Sprint(m["id"]) != "5" {
		t.Fatalf("a join without a room: %v", m)
	}
	bob := srv.dial("bob")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := bob.conn.Write(ctx, websocket.MessageBinary, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if code, _ := bob.closeStatus(); code != websocket.StatusUnsupportedData {
		t.Fatalf("binary frame: close %v, want 1003", code)
	}
	alice.conn.Close(websocket.StatusNormalClosure, "bye")
	srv.waitDisconnects(clients.DisconnectClientClosed, 1)
	srv.waitDisconnects(clients.DisconnectBadFrame, 1)

	c := srv.ws.Counters()
	want := map[string]uint64{"ping": 1, "join": 1, "send": 1, clients.InvalidFrame: 3}
	for typ, n := range c.FramesIn {
		if n != want[typ] {
			t.Errorf("FramesIn[%s] = %d, want %d", typ, n, want[typ])
		}
	}
	// The hub's frames (joined, message) are the hub's to count.
	want = map[string]uint64{"welcome": 2, "pong": 1, "ack": 1, "error": 2}
	for typ, n := range c.FramesOut {
		if n != want[typ] {
			t.Errorf("FramesOut[%s] = %d, want %d", typ, n, want[typ])
		}
	}
	if c.RateLimited != 0 {
		t.Errorf("RateLimited = %d, want 0", c.RateLimited)
	}
	// At least one write per answer alice waited for, and the welcomes.
	got := lat.all()
	if len(got) < 7 {
		t.Errorf("%d latencies observed, want at least 7", len(got))
	}
	for _, d := range got {
		if d < 0 || d > timeout {
			t.Errorf("latency %v", d)
		}
	}
}

// TestRateLimitedCounted: a frame the rate limit drops counts in
// RateLimited, not in FramesIn.
func TestRateLimitedCounted(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{RateLimit: 1}, options{}) // a burst of 2, then 1/s
	c := srv.dial("alice")
	const sent = 6
	for i := range sent {
		c.send(fmt.Sprintf(`{"type":"ping","id":%d}`, i))
	}
	deadline := time.Now().Add(timeout)
	for {
		n := srv.ws.Counters()
		if n.FramesIn["ping"]+n.RateLimited == sent {
			// Six frames sent within 4s: at most 2 + 3 admitted.
			if n.RateLimited < 1 {
				t.Errorf("RateLimited = %d after %d frames at 1/s", n.RateLimited, sent)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping frames %d + rate limited %d, want %d", n.FramesIn["ping"], n.RateLimited, sent)
		}
		time.Sleep(time.Millisecond)
	}
}
