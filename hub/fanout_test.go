package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// gateSession is a recSession whose Enqueue, once armed, blocks until the
// test opens the gate: a session that is slow to take a frame.
type gateSession struct {
	*recSession
	mu    sync.Mutex
	gate  chan struct{} // nil: not armed
	stuck chan struct{} // closed when an Enqueue blocked
}

func (s *gateSession) Enqueue(frame []byte) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-s.stuck:
		default:
			close(s.stuck)
		}
		<-gate
	}
	s.recSession.Enqueue(frame)
}

func (s *gateSession) arm() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.stuck = make(chan struct{}), make(chan struct{})
	return s.gate
}

// TestPublishDoesNotWaitForFanout: a publish into a room returns while a
// member of the room is stuck taking the frames (the fan-out runs on the
// broker's delivery goroutine, not the publisher's), and once the member is
// unstuck every member gets every message, in order. Before the fix the
// memory broker fanned out inside Publish: the first Publish never returned.
func TestPublishDoesNotWaitForFanout(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	slow := &gateSession{recSession: &recSession{id: "slow", user: "slow", h: h.Hub, flush: h.flush}}
	if err := h.Connect(context.Background(), slow); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.disconnect)
	bob := h.connect("bob")
	h.join(bob, "lobby")
	if err := h.Join(context.Background(), slow, hub.JoinRequest{Room: "lobby"}); err != nil {
		t.Fatal(err)
	}
	h.flush()
	bob.take(t)
	slow.take(t)

	gate := slow.arm()
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	defer release()
	returned := make(chan error, 1)
	go func() {
		for i := range 3 {
			if _, err := h.Publish(context.Background(), "lobby", "api", json.RawMessage(fmt.Sprint(i)), ""); err != nil {
				returned <- err
				return
			}
		}
		returned <- nil
	}()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish waited for the fan-out to a stuck member")
	}
	<-slow.stuck
	release()

	want := `message lobby#1 from api 0; message lobby#2 from api 1; message lobby#3 from api 2`
	for _, s := range []*recSession{bob, slow.recSession} {
		if got := s.take(t); got != want {
			t.Errorf("%s got %q, want %q", s.user, got, want)
		}
	}
}
