package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestStatsCount: a subscription's resync, a gap repaired, the commands
// that fail while Redis is down, and the pub/sub connection opened again
// once it is back (with the resync that follows) are each counted.
func TestStatsCount(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const opTimeout = time.Second
	b, rec := startBroker(t, srv, Config{OpTimeout: opTimeout})
	ctx := t.Context()
	if err := b.SubscribeRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the subscription's resync", func() error {
		if s := b.Stats(); s.Resyncs != 1 {
			return fmt.Errorf("stats %+v, want 1 resync", s)
		}
		return nil
	})

	mustPublish(t, b, "r")
	if _, err := b.publishSilently(ctx, "r", msg(t, "r").Message); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "r")
	if got := seqs(rec.WaitPublications(t, "r", 3)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("room r got seqs %v, want [1 2 3]", got)
	}
	s := b.Stats()
	if s.GapRepairs != 1 || s.Repaired != 1 || s.Resyncs != 1 || s.Errors != 0 || s.PubSubReconnects != 0 {
		t.Fatalf("stats %+v, want 1 gap repair of 1 publication, 1 resync, no errors or reconnects", s)
	}

	srv.Stop()
	if _, _, err := b.Publish(ctx, "r", msg(t, "r")); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Publish while down = %v", err)
	}
	if got := b.Stats().Errors; got < 1 {
		t.Errorf("Errors = %d after a failed publish, want at least 1", got)
	}
	srv.Start()
	eventually(t, 15*time.Second, "the pub/sub connection back, resynced", func() error {
		if s := b.Stats(); s.PubSubReconnects < 1 || s.Resyncs < 2 {
			return fmt.Errorf("stats %+v, want a reconnect and a second resync", s)
		}
		return nil
	})
}

// TestFailed: what the error counter counts as a failed command.
func TestFailed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{fmt.Errorf("history: %w", context.Canceled), false},
		{redis.ErrClosed, true},
		{context.DeadlineExceeded, true},
		{errors.New("dial tcp: connection refused"), true},
	} {
		if got := failed(tt.err); got != tt.want {
			t.Errorf("failed(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
