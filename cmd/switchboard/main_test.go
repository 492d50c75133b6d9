package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRun runs the server as main would, with args, and returns its base
// URL once /healthz answers, and a function that stops it and returns run's
// error.
func startRun(t *testing.T, env map[string]string, args ...string) (string, func() error) {
	t.Helper()
	addr := freeAddr(t)
	getenv := func(k string) string { return env[k] }
	return startServer(t, addr, func(ctx context.Context) error {
		return run(ctx, append([]string{"--addr", addr, "--log-format", "json"}, args...), getenv, io.Discard, io.Discard)
	})
}

// startServe runs serve with cfg, on a free address, logging to stderr; see
// startRun.
func startServe(t *testing.T, cfg config, stderr io.Writer) (string, func() error) {
	t.Helper()
	cfg.Addr = freeAddr(t)
	return startServer(t, cfg.Addr, func(ctx context.Context) error { return serve(ctx, cfg, stderr) })
}

// testConfig is the configuration parseConfig returns for env, JSON logs.
func testConfig(t *testing.T, env map[string]string) config {
	t.Helper()
	cfg, err := parseConfig([]string{"--log-format", "json"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServer runs start in a goroutine until /healthz answers at addr.
func startServer(t *testing.T, addr string, start func(ctx context.Context) error) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not become healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				runErr = errors.New("run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return base, stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunServesAndShutsDown(t *testing.T) {
	base, stop := startRun(t, nil)
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz = %d %s", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d", code)
	}
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "<html") {
		t.Fatalf("/ = %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws?name=alice"
	c, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, welcome, err := c.Read(ctx)
	if err != nil || !bytes.Contains(welcome, []byte(`"type":"welcome"`)) {
		t.Fatalf("welcome = %s, %v", welcome, err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"lobby","id":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, joined, err := c.Read(ctx); err != nil || !bytes.Contains(joined, []byte(`"type":"joined"`)) {
		t.Fatalf("joined = %s, %v", joined, err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	_, _, err = c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("close status on shutdown = %v (%v), want 1001", got, err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string // in the error, when set
	}{
		{args: []string{"--rate-limit", "-1"}},
		{args: []string{"--max-frame", "abc"}},
		{args: []string{"--no-such-flag"}},
		{args: []string{"extra"}},
		{env: map[string]string{"SWITCHBOARD_QUEUE_BYTES": "ten"}},
		{env: map[string]string{"SWITCHBOARD_HISTORY_SIZE": "0"}},
		{env: map[string]string{"SWITCHBOARD_LOG_LEVEL": "loud"}},
		{env: map[string]string{"SWITCHBOARD_LOG_FORMAT": "xml"}},
		{args: []string{"--rate-limit-bytes", "-1"}},
		{env: map[string]string{"SWITCHBOARD_RATE_LIMIT_BYTES": "lots"}},
		{args: []string{"--history-max-bytes", "1000"}},
		{args: []string{"--max-frame", "2048", "--history-max-bytes", "2047"}},
		{args: []string{"--trusted-proxies", "10.0.0.0/8,10.0.0.300"}, want: "10.0.0.300"},
		{args: []string{"--trusted-proxies", "10.0.0.0/33"}, want: "10.0.0.0/33"},
		{env: map[string]string{"SWITCHBOARD_TRUSTED_PROXIES": "192.168.0.0/16, lb.internal"}, want: "lb.internal"},
		{args: []string{"--write-delay", "60ms"}, want: "--write-delay"},
		{args: []string{"--write-delay", "20ms", "--write-delay-max", "10ms"}, want: "--write-delay-max"},
		{env: map[string]string{"SWITCHBOARD_WRITE_DELAY_MAX": "1s"}, want: "--write-delay-max"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.args, c.env), func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), c.args, func(k string) string { return c.env[k] }, io.Discard, &stderr)
			if !errors.Is(err, errUsage) {
				t.Fatalf("run = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run = %v, want it to name %q", err, c.want)
			}
		})
	}
}

func TestConfigFlagWinsOverEnv(t *testing.T) {
	env := map[string]string{"SWITCHBOARD_RATE_LIMIT": "5", "SWITCHBOARD_MAX_FRAME": "1024"}
	cfg, err := parseConfig([]string{"--rate-limit", "7"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit != 7 || cfg.MaxFrame != 1024 {
		t.Fatalf("rate-limit %d max-frame %d, want 7 and 1024", cfg.RateLimit, cfg.MaxFrame)
	}
}

func TestHelpListsEnvTwins(t *testing.T) {
	var stdout bytes.Buffer
	_, err := parseConfig([]string{"--help"}, func(string) string { return "" }, &stdout)
	if err == nil {
		t.Fatal("--help returned no error")
	}
	for _, want := range []string{"SWITCHBOARD_ADDR", "SWITCHBOARD_NODE_ID", "SWITCHBOARD_RATE_LIMIT", "SWITCHBOARD_QUEUE_BYTES", "SWITCHBOARD_HISTORY_SIZE",
		"SWITCHBOARD_RATE_LIMIT_BYTES", "SWITCHBOARD_TRUSTED_PROXIES", "SWITCHBOARD_HISTORY_MAX_BYTES"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

// TestConfigLimits: the byte rate limit, history byte cap and trusted
// proxies are read from flags and environment and reach the WebSocket
// server's configuration.
func TestConfigLimits(t *testing.T) {
	cfg := testConfig(t, nil)
	if cfg.RateLimitBytes != 256<<10 || cfg.HistoryMaxBytes != 1<<20 || cfg.TrustedProxies != nil || cfg.HTTP != defaultHTTPLimits {
		t.Fatalf("defaults: rate-limit-bytes %d, history-max-bytes %d, trusted-proxies %v, http %+v",
			cfg.RateLimitBytes, cfg.HistoryMaxBytes, cfg.TrustedProxies, cfg.HTTP)
	}
	cfg = testConfig(t, map[string]string{
		"SWITCHBOARD_RATE_LIMIT_BYTES":  "0",
		"SWITCHBOARD_HISTORY_MAX_BYTES": "65536",
		"SWITCHBOARD_TRUSTED_PROXIES":   " 10.0.0.0/8, 192.168.1.7,,::1 ,2001:db8::1/32",
		"SWITCHBOARD_JWT_SECRET":        testSecret,
	})
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if cfg.RateLimitBytes != 0 || cfg.HistoryMaxBytes != 65536 || !slices.Equal(cfg.TrustedProxies, want) {
		t.Fatalf("from env: rate-limit-bytes %d, history-max-bytes %d, trusted-proxies %v",
			cfg.RateLimitBytes, cfg.HistoryMaxBytes, cfg.TrustedProxies)
	}
	cfg.RateLimitBytes = 4096
	ws := clientsConfig(cfg, zerolog.Nop())
	if ws.RateLimitBytes != 4096 || !slices.Equal(ws.TrustedProxies, want) || ws.Authenticate == nil || ws.Refresh == nil {
		t.Fatalf("clients config: %+v", ws)
	}
}
