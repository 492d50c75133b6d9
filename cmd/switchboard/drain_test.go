package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/protocol"
)

// drainNode is one switchboard process on the memory broker, for the tests
// that send it signals.
type drainNode struct {
	base, logPath string
	cmd           *exec.Cmd
	exited        chan struct{} // closed once the process exited
}

// startDrainNode starts bin with the server API on and env added, and
// waits until it is healthy. Its log is shown if the test fails.
func startDrainNode(t *testing.T, bin string, env ...string) *drainNode {
	t.Helper()
	addr := freeAddr(t)
	nd := &drainNode{base: "http://" + addr, logPath: filepath.Join(t.TempDir(), "node.log"), exited: make(chan struct{})}
	logFile, err := os.Create(nd.logPath)
	if err != nil {
		t.Fatal(err)
	}
	nd.cmd = exec.Command(bin)
	nd.cmd.Env = append(append(os.Environ(),
		"SWITCHBOARD_ADDR="+addr,
		"SWITCHBOARD_API_KEY="+testKey,
		"SWITCHBOARD_RATE_LIMIT=0",
		"SWITCHBOARD_MAX_CONNECTIONS_PER_IP=0",
		"SWITCHBOARD_LOG_FORMAT=json",
	), env...)
	nd.cmd.Stdout, nd.cmd.Stderr = logFile, logFile
	if err := nd.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start switchboard: %v", err)
	}
	go func() {
		nd.cmd.Wait()
		logFile.Close()
		close(nd.exited)
	}()
	t.Cleanup(func() {
		nd.cmd.Process.Kill()
		<-nd.exited
		if t.Failed() {
			b, _ := os.ReadFile(nd.logPath)
			t.Logf("node log:\n%s", b)
		}
	})
	eventually(t, 15*time.Second, func() error {
		select {
		case <-nd.exited:
			t.Fatalf("switchboard exited at startup")
		default:
		}
		if code, err := getErr(nd.base + "/healthz"); code != 200 {
			return fmt.Errorf("healthz = %d, %v", code, err)
		}
		return nil
	})
	return nd
}

func (nd *drainNode) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := nd.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to within for the process to exit and returns its exit
// code.
func (nd *drainNode) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-nd.exited:
		return nd.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("switchboard did not exit within %v", within)
		return -1
	}
}

// logLines returns the node's JSON log lines whose message is msg.
func (nd *drainNode) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	f, err := os.Open(nd.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// logLine returns the one log line whose message is msg.
func (nd *drainNode) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	lines := nd.logLines(t, msg)
	if len(lines) != 1 {
		t.Fatalf("%d log lines %q, want 1", len(lines), msg)
	}
	return lines[0]
}

// closeOf reads c until the connection ends and returns how the server
// closed it and when the test saw it.
func closeOf(c *wsClient, within time.Duration) (websocket.CloseError, time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		_, err := c.readWithin(time.Until(deadline))
		if errors.Is(err, errNoFrame) {
			return websocket.CloseError{}, time.Time{}, fmt.Errorf("not closed within %v", within)
		}
		if err != nil {
			at := time.Now()
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				return ce, at, fmt.Errorf("connection ended without a close frame: %w", err)
			}
			return ce, at, nil
		}
	}
}

// dialMany connects n sessions and waits for each one's welcome.
func dialMany(t *testing.T, base string, n int) []*wsClient {
	t.Helper()
	cs := make([]*wsClient, n)
	for i := range cs {
		cs[i] = dial(t, base, fmt.Sprintf("?name=user%d", i), nil)
		cs[i].expect("welcome")
	}
	return cs
}

