package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/webhook"
)

// TestDeliveredDespiteFailures: a receiver that answers each event's first
// POST with 500 and lets the second time out gets every event on the third,
// once per event (by id), each request signed afresh.
func TestDeliveredDespiteFailures(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, func(_, _ string, n int) int {
		switch n {
		case 1:
			return http.StatusInternalServerError
		case 2:
			return hang
		}
		return http.StatusNoContent
	})
	cfg := testConfig(r.url("/hook"))
	cfg.Timeout = 500 * time.Millisecond // for the hung attempts
	d := start(t, cfg, webhook.NewMemoryBacklog(0, 0))
	const n = 20
	for i := range n {
		d.Enqueue(message(uint64(i + 1)))
	}
	waitFor(t, 20*time.Second, "every event delivered", func() bool { return r.delivered() == n })
	r.check()
	seqs := r.seqs()
	for seq := uint64(1); seq <= n; seq++ {
		if ids := seqs[seq]; len(ids) != 1 {
			t.Errorf("seq %d delivered under ids %v, want one", seq, ids)
		}
	}
	r.mu.Lock()
	for id, tries := range r.tries {
		if tries < 3 {
			t.Errorf("event %s: %d requests, want 3 (more only if an answer came after the timeout)", id, tries)
		}
	}
	r.mu.Unlock()
	waitFor(t, 5*time.Second, "stats", func() bool {
		st := d.Stats()
		return st.Delivered == n && st.Retried >= 2*n
	})
	if st := d.Stats(); st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("stats = %+v", st)
	}
	if l, _ := d.Backlog(context.Background()); l != 0 {
		t.Errorf("backlog = %d, want 0", l)
	}
}

// TestBody: the body has the event's id, type, time, node and data.
func TestBody(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, func(_, _ string, _ int) int { return http.StatusOK })
	d := start(t, testConfig(r.url("/")), webhook.NewMemoryBacklog(0, 0))
	at := time.UnixMilli(1700000000123)
	d.Enqueue(hub.WebhookEvent{Type: hub.WebhookMemberJoined, Time: at, Data: hub.WebhookMember{Room: "lobby", User: "bob"}})
	waitFor(t, 10*time.Second, "delivery", func() bool { return r.delivered() == 1 })
	r.check()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, gs := range r.ok {
		b := gs[0].body
		data, _ := b["data"].(map[string]any)
		if b["id"] != id || len(id) != 32 || b["type"] != "member.joined" || b["ts"] != float64(1700000000123) ||
			b["node"] != "node-1" || data["room"] != "lobby" || data["user"] != "bob" {
			t.Errorf("body = %v", b)
		}
	}
}

// TestGivesUp: a 4xx (but 408 and 429) gives the event up at once; a 5xx
// is retried MaxAttempts times; both count as failed.
func TestGivesUp(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, func(path, _ string, _ int) int {
		if path == "/gone" {
			return http.StatusGone
		}
		return http.StatusServiceUnavailable
	})
	for _, tc := range []struct {
		path  string
		tries int
	}{{"/gone", 1}, {"/down", 3}} {
		cfg := testConfig(r.url(tc.path))
		cfg.MaxAttempts = 3
		d := start(t, cfg, webhook.NewMemoryBacklog(0, 0))
		d.Enqueue(message(1))
		waitFor(t, 10*time.Second, tc.path+" given up", func() bool { return d.Stats().Failed == 1 })
		r.mu.Lock()
		for id, paths := range r.paths {
			if paths[0] == tc.path && len(paths) != tc.tries {
				t.Errorf("%s: event %s requested %d times, want %d", tc.path, id, len(paths), tc.tries)
			}
		}
		r.mu.Unlock()
		if st := d.Stats(); st.Delivered != 0 || st.Retried != uint64(tc.tries-1) {
			t.Errorf("%s: stats = %+v", tc.path, st)
		}
	}
	r.check()
}

