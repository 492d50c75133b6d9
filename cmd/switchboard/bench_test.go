package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runBenchJSON runs `switchboard bench args… --json` and decodes its
// output.
func runBenchJSON(t *testing.T, env map[string]string, args ...string) benchResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args = append([]string{"bench", "--json", "--progress=false"}, args...)
	if err := run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var res benchResult
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Fatal("--json printed more than one object")
	}
	return res
}

// TestBenchSmoke: a short fan-out run against a real server loses and
// doubles nothing and counts every delivery, with either publisher.
func TestBenchSmoke(t *testing.T) {
	env := map[string]string{"SWITCHBOARD_API_KEY": "bench-key"}
	for _, publisher := range []string{"api", "ws"} {
		t.Run(publisher, func(t *testing.T) {
			t.Parallel()
			base, _ := startRun(t, env, "--max-connections-per-ip", "0", "--rate-limit", "0")
			res := runBenchJSON(t, env, "--url", base, "--conns", "20", "--rooms", "2",
				"--messages", "200", "--rate", "200", "--publisher", publisher, "--pid", strconv.Itoa(os.Getpid()))
			const want = 200 * 10 // every message reaches the 10 subscribers of its room
			if res.Connected != 20 || res.Joined != 20 || res.PublishOK != 200 || res.PublishErrors+res.PublishTimeouts != 0 {
				t.Fatalf("connected %d, joined %d, published ok %d, errors %d, timeouts %d; errors: %v",
					res.Connected, res.Joined, res.PublishOK, res.PublishErrors, res.PublishTimeouts, res.Errors)
			}
			if res.Expected != want || res.Received != want || res.Lost != 0 || res.Duplicates != 0 || res.Late+res.Misrouted != 0 {
				t.Fatalf("expected %d, received %d, lost %d, duplicates %d, late %d, misrouted %d; want %d received, none lost or doubled",
					res.Expected, res.Received, res.Lost, res.Duplicates, res.Late, res.Misrouted, want)
			}
			if res.Latency == nil || res.Latency.P99 <= 0 || res.Latency.Max < res.Latency.P99 || res.Server == nil || res.Dropped != 0 {
				t.Fatalf("latency %+v, server %+v, dropped %d", res.Latency, res.Server, res.Dropped)
			}
		})
	}
}

// TestBenchIdle: idle mode connects, joins, holds and leaves.
func TestBenchIdle(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, nil, "--max-connections-per-ip", "0")
	res := runBenchJSON(t, nil, "--url", base, "--mode", "idle", "--conns", "30", "--rooms", "3", "--join",
		"--hold", "50ms", "--pid", strconv.Itoa(os.Getpid()))
	if res.Connected != 30 || res.Joined != 30 || res.JoinErrors != 0 || res.Server == nil || res.Server.RSSKiB <= 0 {
		t.Fatalf("connected %d, joined %d (%d errors), server %+v; errors: %v", res.Connected, res.Joined, res.JoinErrors, res.Server, res.Errors)
	}
}

// TestBenchTokens: with --token-secret the tool connects to a server
// with auth on.
func TestBenchTokens(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SWITCHBOARD_API_KEY": "bench-key", "SWITCHBOARD_JWT_SECRET": testSecret}
	base, _ := startRun(t, env, "--max-connections-per-ip", "0")
	res := runBenchJSON(t, env, "--url", base, "--conns", "4", "--messages", "10", "--rate", "100", "--token-secret", testSecret)
	if res.Received != 40 || res.Lost != 0 {
		t.Fatalf("received %d, lost %d; errors: %v", res.Received, res.Lost, res.Errors)
	}
}

func TestBenchUsage(t *testing.T) {
	cases := [][]string{
		{"--url", "ws://10.1.2.3:8080", "--api-key", "k"},
		{"--url", "ws://example.com:8080", "--api-key", "k"},
		{"--url", "ftp://127.0.0.1:8080", "--api-key", "k"},
		{"--url", "ws://127.0.0.1:8080/ws", "--api-key", "k"},
		{"--conns", "0", "--api-key", "k"},
		{"--conns", "50001", "--api-key", "k"},
		{"--messages", "1000000", "--rate", "1", "--api-key", "k"},
		{"--size", "10", "--api-key", "k"},
		{"--publisher", "api"},
		{"--publisher", "ws", "--target", "centrifugo"},
		{"--target", "nats", "--api-key", "k"},
		{"--pid", "self", "--api-key", "k"},
		{"--token-secret", "short", "--api-key", "k"},
		{"extra", "--api-key", "k"},
	}
	for _, args := range cases {
		var stderr bytes.Buffer
		err := run(context.Background(), append([]string{"bench"}, args...), func(string) string { return "" }, io.Discard, &stderr)
		if !errors.Is(err, errUsage) || strings.Contains(err.Error(), "\n") {
			t.Errorf("bench %v = %v, want a one-line usage error", args, err)
		}
	}
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"bench", "--help"}, func(string) string { return "" }, &stdout, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help = %v", err)
	}
	for _, f := range []string{"url", "target", "mode", "conns", "rooms", "messages", "rate", "size", "publisher", "api-key",
		"token-secret", "workers", "dial-concurrency", "publish-timeout", "join-timeout", "drain", "hold", "join", "pid",
		"json", "allow-remote", "progress"} {
		if !strings.Contains(stdout.String(), "-"+f+" ") && !strings.Contains(stdout.String(), "-"+f+"\n") {
			t.Errorf("--help does not document --%s", f)
		}
	}
}