// closesOf waits for every client's close concurrently and returns their
// close errors and arrival times.
func closesOf(t *testing.T, cs []*wsClient, within time.Duration) ([]websocket.CloseError, []time.Time) {
	t.Helper()
	codes, at, errs := make([]websocket.CloseError, len(cs)), make([]time.Time, len(cs)), make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { codes[i], at[i], errs[i] = closeOf(c, within) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return codes, at
}

// TestDrain runs the binary and stops it with signals: SIGTERM drains,
// SIGINT stops at once.
func TestDrain(t *testing.T) {
	bin := buildSwitchboard(t)

	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		const delay = 3 * time.Second
		nd := startDrainNode(t, bin, "SWITCHBOARD_DRAIN_DELAY="+delay.String())
		alice := dial(t, nd.base, "?name=alice", nil)
		alice.expect("welcome")
		alice.join("lobby")

		signalled := time.Now()
		nd.signal(t, syscall.SIGTERM)
		eventually(t, delay, func() error {
			if code, body := get(t, nd.base+"/readyz"); code != 503 || !strings.Contains(body, `"status":"draining"`) {
				return fmt.Errorf("readyz = %d %s, want 503 draining", code, body)
			}
			return nil
		})
		if code, body := get(t, nd.base+"/healthz"); code != 200 {
			t.Errorf("healthz while draining = %d %s, want 200", code, body)
		}
		// The API and the existing session still work.
		if code, body := api(t, "POST", nd.base+"/api/rooms/lobby/messages", testKey, `{"data":"during the drain"}`); code != 200 {
			t.Fatalf("publish while draining = %d %v", code, body)
		}
		if m := alice.next("message"); m["data"] != "during the drain" {
			t.Fatalf("message = %v", m)
		}
		checkRefused(t, nd.base)
		if time.Since(signalled) >= delay {
			t.Fatalf("the checks outlasted the %v drain delay: too slow a machine for this test", delay)
		}

		ce, at, err := closeOf(alice, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ce.Code != protocol.CloseRestart || ce.Reason != "service restart" {
			t.Errorf("close = %d %q, want 1012 \"service restart\"", ce.Code, ce.Reason)
		}
		if waited := at.Sub(signalled); waited < delay {
			t.Errorf("closed %v after SIGTERM, before the %v drain delay", waited, delay)
		}
		if code := nd.wait(t, 30*time.Second); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
	})

	t.Run("pacing", func(t *testing.T) {
		t.Parallel()
		nd := startDrainNode(t, bin, "SWITCHBOARD_DRAIN_DELAY=0", "SWITCHBOARD_DRAIN_RATE=10", "SWITCHBOARD_SHUTDOWN_TIMEOUT=60s")
		cs := dialMany(t, nd.base, 30)
		nd.signal(t, syscall.SIGTERM)
		codes, at := closesOf(t, cs, 45*time.Second)
		first, last := at[0], at[0]
		for i, ce := range codes {
			if ce.Code != protocol.CloseRestart {
				t.Errorf("session %d closed with %d, want 1012", i, ce.Code)
			}
			first, last = minTime(first, at[i]), maxTime(last, at[i])
		}
		// 10 a second, one every 50ms: the last close comes 1.45s after
		// the first. A bound far below that still tells pacing from one
		// burst.
		if spread := last.Sub(first); spread < 250*time.Millisecond {
			t.Errorf("closes spread over %v, want them paced over more than 250ms", spread)
		}
		if code := nd.wait(t, 30*time.Second); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
		start := nd.logLine(t, "closing sessions")
		if start["sessions"] != 30.0 || start["rate"] != 10.0 {
			t.Errorf("start log = %v, want sessions 30 at rate 10", start)
		}
		if end := nd.logLine(t, "sessions closed"); end["closed"] != 30.0 || end["left"] != 0.0 {
			t.Errorf("end log = %v, want 30 closed, 0 left", end)
		}
		if len(nd.logLines(t, "sessions closing")) == 0 {
			t.Error("no progress log line during a drain of over a second")
		}
	})

	t.Run("pace raised to fit the shutdown timeout", func(t *testing.T) {
		t.Parallel()
		// At 1 a second, 30 sessions would take 29s; half the shutdown
		// timeout is 2s.
		nd := startDrainNode(t, bin, "SWITCHBOARD_DRAIN_DELAY=0", "SWITCHBOARD_DRAIN_RATE=1", "SWITCHBOARD_SHUTDOWN_TIMEOUT=4s")
		cs := dialMany(t, nd.base, 30)
		nd.signal(t, syscall.SIGTERM)
		codes, _ := closesOf(t, cs, 30*time.Second)
		for i, ce := range codes {
			if ce.Code != protocol.CloseRestart {
				t.Errorf("session %d closed with %d, want 1012", i, ce.Code)
			}
		}
		if code := nd.wait(t, 30*time.Second); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
		if rate, _ := nd.logLine(t, "closing sessions")["rate"].(float64); rate < 15 {
			t.Errorf("rate %v, want it raised to at least 15 a second", rate)
		}
		if end := nd.logLine(t, "sessions closed"); end["closed"] != 30.0 || end["left"] != 0.0 {
			t.Errorf("end log = %v, want 30 closed, 0 left", end)
		}
		if late := nd.logLines(t, "sessions did not all close in time"); len(late) > 0 {
			t.Errorf("sessions outlasted the shutdown timeout: %v", late)
		}
	})

	t.Run("SIGINT", func(t *testing.T) {
		t.Parallel()
		nd := startDrainNode(t, bin, "SWITCHBOARD_DRAIN_DELAY=60s")
		cs := dialMany(t, nd.base, 3)
		nd.signal(t, os.Interrupt)
		checkGoingAway(t, nd, cs)
	})

	t.Run("second signal ends the delay", func(t *testing.T) {
		t.Parallel()
		nd := startDrainNode(t, bin, "SWITCHBOARD_DRAIN_DELAY=60s")
		cs := dialMany(t, nd.base, 3)
		nd.signal(t, syscall.SIGTERM)
		eventually(t, 10*time.Second, func() error {
			if code, _ := getErr(nd.base + "/readyz"); code != 503 {
				return fmt.Errorf("readyz = %d, want 503", code)
			}
			return nil
		})
		nd.signal(t, syscall.SIGTERM)
		checkGoingAway(t, nd, cs)
	})
}

