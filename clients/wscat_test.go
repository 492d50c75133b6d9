package clients_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/clients"
)

// TestWscat drives the server with wscat, the command-line client the
// README shows: bob joins with it while alice, a Go client, sends.
func TestWscat(t *testing.T) {
	t.Parallel()
	wscat, err := exec.LookPath("wscat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wscat is not on PATH: run scripts/test.sh (npm ci puts it in node_modules/.bin) or npm install -g wscat")
		}
		t.Skip("wscat is not on PATH: run scripts/test.sh (npm ci puts it in node_modules/.bin) or npm install -g wscat")
	}
	srv := newServer(t, clients.Config{}, options{})
	alice := srv.dial("alice")
	alice.send(`{"type":"join","room":"lobby"}`)
	alice.next()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// wscat sends the join, prints what it receives, one frame a line, and
	// closes 2s later. Its standard input stays open (an idle pipe) until
	// it exits, as with `sleep 3 | wscat …`, but without racing the sleep.
	cmd := exec.CommandContext(ctx, wscat, "-c", srv.url+"?name=bob", "-x", `{"type":"join","room":"lobby"}`, "-w", "2")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	alice.expect(`{"type":"member_joined","room":"lobby","user":"bob","member_count":2}`)
	alice.send(`{"type":"send","room":"lobby","data":{"text":"hi wscat"}}`)
	alice.next()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wscat: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	alice.expect(`{"type":"member_left","room":"lobby","user":"bob","member_count":1}`)

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := []string{
		`{"type":"welcome","session":"S","user":"bob","node":"test-node","protocol":1}`,
		`{"type":"joined","room":"lobby","members":["alice","bob"],"member_count":2,"seq":0,"epoch":"E"}`,
		`{"type":"message","room":"lobby","seq":1,"from":"alice","data":{"text":"hi wscat"},"ts":"TS"}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("wscat printed %d lines, want %d:\n%s\nstderr:\n%s", len(lines), len(want), &stdout, &stderr)
	}
	for i, w := range want {
		if got, w := norm(t, []byte(lines[i])), norm(t, []byte(w)); got != w {
			t.Errorf("wscat line %d:\n got %s\nwant %s", i+1, got, w)
		}
	}
}