func TestScanDelivery(t *testing.T) {
	data := appendPayload(nil, 42, 1700000000123456789, 100)
	if len(data) != 100 || !json.Valid(data) {
		t.Fatalf("payload %q: %d bytes, want 100 of valid JSON", data, len(data))
	}
	cases := []struct {
		line   string
		n      uint64
		sentAt int64
		ok     bool
	}{
		{`{"type":"message","room":"bench-0","seq":3,"from":"system","data":` + string(data) + `,"ts":1}`, 42, 1700000000123456789, true},
		{`{"push":{"channel":"bench:bench-1","pub":{"data":{"bn":7,"bt":5,"pad":""},"offset":9}}}`, 7, 5, true},
		{`{"type":"member_joined","room":"bench-0","user":"bench-3"}`, 0, 0, false},
		{`{"bn":7}`, 0, 0, false},
		{`{"bn":,"bt":5}`, 0, 0, false},
		{`{"bn":7,"bt":}`, 0, 0, false},
		{`{"bn":7,"bt":99999999999999999999}`, 0, 0, false},
		{``, 0, 0, false},
	}
	for _, c := range cases {
		n, sentAt, ok := scanDelivery([]byte(c.line))
		if n != c.n || sentAt != c.sentAt || ok != c.ok {
			t.Errorf("scanDelivery(%s) = %d, %d, %v; want %d, %d, %v", c.line, n, sentAt, ok, c.n, c.sentAt, c.ok)
		}
	}
	var got []string
	for msg := []byte("a\nbb\n\nc"); len(msg) > 0; {
		var line []byte
		line, msg = nextLine(msg)
		got = append(got, string(line))
	}
	if strings.Join(got, "|") != "a|bb||c" {
		t.Fatalf("nextLine split %q", got)
	}
}

func TestSeenWindow(t *testing.T) {
	var s seen
	mark := func(i uint64, wantFresh, wantLate bool) {
		t.Helper()
		if fresh, late := s.mark(i); fresh != wantFresh || late != wantLate {
			t.Fatalf("mark(%d) = fresh %v late %v, want %v %v", i, fresh, late, wantFresh, wantLate)
		}
	}
	mark(0, true, false)
	mark(2, true, false)
	mark(1, true, false) // out of order
	mark(2, false, false)
	mark(seenWords*64-1, true, false) // the window's last index
	mark(seenWords*64, true, false)   // slides one word
	mark(0, false, true)              // behind the window now
	mark(64, true, false)
	mark(64, false, false)
	mark(seenWords*64-1, false, false) // still inside: remembered
	mark(1<<40, true, false)           // far ahead: the window restarts
	mark(1<<40, false, false)
	mark(seenWords*64, false, true)
}

func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	for v := uint64(0); v < 1<<20; v = v*9/8 + 1 {
		b := histBucket(v)
		if histUpper(b) < v || (b > 0 && histUpper(b-1) >= v) || b >= histBuckets {
			t.Fatalf("value %d in bucket %d holding up to %d (previous up to %d)", v, b, histUpper(b), histUpper(b-1))
		}
	}
	for us := 1; us <= 10000; us++ {
		h.record(time.Duration(us) * time.Microsecond)
	}
	h.record(-time.Second) // a clock step counts as zero
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.95, 9500 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*(1+1.0/histSub) {
			t.Errorf("quantile(%v) = %v, want %v within %.1f%%", c.q, got, c.want, 100.0/histSub)
		}
	}
	if h.max.Load() != 10000 {
		t.Fatalf("max %d µs, want 10000", h.max.Load())
	}
	var small histogram
	for _, us := range []int{3, 1, 2} {
		small.record(time.Duration(us) * time.Microsecond)
	}
	if small.quantile(0.5) != 2*time.Microsecond || small.quantile(0.01) != time.Microsecond {
		t.Fatalf("small: median %v, p1 %v; want exact 2µs and 1µs", small.quantile(0.5), small.quantile(0.01))
	}
}

func TestSampleProcs(t *testing.T) {
	s, err := sampleProcs([]int{os.Getpid(), os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := procRSS(os.Getpid())
	if s.RSSKiB <= 0 || s.CPU < 0 || one <= 0 {
		t.Fatalf("sample %+v, rss %d", s, one)
	}
	if _, err := sampleProcs([]int{1 << 30}); err == nil {
		t.Fatal("a missing process sampled without error")
	}
}

// TestBenchLeavesNoGoroutines: when bench returns, every goroutine it
// started (read loops, publishers, progress) has exited. Not parallel, so
// no other bench runs meanwhile.
func TestBenchLeavesNoGoroutines(t *testing.T) {
	env := map[string]string{"SWITCHBOARD_API_KEY": "bench-key"}
	base, _ := startRun(t, env, "--max-connections-per-ip", "0", "--rate-limit", "0")
	for _, publisher := range []string{"api", "ws"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := run(ctx, []string{"bench", "--url", base, "--conns", "5", "--messages", "20", "--rate", "100", "--publisher", publisher},
			func(k string) string { return env[k] }, io.Discard, io.Discard)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, fn := range []string{"main.(*benchSub)", "main.publish", "main.startProgress", "main.joinAll", "main.connectAll", "main.readAcks"} {
		if strings.Contains(stacks, fn) {
			t.Fatalf("a goroutine in %s outlived the run:\n%s", fn, stacks)
		}
	}
}