// checkRefused checks that a WebSocket handshake is refused with 503, a
// JSON error and Retry-After, as a load balancer needs to retry another
// node.
func checkRefused(t *testing.T, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?name=late", nil)
	if err == nil {
		c.CloseNow()
		t.Fatal("a new connection was accepted while draining")
	}
	if resp == nil {
		t.Fatalf("handshake while draining: %v, want a 503 answer", err)
	}
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode != 503 || json.Unmarshal(b, &body) != nil || body.Error.Code != protocol.CodeUnavailable || body.Error.Message == "" {
		t.Errorf("handshake while draining = %d %s, want 503 with error code unavailable", resp.StatusCode, b)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
}

// checkGoingAway checks the fast stop: every session closed with 1001, and
// the process gone long before its 60s drain delay.
func checkGoingAway(t *testing.T, nd *drainNode, cs []*wsClient) {
	t.Helper()
	codes, _ := closesOf(t, cs, 20*time.Second)
	for i, ce := range codes {
		if ce.Code != protocol.CloseGoingAway || ce.Reason != "server shutting down" {
			t.Errorf("session %d closed with %d %q, want 1001 \"server shutting down\"", i, ce.Code, ce.Reason)
		}
	}
	if code := nd.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestDrainInProcess: run's context cancelled with a drainRequest drains;
// with a drain delay of 0 the session is closed with 1012 at once.
func TestDrainInProcess(t *testing.T) {
	cfg := testConfig(t, map[string]string{"SWITCHBOARD_DRAIN_DELAY": "0"})
	cfg.Addr = freeAddr(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &logs) }()
	base := "http://" + cfg.Addr
	eventually(t, 10*time.Second, func() error {
		if code, err := getErr(base + "/healthz"); code != 200 {
			return fmt.Errorf("healthz = %d, %v", code, err)
		}
		return nil
	})
	alice := dial(t, base, "?name=alice", nil)
	alice.expect("welcome")
	cancel(drainRequest{})
	ce, _, err := closeOf(alice, 20*time.Second)
	if err != nil || ce.Code != protocol.CloseRestart {
		t.Fatalf("close = %v %v, want 1012", ce, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve = %v", err)
	}
	if !bytes.Contains([]byte(logs.String()), []byte(`"message":"sessions closed"`)) {
		t.Errorf("no end-of-drain log line in:\n%s", logs.String())
	}
}

func TestDrainConfig(t *testing.T) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DrainDelay != 5*time.Second || cfg.DrainRate != 1000 {
		t.Errorf("defaults: drain-delay %v drain-rate %d, want 5s and 1000", cfg.DrainDelay, cfg.DrainRate)
	}
	env := map[string]string{"SWITCHBOARD_DRAIN_DELAY": "0", "SWITCHBOARD_DRAIN_RATE": "50"}
	cfg, err = parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DrainDelay != 0 || cfg.DrainRate != 50 {
		t.Errorf("from env: drain-delay %v drain-rate %d, want 0 and 50", cfg.DrainDelay, cfg.DrainRate)
	}

	for _, args := range [][]string{
		{"--drain-delay", "-1s"},
		{"--drain-delay", "6m"},
		{"--drain-delay", "soon"},
		{"--drain-rate", "0"},
		{"--drain-rate", "-3"},
		{"--drain-rate", "fast"},
	} {
		_, err := parseConfig(args, func(string) string { return "" }, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), args[0][2:]) {
			t.Errorf("%v: err = %v, want a usage error naming %s", args, err, args[0][2:])
		}
	}
}
