package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// startLogged is startRun with the server's JSON log in logs.
func startLogged(t *testing.T, env map[string]string, logs *syncBuffer) (string, func() error) {
	t.Helper()
	addr := freeAddr(t)
	getenv := func(k string) string { return env[k] }
	return startServer(t, addr, func(ctx context.Context) error {
		return run(ctx, []string{"--addr", addr, "--log-format", "json"}, getenv, logs, logs)
	})
}

// welcomeNode returns the node id the server at base names in welcome.
func welcomeNode(t *testing.T, base string) string {
	t.Helper()
	c := dial(t, base, "?name=alice", nil)
	defer c.c.CloseNow()
	node, _ := c.expect("welcome")["node"].(string)
	return node
}

// TestDefaultNodeID: without --node-id a node is named after its host, the
// same on every start.
func TestDefaultNodeID(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, nil)
	if got, want := welcomeNode(t, base), hostname(); got != want {
		t.Errorf("default node id %q, want the hostname %q", got, want)
	}
}

// TestDefaultNodeIDWithRedis: with Redis, a second process on the host
// with the default id does not share the first's: it is hostname-PORT, and
// says so. Once the first has stopped, the hostname is free again. The
// startup line names the Redis URL without its password.
func TestDefaultNodeIDWithRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	if err := srv.Client(t).Do(t.Context(), "ACL", "SETUSER", "alice", "on", ">s3cret", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SWITCHBOARD_REDIS_URL": "redis://alice:s3cret@" + srv.Addr() + "/0"}
	host := hostname()

	var logsA syncBuffer
	baseA, stopA := startLogged(t, env, &logsA)
	if got := welcomeNode(t, baseA); got != host {
		t.Errorf("first node's id %q, want the hostname %q", got, host)
	}
	want := "to chat (redis://alice@" + srv.Addr() + "/0)"
	if !strings.Contains(logsA.String(), want) || strings.Contains(logsA.String(), "s3cret") {
		t.Errorf("log does not say %q, or shows the password:\n%s", want, logsA.String())
	}

	var logsB syncBuffer
	baseB, _ := startLogged(t, env, &logsB)
	_, portB, _ := net.SplitHostPort(strings.TrimPrefix(baseB, "http://"))
	if got, want := welcomeNode(t, baseB), host+"-"+portB; got != want {
		t.Errorf("second node's id %q, want %q", got, want)
	}
	if !strings.Contains(logsB.String(), "another live node has node id "+host) {
		t.Errorf("second node does not say why its id differs:\n%s", logsB.String())
	}

	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	baseC, _ := startLogged(t, env, &syncBuffer{})
	if got := welcomeNode(t, baseC); got != host {
		t.Errorf("after the first node stopped, a new node's id is %q, want the hostname %q", got, host)
	}
}
