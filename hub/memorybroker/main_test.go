package memorybroker_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// TestMain fails the package when goroutines started by its tests outlive
// them: the broker's delivery goroutines must exit on Close.
func TestMain(m *testing.M) { os.Exit(hubtest.RunWithLeakCheck(m, 10*time.Second)) }

// startBroker returns a broker started with h and closed when t ends.
func startBroker(t testing.TB, cfg memorybroker.Config, h hub.Handler) *memorybroker.Broker {
	t.Helper()
	b := memorybroker.New(cfg)
	if err := b.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}
