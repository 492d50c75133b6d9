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
	return newBrokerAt(t, cfg)
}

// newClusterBroker is newBroker on a Redis Cluster.
func newClusterBroker(t testing.TB, c *redistest.Cluster, cfg Config) *Broker {
	t.Helper()
	cfg.URL, cfg.Cluster = c.URL(), true
	return newBrokerAt(t, cfg)
}

// redisModes runs f once on one Redis and once on a 3-master Redis
// Cluster, as subtests "single" and "cluster": one suite, both modes. f's
// newBroker sets Config.URL and Config.Cluster.
func redisModes(t *testing.T, f func(t *testing.T, newBroker func(testing.TB, Config) *Broker)) {
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		f(t, func(t testing.TB, cfg Config) *Broker { return newBroker(t, srv, cfg) })
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3)
		f(t, func(t testing.TB, cfg Config) *Broker { return newClusterBroker(t, c, cfg) })
	})
}

// newBrokerAt returns a broker for cfg, which names the Redis.
func newBrokerAt(t testing.TB, cfg Config) *Broker {
	t.Helper()
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
	redisModes(t, func(t *testing.T, newBroker func(testing.TB, Config) *Broker) {
		hubtest.TestBroker(t, func(t *testing.T) (hub.Broker, hub.Presence) {
			b := newBroker(t, Config{HistorySize: hubtest.HistorySize})
			return b, b
		})
	})
}

func TestCluster(t *testing.T) {
	t.Parallel()
	redisModes(t, func(t *testing.T, newBroker func(testing.TB, Config) *Broker) {
		hubtest.TestCluster(t, func(t *testing.T) hubtest.NewBroker {
			prefix := uniquePrefix()
			return func(t *testing.T) (hub.Broker, hub.Presence) {
				b := newBroker(t, Config{HistorySize: hubtest.HistorySize, KeyPrefix: prefix})
				return b, b
			}
		})
	})
}

func TestRecovery(t *testing.T) {
	t.Parallel()
	redisModes(t, func(t *testing.T, newBroker func(testing.TB, Config) *Broker) {
		hubtest.TestRecovery(t, func(t *testing.T) (hub.Broker, hub.Presence) {
			b := newBroker(t, Config{HistorySize: hubtest.HistorySize})
			return b, b
		})
	})
}
