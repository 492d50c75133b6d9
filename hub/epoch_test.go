package hub_test

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// TestEpochChange: when a room's history is lost (here: it expires) and a
// new epoch starts, members get an epoch frame naming it before the new
// epoch's first message, whose seq is 1 again.
func TestEpochChange(t *testing.T) {
	t.Parallel()
	// The TTL is long enough that the next messages, sent at once, never
	// outlive it on a slow machine, and short enough to wait out.
	h := newHub(t, memorybroker.Config{HistoryTTL: time.Second}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	h.join(bob, "lobby")
	h.send(bob, "lobby", `"old"`)
	before := h.position("lobby").Epoch
	alice.take(t)

	time.Sleep(1200 * time.Millisecond)
	h.send(bob, "lobby", `"new"`)
	after := h.position("lobby").Epoch
	if after == before {
		t.Fatal("the epoch did not change after the history expired")
	}
	frames := alice.all(t)
	n := len(frames)
	if n < 2 || frames[n-2].Type != "epoch" || frames[n-2].Epoch != after || frames[n-2].Room != "lobby" {
		t.Fatalf("alice's last frames = %v, want an epoch frame for %s then the message", frames, after)
	}
	if got := frames[n-1].String(); got != `message lobby#1 from bob "new"` {
		t.Fatalf("after the epoch frame alice got %s", got)
	}
	alice.take(t)
	h.send(bob, "lobby", `"newer"`)
	if got := alice.take(t); got != `message lobby#2 from bob "newer"` {
		t.Fatalf("the next message: %s (no second epoch frame expected)", got)
	}
}
