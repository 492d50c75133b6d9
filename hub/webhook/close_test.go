package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub/redisbroker"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
	"github.com/switchboard-chat/switchboard/hub/webhook"
)

// TestCloseFlushesMemoryBacklog: Close of a Dispatcher on a MemoryBacklog,
// called right after the events were enqueued, delivers every one of them
// before it returns, through a receiver that is slow and fails each
// event's first POST: retries go on during the flush.
func TestCloseFlushesMemoryBacklog(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, func(_, _ string, n int) int {
		if n == 1 {
			time.Sleep(50 * time.Millisecond)
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	cfg := testConfig(r.url("/hook"))
	cfg.FlushTimeout = time.Minute // the test's bound is ctx's
	var logs syncBuffer
	cfg.Logger = zerolog.New(&logs)
	d := start(t, cfg, webhook.NewMemoryBacklog(0, 0))
	const n = 40 // more than Config.Concurrency: some wait for a slot
	enqueue(d, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := r.delivered(); got != n {
		t.Errorf("%d events delivered by the time Close returned, want %d", got, n)
	}
	r.check()
	st := d.Stats()
	if st.Delivered != n || st.Dropped != 0 || st.Failed != 0 || st.Retried < n {
		t.Errorf("stats = %+v, want %d delivered, each retried, none dropped", st, n)
	}
	if l, _ := d.Backlog(context.Background()); l != 0 {
		t.Errorf("backlog = %d, want 0", l)
	}
	if lines := logs.lines(t, "webhook events lost at shutdown"); len(lines) != 0 {
		t.Errorf("loss logged: %v", lines)
	}
}

// TestCloseFlushDeadline: with the receiver down, Close of a Dispatcher on
// a MemoryBacklog keeps retrying until its deadline, Config.FlushTimeout or
// ctx's, whichever comes first, and no longer; then it counts every event
// as dropped and says so in one log line.
func TestCloseFlushDeadline(t *testing.T) {
	t.Parallel()
	const flush = 300 * time.Millisecond
	for _, tc := range []struct {
		name         string
		flushTimeout time.Duration
		ctxTimeout   time.Duration
	}{
		{"FlushTimeout", flush, time.Minute},
		{"ctx", time.Hour, flush},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(refusingURL(t))
			cfg.FlushTimeout = tc.flushTimeout
			cfg.MaxAttempts = 1000 // retried until the deadline, never given up
			var logs syncBuffer
			cfg.Logger = zerolog.New(&logs)
			d := start(t, cfg, webhook.NewMemoryBacklog(0, 0))
			const n = 10
			enqueue(d, n)
			ctx, cancel := context.WithTimeout(context.Background(), tc.ctxTimeout)
			defer cancel()
			start := time.Now()
			if err := d.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// Not a measure of speed: Close must not outlast its deadline
			// by more than a loaded machine's scheduling.
			if took := time.Since(start); took < flush || took > flush+5*time.Second {
				t.Errorf("Close took %v, want about the %v deadline", took, flush)
			}
			st := d.Stats()
			if st.Dropped != n || st.Delivered != 0 || st.Failed != 0 || st.Retried == 0 {
				t.Errorf("stats = %+v, want %d dropped after retries", st, n)
			}
			lines := logs.lines(t, "webhook events lost at shutdown")
			if len(lines) != 1 || lines[0]["dropped"] != float64(n) || lines[0]["level"] != "warn" || lines[0]["reason"] == nil {
				t.Errorf("loss log lines = %v, want one warning that %d were dropped, with the reason", lines, n)
			}
		})
	}
}

// TestCloseStopsHungDelivery: Close does not wait beyond its flush for a
// receiver that does not answer; what it did not deliver is dropped, as
// is what is enqueued after it.
func TestCloseStopsHungDelivery(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, func(_, _ string, _ int) int { return hang })
	cfg := testConfig(r.url("/"))
	cfg.Timeout = time.Hour
	cfg.FlushTimeout = 200 * time.Millisecond
	d := start(t, cfg, webhook.NewMemoryBacklog(0, 0))
	d.Enqueue(message(1))
	waitFor(t, 10*time.Second, "request", func() bool { return r.requested() == 1 })
	closeDispatcher(t, d)
	if st := d.Stats(); st.Dropped != 1 {
		t.Errorf("dropped = %d, want 1", st.Dropped)
	}
	d.Enqueue(message(2)) // after Close: dropped, no panic
	if st := d.Stats(); st.Dropped != 2 {
		t.Errorf("dropped = %d, want 2", st.Dropped)
	}
}

// TestRedisCloseLeavesBacklog: with a shared Backlog, Close adds what was
// just enqueued to the stream and stops without waiting for a receiver
// that is down, whatever Config.FlushTimeout: the events stay in the
// stream for the other nodes, not dropped.
func TestRedisCloseLeavesBacklog(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := testConfig(refusingURL(t))
	cfg.FlushTimeout = time.Hour
	d := start(t, cfg, redisNode(t, srv, "a", "leave:").WebhookBacklog(redisbroker.WebhookConfig{}))
	const n = 10
	enqueue(d, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Close took %v: it waited for the receiver", took)
	}
	if st := d.Stats(); st.Dropped != 0 || st.Delivered != 0 {
		t.Errorf("stats = %+v, want nothing dropped or delivered", st)
	}
	if l, err := d.Backlog(context.Background()); l != n || err != nil {
		t.Errorf("backlog = %d, %v; want the %d events left in the stream", l, err, n)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use: a logger's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines whose message is msg.
func (s *syncBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line %q: %v", sc.Text(), err)
			continue
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}
