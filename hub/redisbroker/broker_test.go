package redisbroker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

var prefixes atomic.Uint64

// uniquePrefix returns a key prefix no other broker of this process uses.
func uniquePrefix() string {
	return fmt.Sprintf("sbtest%d:", prefixes.Add(1))
}

// newBroker returns a broker on srv, with a unique key prefix unless cfg
// has one, closed when t ends. Its logs go to t.
func newBroker(t testing.TB, srv *redistest.Server, cfg Config) *Broker {
	t.Helper()
	cfg.URL = srv.URL()
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = uniquePrefix()
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	b, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// startBroker returns a started broker delivering to a Recorder, closed
// when t ends.
func startBroker(t testing.TB, srv *redistest.Server, cfg Config) (*Broker, *hubtest.Recorder) {
	t.Helper()
	b := newBroker(t, srv, cfg)
	rec := hubtest.NewRecorder()
	if err := b.Start(context.Background(), rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		rec.Check(t)
	})
	return b, rec
}

func TestBroker(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	hubtest.TestBroker(t, func(t *testing.T) (hub.Broker, hub.Presence) {
		b := newBroker(t, srv, Config{HistorySize: hubtest.HistorySize})
		return b, b
	})
}

func TestCluster(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	hubtest.TestCluster(t, func(t *testing.T) hubtest.NewBroker {
		prefix := uniquePrefix()
		return func(t *testing.T) (hub.Broker, hub.Presence) {
			b := newBroker(t, srv, Config{HistorySize: hubtest.HistorySize, KeyPrefix: prefix})
			return b, b
		}
	})
}

func TestRecovery(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	hubtest.TestRecovery(t, func(t *testing.T) (hub.Broker, hub.Presence) {
		b := newBroker(t, srv, Config{HistorySize: hubtest.HistorySize})
		return b, b
	})
}
