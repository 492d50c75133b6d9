package redisbroker

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestNoGoroutineLeak: Close ends every goroutine the broker and go-redis
// started. Not parallel, so that other tests do not change the count.
func TestNoGoroutineLeak(t *testing.T) {
	srv := redistest.Start(t)
	before := runtime.NumGoroutine()

	b := newBroker(t, srv, Config{})
	if err := b.Start(context.Background(), hubtest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := b.SubscribeRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := b.SubscribeUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "r")
	if _, _, err := b.SendUser(ctx, "bob", hub.Event{Frame: []byte(`{}`)}, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, "r", "bob"); err != nil {
		t.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s",
				before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCloseUnstarted: a broker never started closes cleanly.
func TestCloseUnstarted(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	if err := b.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Start(t.Context(), hubtest.NewRecorder()); err == nil {
		t.Errorf("Start after Close succeeded")
	}
}
