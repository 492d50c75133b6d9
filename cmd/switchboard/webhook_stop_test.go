package main

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// envList returns env as KEY=value strings, followed by more.
func envList(env map[string]string, more ...string) []string {
	out := make([]string, 0, len(env)+len(more))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return append(out, more...)
}

// TestWebhookStopDelivers runs the binary without Redis and stops it with
// SIGTERM (a drain) or SIGINT: before it exits, it delivers the
// member.left and user.disconnected events of the session its own stop
// closes.
func TestWebhookStopDelivers(t *testing.T) {
	bin := buildSwitchboard(t)
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			r := newHookReceiver(t, false)
			nd := startDrainNode(t, bin, envList(hookEnv(r.srv.URL+"/hook"), "SWITCHBOARD_DRAIN_DELAY=100ms")...)
			session := joinAlice(t, nd)
			r.wait(map[string]int{"user.connected": 1, "member.joined": 1})
			stopNode(t, nd, sig)
			// No waiting from here: the node delivered them before it exited.
			left, gone := r.ofType("member.left"), r.ofType("user.disconnected")
			if len(left) != 1 || data(left[0])["room"] != "lobby" || data(left[0])["user"] != "alice" {
				t.Errorf("member.left events %v, want one for alice in lobby", left)
			}
			if len(gone) != 1 || data(gone[0])["user"] != "alice" || data(gone[0])["session"] != session {
				t.Errorf("user.disconnected events %v, want one for alice's session %v", gone, session)
			}
			r.check()
			if lost := nd.logLines(t, "webhook events lost at shutdown"); len(lost) > 0 {
				t.Errorf("events lost: %v", lost)
			}
		})
	}
}

// TestWebhookStopFlushDeadline: without Redis, a node whose receiver does
// not answer stops once --webhook-flush-timeout has passed, counting as
// dropped every event it did not deliver, those of its own stop included,
// in one log line.
func TestWebhookStopFlushDeadline(t *testing.T) {
	bin := buildSwitchboard(t)
	r := newHookReceiver(t, true)
	nd := startDrainNode(t, bin, envList(hookEnv(r.srv.URL+"/hook"),
		"SWITCHBOARD_DRAIN_DELAY=0", "SWITCHBOARD_WEBHOOK_FLUSH_TIMEOUT=500ms")...)
	joinAlice(t, nd)
	stopNode(t, nd, syscall.SIGTERM)
	// user.connected, member.joined, then the stop's member.left and
	// user.disconnected.
	lost := nd.logLine(t, "webhook events lost at shutdown")
	if lost["dropped"] != 4.0 || lost["level"] != "warn" || lost["reason"] == nil {
		t.Errorf("log line %v, want a warning that 4 events were dropped, and why", lost)
	}
	if flushed, _ := lost["flushed_ms"].(float64); flushed < 500 {
		t.Errorf("flushed for %vms, want the 500ms of --webhook-flush-timeout", flushed)
	}
	if late := nd.logLines(t, "webhook events dropped"); len(late) > 0 {
		t.Errorf("events dropped otherwise (enqueued after the dispatcher closed?): %v", late)
	}
}

// TestWebhookStopRedisLeavesStream: with Redis, a stopping node does not
// wait for its receiver, however long --webhook-flush-timeout, yet adds the
// events of its own stop to the stream, where the other nodes find them.
func TestWebhookStopRedisLeavesStream(t *testing.T) {
	bin := buildSwitchboard(t)
	redis := redistest.Start(t)
	r := newHookReceiver(t, true)
	// Flushing would keep the node until the shutdown timeout, past the
	// 30s it is given to exit.
	nd := startDrainNode(t, bin, envList(hookEnv(r.srv.URL+"/hook"), "SWITCHBOARD_REDIS_URL="+redis.URL(),
		"SWITCHBOARD_DRAIN_DELAY=100ms", "SWITCHBOARD_WEBHOOK_FLUSH_TIMEOUT=10m", "SWITCHBOARD_SHUTDOWN_TIMEOUT=2m")...)
	joinAlice(t, nd)
	stopNode(t, nd, syscall.SIGTERM)
	msgs, err := redis.Client(t).XRange(context.Background(), "sb:webhooks", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, m := range msgs {
		typ, _ := m.Values["type"].(string)
		types = append(types, typ)
	}
	slices.Sort(types)
	if want := []string{"member.joined", "member.left", "user.connected", "user.disconnected"}; !slices.Equal(types, want) {
		t.Errorf("stream holds %q, want %q", types, want)
	}
	if lost := nd.logLines(t, "webhook events lost at shutdown"); len(lost) > 0 {
		t.Errorf("events counted lost with Redis: %v", lost)
	}
}

// TestWebhookFlushConfig: --webhook-flush-timeout defaults to 5s, 0 turns
// the flush off, and a negative or malformed value is a usage error.
func TestWebhookFlushConfig(t *testing.T) {
	env := map[string]string{"SWITCHBOARD_WEBHOOK_URL": "https://example.com/hook", "SWITCHBOARD_WEBHOOK_SECRET": hookSecret}
	cfg := testConfig(t, env)
	if cfg.WebhookFlush != 5*time.Second || cfg.webhookConfig().FlushTimeout != 5*time.Second {
		t.Errorf("default flush %v (dispatcher's %v), want 5s", cfg.WebhookFlush, cfg.webhookConfig().FlushTimeout)
	}
	env["SWITCHBOARD_WEBHOOK_FLUSH_TIMEOUT"] = "0"
	if cfg := testConfig(t, env); cfg.webhookConfig().FlushTimeout >= 0 {
		t.Errorf("flush 0: the dispatcher's FlushTimeout is %v, want negative (no flush)", cfg.webhookConfig().FlushTimeout)
	}
	for _, v := range []string{"-1s", "soon", "5"} {
		_, err := parseConfig([]string{"--webhook-flush-timeout", v}, func(string) string { return "" }, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--webhook-flush-timeout") {
			t.Errorf("%q: err = %v, want a usage error naming --webhook-flush-timeout", v, err)
		}
	}
}

// joinAlice connects alice to nd, joins her to lobby and returns her
// session id.
func joinAlice(t *testing.T, nd *drainNode) any {
	t.Helper()
	alice := dial(t, nd.base, "?name=alice", nil)
	session := alice.expect("welcome")["session"]
	alice.join("lobby")
	return session
}

// stopNode sends sig to nd and checks that it exits 0 within 30s.
func stopNode(t *testing.T, nd *drainNode, sig os.Signal) {
	t.Helper()
	nd.signal(t, sig)
	if code := nd.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
}