// TestBacklogBoundDrops: with the receiver down, the backlog fills to its
// bound and drops the rest, counting them; Enqueue never waits.
func TestBacklogBoundDrops(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, func(_, _ string, _ int) int { return hang })
	cfg := testConfig(r.url("/"))
	cfg.Timeout = time.Minute
	d := start(t, cfg, webhook.NewMemoryBacklog(5, 0))
	for i := range 20 {
		d.Enqueue(message(uint64(i)))
	}
	waitFor(t, 10*time.Second, "15 dropped", func() bool { return d.Stats().Dropped == 15 })
	if l, err := d.Backlog(context.Background()); l != 5 || err != nil {
		t.Errorf("backlog = %d, %v; want 5", l, err)
	}
}

// TestQueueBoundDrops: events beyond the queue are dropped and counted at
// once.
func TestQueueBoundDrops(t *testing.T) {
	t.Parallel()
	cfg := testConfig("http://127.0.0.1:1/")
	cfg.QueueSize = 4
	d, err := webhook.New(cfg, webhook.NewMemoryBacklog(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d.Enqueue(message(uint64(i))) // not started: nothing drains the queue
	}
	if st := d.Stats(); st.Dropped != 6 {
		t.Errorf("dropped = %d, want 6", st.Dropped)
	}
	closeDispatcher(t, d)
}

// TestMemoryBacklogBytes: the byte bound refuses what does not fit.
func TestMemoryBacklogBytes(t *testing.T) {
	t.Parallel()
	b := webhook.NewMemoryBacklog(100, 250)
	e := webhook.Entry{ID: "x", Body: make([]byte, 100)}
	refused, err := b.Add(context.Background(), []webhook.Entry{e, e, e})
	if refused != 1 || err != nil {
		t.Fatalf("refused %d, %v; want 1", refused, err)
	}
	taken, _ := b.Take(context.Background(), 10)
	if len(taken) != 2 {
		t.Fatalf("took %d, want 2", len(taken))
	}
	b.Done(context.Background(), taken[0])
	if refused, _ := b.Add(context.Background(), []webhook.Entry{e}); refused != 0 {
		t.Errorf("after Done: refused %d, want 0", refused)
	}
}

// TestEventsFilter: only the configured types are delivered.
func TestEventsFilter(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, func(_, _ string, _ int) int { return http.StatusOK })
	cfg := testConfig(r.url("/"))
	cfg.Events = []string{hub.WebhookMemberJoined}
	d := start(t, cfg, webhook.NewMemoryBacklog(0, 0))
	d.Enqueue(message(1))
	d.Enqueue(hub.WebhookEvent{Type: hub.WebhookMemberJoined, Time: time.Now(), Data: hub.WebhookMember{Room: "r", User: "u"}})
	waitFor(t, 10*time.Second, "delivery", func() bool { return r.delivered() == 1 })
	closeDispatcher(t, d)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, gs := range r.ok {
		if gs[0].body["type"] != "member.joined" {
			t.Errorf("delivered %v", gs[0].body)
		}
	}
	if len(r.tries) != 1 {
		t.Errorf("%d events requested, want 1", len(r.tries))
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []webhook.Config{
		{URL: "ftp://x/", Secret: secret},
		{URL: "http://", Secret: secret},
		{URL: "http://x/", Secret: []byte("short")},
		{URL: "http://x/", Secret: secret, Events: []string{"message.sent", "nope"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	ok := webhook.Config{URL: "https://x/hook", Secret: secret, Events: hub.WebhookTypes()}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"1"}`)
	sig := webhook.Sign(secret, now, body)
	if err := webhook.Verify(secret, sig, body, now.Add(time.Minute), 0); err != nil {
		t.Errorf("valid: %v", err)
	}
	for name, tc := range map[string]struct {
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		"stale":     {sig, body, now.Add(6 * time.Minute), webhook.ErrStale},
		"future":    {sig, body, now.Add(-6 * time.Minute), webhook.ErrStale},
		"tampered":  {sig, []byte(`{"id":"2"}`), now, webhook.ErrBadSignature},
		"other key": {webhook.Sign([]byte("another secret of 32 bytes......"), now, body), body, now, webhook.ErrBadSignature},
		"no v1":     {"t=1700000000", body, now, webhook.ErrMalformed},
		"no t":      {"v1=00", body, now, webhook.ErrMalformed},
		"garbage":   {"hello", body, now, webhook.ErrMalformed},
	} {
		if err := webhook.Verify(secret, tc.header, tc.body, tc.now, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
