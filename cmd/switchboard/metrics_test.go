package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// scrapeErr fetches url (…/metrics), with key as a Bearer token unless
// empty, and parses the text format.
func scrapeErr(url, key string) (families, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return families(fams), nil
}

func scrape(t *testing.T, url, key string) families {
	t.Helper()
	f, err := scrapeErr(url, key)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// families are the parsed metric families of a scrape, by name.
type families map[string]*dto.MetricFamily

// value returns the value of the counter or gauge name whose labels include
// labels (name, value pairs), and whether there is one.
func (f families) lookup(name string, labels ...string) (float64, bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			if !hasLabel(m, labels[i], labels[i+1]) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.Label {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// want checks the metric's value, failing the test when it is missing or
// another.
func (f families) want(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := f.lookup(name, labels...)
	if !ok {
		t.Errorf("%s%v missing", name, labels)
	} else if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// TestMetrics drives real clients through a server and checks that the
// metrics moved by exactly what they did, and that /metrics on the main
// listener needs the API key.
func TestMetrics(t *testing.T) {
	const key = "metrics-test-key"
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": key, "SWITCHBOARD_RATE_LIMIT": "0"})
	url := base + "/metrics"
	for _, auth := range []string{"", "wrong"} {
		if _, err := scrapeErr(url, auth); err == nil || !strings.Contains(err.Error(), ": 401 ") {
			t.Errorf("/metrics with key %q: %v, want 401", auth, err)
		}
	}
	if f := scrape(t, url, key); f["go_goroutines"] == nil || f["process_open_fds"] == nil {
		t.Error("the Go runtime and process metrics are missing")
	}

	alice, bob := dial(t, base, "?name=alice", nil), dial(t, base, "?name=bob", nil)
	alice.send(`{"type":"join","room":"lobby","id":"j"}`)
	joined := alice.expect("joined")
	bob.send(`{"type":"join","room":"lobby","id":"j"}`)
	bob.expect("joined")
	for i := range 3 {
		alice.send(fmt.Sprintf(`{"type":"send","room":"lobby","data":%d,"id":"s%d"}`, i, i))
		alice.expectAnswer(fmt.Sprintf("s%d", i))
		bob.expect("message")
	}
	alice.send(`{"type":"ping","id":"p"}`)
	alice.expectAnswer("p")
	alice.send(`{"type":"bogus","id":"b"}`)
	alice.expectAnswer("b")

	f := scrape(t, url, key)
	f.want(t, 2, "switchboard_connections")
	f.want(t, 2, "switchboard_users")
	f.want(t, 1, "switchboard_rooms")
	f.want(t, 1, "switchboard_ready")
	f.want(t, 0, "switchboard_draining")
	f.want(t, 2, "switchboard_frames_received_total", "type", "join")
	f.want(t, 3, "switchboard_frames_received_total", "type", "send")
	f.want(t, 1, "switchboard_frames_received_total", "type", "ping")
	f.want(t, 1, "switchboard_frames_received_total", "type", "invalid")
	f.want(t, 0, "switchboard_frames_received_total", "type", "dm")
	f.want(t, 3, "switchboard_messages_published_total")
	f.want(t, 6, "switchboard_messages_delivered_total") // 3 messages to 2 members
	f.want(t, 6, "switchboard_frames_sent_total", "type", "message")
	f.want(t, 2, "switchboard_frames_sent_total", "type", "welcome")
	f.want(t, 2, "switchboard_frames_sent_total", "type", "joined")
	f.want(t, 1, "switchboard_frames_sent_total", "type", "member_joined") // bob's, to alice
	f.want(t, 3, "switchboard_frames_sent_total", "type", "ack")
	f.want(t, 1, "switchboard_frames_sent_total", "type", "pong")
	f.want(t, 1, "switchboard_frames_sent_total", "type", "error")
	f.want(t, 0, "switchboard_rate_limited_frames_total")
	f.want(t, 0, "switchboard_disconnects_total", "reason", "client_closed")
	if n, _ := f.lookup("switchboard_fanout_latency_seconds"); n < 7 {
		t.Errorf("fan-out latency observed %v times, want at least one per frame alice or bob waited for", n)
	}
	if _, ok := f.lookup("switchboard_redis_errors_total"); ok {
		t.Error("switchboard_redis_errors_total exported with the memory broker")
	}

	// carol recovers the two messages after the first; alice leaves.
	carol := dial(t, base, "?name=carol", nil)
	carol.send(fmt.Sprintf(`{"type":"join","room":"lobby","since":1,"epoch":%q}`, joined["epoch"]))
	if j := carol.expect("joined"); j["recovered"] != true {
		t.Fatalf("carol's join: %v", j)
	}
	carol.expect("message")
	carol.expect("message")
	alice.c.Close(4000, "bye")
	eventually(t, 10*time.Second, func() error {
		f = scrape(t, url, key)
		if v, _ := f.lookup("switchboard_connections"); v != 2 {
			return fmt.Errorf("connections = %v after alice left, want 2", v)
		}
		return nil
	})
	f.want(t, 1, "switchboard_disconnects_total", "reason", "client_closed")
	f.want(t, 1, "switchboard_recoveries_total", "outcome", "recovered")
	f.want(t, 0, "switchboard_recoveries_total", "outcome", "new_epoch")
	f.want(t, 8, "switchboard_messages_delivered_total")
}

// TestMetricsRateLimit: frames beyond the rate limit are counted, and are
// not counted as handled.
func TestMetricsRateLimit(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_RATE_LIMIT": "1"}) // a burst of 2, then 1/s
	c := dial(t, base, "?name=alice", nil)
	const sent = 8
	for i := range sent {
		c.send(fmt.Sprintf(`{"type":"ping","id":%d}`, i))
	}
	eventually(t, 10*time.Second, func() error {
		f := scrape(t, base+"/metrics", "") // no API key: no auth
		pings, _ := f.lookup("switchboard_frames_received_total", "type", "ping")
		limited, _ := f.lookup("switchboard_rate_limited_frames_total")
		if pings+limited != sent || limited < 1 {
			return fmt.Errorf("%v pings handled and %v rate limited, want %d in all, some limited", pings, limited, sent)
		}
		return nil
	})
}

// TestMetricsAddr: with --metrics-addr, /metrics is served there, without
// auth, and not on the main listener.
func TestMetricsAddr(t *testing.T) {
	addr := freeAddr(t)
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": "k"}, "--metrics-addr", addr)
	if f := scrape(t, "http://"+addr+"/metrics", ""); f["switchboard_connections"] == nil {
		t.Error("switchboard_connections missing on --metrics-addr")
	}
	for _, key := range []string{"", "k"} {
		if _, err := scrapeErr(base+"/metrics", key); err == nil || !strings.Contains(err.Error(), ": 404 ") {
			t.Errorf("/metrics on the main listener with key %q: %v, want 404", key, err)
		}
	}
}

// TestMetricsRedis: in Redis mode the broker's counters are exported, and
// Redis errors, readiness and pub/sub reconnects move when Redis stops and
// comes back.
func TestMetricsRedis(t *testing.T) {
	redis := redistest.Start(t)
	base := startCluster(t, redis.URL(), 1, nil)[0]
	url := base + "/metrics"
	c := dial(t, base, "?name=alice", nil)
	c.send(`{"type":"join","room":"lobby"}`)
	c.expect("joined")
	f := scrape(t, url, "")
	f.want(t, 1, "switchboard_ready")
	f.want(t, 0, "switchboard_redis_pubsub_reconnects_total")
	for _, name := range []string{
		"switchboard_redis_errors_total", "switchboard_redis_gap_repairs_total", "switchboard_redis_resyncs_total",
		"switchboard_redis_repaired_publications_total", "switchboard_redis_lost_publications_total",
		"switchboard_redis_receive_backlogs_total", "switchboard_redis_repair_buffer_overflows_total",
		"switchboard_redis_malformed_messages_total",
	} {
		if _, ok := f.lookup(name); !ok {
			t.Errorf("%s missing in Redis mode", name)
		}
	}
	errs, _ := f.lookup("switchboard_redis_errors_total")
	resyncs, _ := f.lookup("switchboard_redis_resyncs_total")

	redis.Stop()
	eventually(t, 15*time.Second, func() error {
		f := scrape(t, url, "")
		ready, _ := f.lookup("switchboard_ready")
		e, _ := f.lookup("switchboard_redis_errors_total")
		if ready != 0 || e <= errs {
			return fmt.Errorf("ready %v, redis errors %v (were %v) while Redis is down", ready, e, errs)
		}
		return nil
	})
	redis.Start()
	eventually(t, 15*time.Second, func() error {
		f := scrape(t, url, "")
		ready, _ := f.lookup("switchboard_ready")
		re, _ := f.lookup("switchboard_redis_pubsub_reconnects_total")
		rs, _ := f.lookup("switchboard_redis_resyncs_total")
		if ready != 1 || re < 1 || rs <= resyncs {
			return fmt.Errorf("ready %v, pub/sub reconnects %v, resyncs %v (were %v) after Redis came back", ready, re, rs, resyncs)
		}
		return nil
	})
}

// TestMetricsLint: every metric of the registry passes Prometheus's
// linter (names, units, help), drain progress included once wired.
func TestMetricsLint(t *testing.T) {
	b := memorybroker.New(memorybroker.Config{})
	h := hub.New(b, memorybroker.NewPresence(b), hub.Config{Logger: zerolog.Nop()})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	m := newMetrics()
	ws := clients.NewServer(h, clients.Config{ObserveLatency: m.observeFanout})
	var draining atomic.Bool
	draining.Store(true)
	m.watch(&nodeCollector{hub: h, clients: ws, draining: &draining,
		drainProgress: func() (int, int) { return 3, 5 }})
	m.observeFanout(3 * time.Millisecond)
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	want := `
# HELP switchboard_drain_sessions_closed Sessions the drain has closed so far.
# TYPE switchboard_drain_sessions_closed gauge
switchboard_drain_sessions_closed 3
# HELP switchboard_draining 1 once the node is draining (shutting down); else 0.
# TYPE switchboard_draining gauge
switchboard_draining 1
# HELP switchboard_ready 1 when the node takes traffic (/readyz answers 200): not draining and its broker reachable; else 0.
# TYPE switchboard_ready gauge
switchboard_ready 0
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"switchboard_drain_sessions_closed", "switchboard_draining", "switchboard_ready"); err != nil {
		t.Error(err)
	}
}
