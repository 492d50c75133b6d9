package hub_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// connectN connects n sessions of distinct users.
func connectN(h *testHub, n int) []*recSession {
	out := make([]*recSession, n)
	for i := range out {
		out[i] = h.connect(fmt.Sprintf("user%d", i))
	}
	return out
}

func checkClosed(t *testing.T, sessions []*recSession, code int) {
	t.Helper()
	for _, s := range sessions {
		if got := s.closeCode(); got != code {
			t.Errorf("%s closed with %d, want %d", s.id, got, code)
		}
	}
}

// TestDrainPaces checks that Drain closes in batches a tick apart and
// reports its progress.
func TestDrainPaces(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	sessions := connectN(h, 30)
	if closed, total := h.DrainProgress(); closed != 0 || total != 0 {
		t.Errorf("DrainProgress before = %d, %d; want 0, 0", closed, total)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	// 200 a second is 10 every 50ms: batches at 0, 50 and 100ms.
	if err := h.Drain(ctx, protocol.CloseRestart, "service restart", hub.Pace{Rate: 200}); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("Drain of 30 sessions at 200/s took %v, want at least the 100ms of three batches", took)
	}
	checkClosed(t, sessions, protocol.CloseRestart)
	if closed, total := h.DrainProgress(); closed != 30 || total != 30 {
		t.Errorf("DrainProgress after = %d, %d; want 30, 30", closed, total)
	}
	if got := h.Stats().Sessions; got != 0 {
		t.Errorf("%d sessions left", got)
	}
}

// TestDrainWithin checks that Within raises a rate too slow to close every
// session in time: at 1 a second, 30 sessions would take 29s.
func TestDrainWithin(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	sessions := connectN(h, 30)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Drain(ctx, protocol.CloseRestart, "service restart", hub.Pace{Rate: 1, Within: 200 * time.Millisecond}); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	checkClosed(t, sessions, protocol.CloseRestart)
}

// TestDrainOutOfTime checks that a Drain whose context ends before its
// last batch closes the rest at once.
func TestDrainOutOfTime(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	sessions := connectN(h, 5)
	stuck := &recSession{id: "stuck", user: "stuck", manual: true} // never disconnects
	if err := h.Connect(context.Background(), stuck); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Disconnect(stuck) })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.Drain(ctx, protocol.CloseRestart, "service restart", hub.Pace{Rate: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain: err = %v, want DeadlineExceeded", err)
	}
	checkClosed(t, append(sessions, stuck), protocol.CloseRestart)
	if closed, total := h.DrainProgress(); closed != 6 || total != 6 {
		t.Errorf("DrainProgress = %d, %d; want 6, 6", closed, total)
	}
}
