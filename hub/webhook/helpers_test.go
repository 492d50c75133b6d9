package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/webhook"
)

// TestMain fails the package when goroutines started by its tests outlive
// them.
func TestMain(m *testing.M) { os.Exit(hubtest.RunWithLeakCheck(m, 10*time.Second)) }

var secret = []byte("0123456789abcdef0123456789abcdef")

// hang, as an answer, makes the receiver answer nothing until the
// request's context ends (the sender's timeout).
const hang = 0

// receiver is a real HTTP webhook receiver. It checks every request's
// signature and freshness, and answers what answer says for the n-th
// request (from 1) for an event id.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	answer func(path, id string, n int) int
	quit   chan struct{}

	mu    sync.Mutex
	tries map[string]int      // requests by event id
	paths map[string][]string // paths requested, by event id
	ok    map[string][]got    // requests answered 2xx, by event id
	bad   []string            // problems found
}

// got is one request answered 2xx.
type got struct {
	path string
	body map[string]any
}

func newReceiver(t testing.TB, answer func(path, id string, n int) int) *receiver {
	r := &receiver{t: t, answer: answer, quit: make(chan struct{}),
		tries: map[string]int{}, paths: map[string][]string{}, ok: map[string][]got{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() { close(r.quit) }) // runs first: releases hung requests
	return r
}

func (r *receiver) url(path string) string { return r.srv.URL + path }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var m map[string]any
	id := req.Header.Get(webhook.HeaderEventID)
	r.mu.Lock()
	// A fresh timestamp on every attempt: within 30s of now, not the
	// 5 minutes a receiver allows.
	if err := webhook.Verify(secret, req.Header.Get(webhook.HeaderSignature), body, time.Now(), 30*time.Second); err != nil {
		r.bad = append(r.bad, "signature: "+err.Error())
	}
	if err := json.Unmarshal(body, &m); err != nil || m["id"] != id || m["type"] != req.Header.Get(webhook.HeaderEventType) {
		r.bad = append(r.bad, "body or headers: "+string(body))
	}
	r.tries[id]++
	n := r.tries[id]
	r.paths[id] = append(r.paths[id], req.URL.Path)
	r.mu.Unlock()

	status := r.answer(req.URL.Path, id, n)
	if status == hang {
		select {
		case <-req.Context().Done():
		case <-r.quit:
		}
		return
	}
	if status/100 == 2 {
		r.mu.Lock()
		r.ok[id] = append(r.ok[id], got{path: req.URL.Path, body: m})
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

// delivered returns how many event ids were answered 2xx.
func (r *receiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ok)
}

// requested returns how many event ids were requested at all.
func (r *receiver) requested() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tries)
}

// check fails the test on any problem the receiver found.
func (r *receiver) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		r.t.Error(b)
	}
}

// waitFor waits until cond holds, failing the test after within.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testConfig is a Config for url with fast retries. Its POST timeout is
// long enough for a loaded machine: an answer that arrives after it makes
// the event sent again (at least once), which tests that count 2xx answers
// per event must not see. Its flush is short: a test whose receiver hangs
// does not wait the default 5s for Close; the tests of the flush set their
// own.
func testConfig(url string) webhook.Config {
	return webhook.Config{
		URL: url, Secret: secret, Node: "node-1",
		Timeout: 5 * time.Second, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		FlushTimeout: 500 * time.Millisecond,
	}
}

// start returns a started Dispatcher, closed when the test ends.
func start(t testing.TB, cfg webhook.Config, b webhook.Backlog) *webhook.Dispatcher {
	t.Helper()
	d, err := webhook.New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(func() { closeDispatcher(t, d) })
	return d
}

// enqueue queues n message.sent events, seqs 1 to n.
func enqueue(d *webhook.Dispatcher, n int) {
	for i := range n {
		d.Enqueue(message(uint64(i + 1)))
	}
}

// refusingURL returns a URL whose port refuses connections: a receiver
// that is down.
func refusingURL(t testing.TB) string {
	t.Helper()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	return down.URL + "/hook"
}

func closeDispatcher(t testing.TB, d *webhook.Dispatcher) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Error(err)
	}
}

// message is a message.sent event with seq.
func message(seq uint64) hub.WebhookEvent {
	return hub.WebhookEvent{Type: hub.WebhookMessageSent, Time: time.Now(),
		Data: hub.WebhookMessage{Room: "lobby", Seq: seq, Epoch: "e1", From: "alice", Data: json.RawMessage(`{"text":"hi"}`)}}
}

// seqs returns, for each seq of the message events answered 2xx, the ids
// that carried it.
func (r *receiver) seqs() map[uint64][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[uint64][]string{}
	for id, gs := range r.ok {
		data, _ := gs[0].body["data"].(map[string]any)
		seq, _ := data["seq"].(float64)
		out[uint64(seq)] = append(out[uint64(seq)], id)
	}
	return out
}
