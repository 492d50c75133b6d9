package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// flusher is a broker that can wait until what it queued for delivery was
// delivered: the memory broker.
type flusher interface {
	Flush(ctx context.Context) error
}

// flushBroker waits until b delivered everything published before the
// call, when b queues deliveries; it fails t after 10 s.
func flushBroker(t testing.TB, b hub.Broker) {
	t.Helper()
	f, ok := b.(flusher)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Flush(ctx); err != nil {
		t.Fatalf("flush broker: %v", err)
	}
}

// closeBroker closes b, failing t on an error or after 10 s.
func closeBroker(t testing.TB, b hub.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("close broker: %v", err)
	}
}
