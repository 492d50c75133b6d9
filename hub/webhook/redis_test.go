package webhook_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub/redisbroker"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
	"github.com/switchboard-chat/switchboard/hub/webhook"
)

// redisNode is one node's broker, for its Redis connection, on srv.
func redisNode(t *testing.T, srv *redistest.Server, node, prefix string) *redisbroker.Broker {
	t.Helper()
	return redisNodeAt(t, redisbroker.Config{URL: srv.URL(), NodeID: node, KeyPrefix: prefix})
}

func redisNodeAt(t *testing.T, cfg redisbroker.Config) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// TestRedisOneNodePerEvent: two nodes share one Redis backlog; the
// receiver fails every event's first POST. Every event arrives, all of its
// POSTs from one node, and once answered 2xx.
func TestRedisOneNodePerEvent(t *testing.T) {
	t.Parallel()
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		oneNodePerEvent(t, redisbroker.Config{URL: srv.URL()})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3)
		oneNodePerEvent(t, redisbroker.Config{URL: c.URL(), Cluster: true})
	})
}

func oneNodePerEvent(t *testing.T, at redisbroker.Config) {
	r := newReceiver(t, func(_, _ string, n int) int {
		if n == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	var ds []*webhook.Dispatcher
	for _, node := range []string{"a", "b"} {
		at.NodeID = node
		backlog := redisNodeAt(t, at).WebhookBacklog(redisbroker.WebhookConfig{})
		cfg := testConfig(r.url("/" + node))
		cfg.Node = node
		ds = append(ds, start(t, cfg, backlog))
	}
	const n = 100
	for i := range n {
		ds[i%2].Enqueue(message(uint64(i + 1)))
	}
	waitFor(t, 30*time.Second, "every event delivered", func() bool { return r.delivered() == n })
	r.check()
	if seqs := r.seqs(); len(seqs) != n {
		t.Errorf("%d seqs delivered, want %d", len(seqs), n)
	}
	r.mu.Lock()
	for id, paths := range r.paths {
		for _, p := range paths[1:] {
			if p != paths[0] {
				t.Errorf("event %s sent by two nodes: %v", id, paths)
			}
		}
		if len(r.ok[id]) != 1 {
			t.Errorf("event %s answered 2xx %d times, want 1", id, len(r.ok[id]))
		}
	}
	r.mu.Unlock()
	waitFor(t, 5*time.Second, "empty backlog", func() bool {
		l, err := ds[0].Backlog(context.Background())
		return l == 0 && err == nil
	})
	if got := ds[0].Stats().Delivered + ds[1].Stats().Delivered; got != n {
		t.Errorf("delivered %d, want %d", got, n)
	}
}

// TestRedisClaimFromStoppedNode: the events a node had taken when it
// stopped are claimed and delivered by another.
func TestRedisClaimFromStoppedNode(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReceiver(t, func(path, _ string, _ int) int {
		if path == "/a" {
			return hang // node a never gets an answer
		}
		return http.StatusOK
	})
	cfgA := testConfig(r.url("/a"))
	cfgA.Timeout = time.Hour
	a, err := webhook.New(cfgA, redisNode(t, srv, "a", "claim:").WebhookBacklog(redisbroker.WebhookConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	const n = 10
	for i := range n {
		a.Enqueue(message(uint64(i + 1)))
	}
	waitFor(t, 10*time.Second, "node a to take every event", func() bool { return r.requested() == n })
	closeDispatcher(t, a) // a stops with every event taken and none done

	claim := redisbroker.WebhookConfig{ClaimIdle: time.Second}
	cfgB := testConfig(r.url("/b"))
	cfgB.HoldInterval = 200 * time.Millisecond
	b := start(t, cfgB, redisNode(t, srv, "b", "claim:").WebhookBacklog(claim))
	waitFor(t, 20*time.Second, "node b to deliver a's events", func() bool { return r.delivered() == n })
	r.check()
	waitFor(t, 5*time.Second, "b's count and an empty backlog", func() bool {
		l, err := b.Backlog(context.Background())
		return b.Stats().Delivered == n && l == 0 && err == nil
	})
}

// TestRedisBacklogBound: the stream holds at most MaxEvents undelivered
// events, counting those being delivered; the rest are dropped and
// counted.
func TestRedisBacklogBound(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReceiver(t, func(_, _ string, _ int) int { return hang })
	cfg := testConfig(r.url("/"))
	cfg.Timeout = time.Minute
	d := start(t, cfg, redisNode(t, srv, "a", "bound:").WebhookBacklog(redisbroker.WebhookConfig{MaxEvents: 5}))
	for i := range 20 {
		d.Enqueue(message(uint64(i)))
	}
	waitFor(t, 10*time.Second, "15 dropped", func() bool { return d.Stats().Dropped == 15 })
	if l, err := d.Backlog(context.Background()); l != 5 || err != nil {
		t.Errorf("backlog = %d, %v; want 5", l, err)
	}
}
