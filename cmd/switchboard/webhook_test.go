package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
	"github.com/switchboard-chat/switchboard/hub/webhook"
)

const hookSecret = "webhook-secret-of-at-least-32-bytes!"

// hookReceiver is a real webhook receiver: it verifies each POST's
// signature and records the events, answering 200, or holding every
// request until the test ends when blocking.
type hookReceiver struct {
	t        *testing.T
	srv      *httptest.Server
	blocking bool
	quit     chan struct{}

	mu     sync.Mutex
	events []map[string]any // each POST's body, in arrival order
	seen   map[string]int   // POSTs by event id
	bad    []string
}

func newHookReceiver(t *testing.T, blocking bool) *hookReceiver {
	r := &hookReceiver{t: t, blocking: blocking, quit: make(chan struct{}), seen: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() { close(r.quit) })
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.blocking {
		select {
		case <-req.Context().Done():
		case <-r.quit:
		}
		return
	}
	body, _ := io.ReadAll(req.Body)
	var m map[string]any
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := webhook.Verify([]byte(hookSecret), req.Header.Get(webhook.HeaderSignature), body, time.Now(), 0); err != nil {
		r.bad = append(r.bad, err.Error())
	}
	if err := json.Unmarshal(body, &m); err != nil || m["id"] != req.Header.Get(webhook.HeaderEventID) {
		r.bad = append(r.bad, "bad body "+string(body))
	}
	r.seen[req.Header.Get(webhook.HeaderEventID)]++
	r.events = append(r.events, m)
}

// ofType returns the events of type typ received so far.
func (r *hookReceiver) ofType(typ string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, e := range r.events {
		if e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

// wait waits until the receiver has counts[typ] events of each type.
func (r *hookReceiver) wait(counts map[string]int) {
	r.t.Helper()
	eventually(r.t, 20*time.Second, func() error {
		for typ, n := range counts {
			if got := len(r.ofType(typ)); got != n {
				return fmt.Errorf("%d %s events, want %d", got, typ, n)
			}
		}
		return nil
	})
}

// check fails on a bad signature or body, or an event id seen twice.
func (r *hookReceiver) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		r.t.Error(b)
	}
	for id, n := range r.seen {
		if n != 1 {
			r.t.Errorf("event %s received %d times", id, n)
		}
	}
}

func hookEnv(url string) map[string]string {
	return map[string]string{
		"SWITCHBOARD_WEBHOOK_URL":    url,
		"SWITCHBOARD_WEBHOOK_SECRET": hookSecret,
		"SWITCHBOARD_NODE_ID":        "n1",
	}
}

func data(e map[string]any) map[string]any {
	d, _ := e["data"].(map[string]any)
	return d
}

// TestWebhookEvents: what real clients do reaches a real receiver as
// signed events with the documented contents.
func TestWebhookEvents(t *testing.T) {
	r := newHookReceiver(t, false)
	env := hookEnv(r.srv.URL + "/hook")
	env["SWITCHBOARD_API_KEY"] = testKey
	base, _ := startRun(t, env)

	alice := dial(t, base, "?name=alice", nil)
	aliceSession := alice.expect("welcome")["session"]
	bob := dial(t, base, "?name=bob", nil)
	bobSession := bob.expect("welcome")["session"]
	alice.send(`{"type":"join","room":"lobby"}`)
	alice.expect("joined")
	bob.send(`{"type":"join","room":"lobby"}`)
	epoch := bob.expect("joined")["epoch"]
	alice.send(`{"type":"send","room":"lobby","data":{"text":"hi"},"id":"m1"}`)
	msg := bob.expect("message")
	alice.send(`{"type":"edit","room":"lobby","seq":1,"data":{"text":"hi!"},"id":"e1"}`)
	bob.expect("message_edited")
	alice.send(`{"type":"delete","room":"lobby","seq":1,"id":"d1"}`)
	bob.expect("message_deleted")
	bob.send(`{"type":"leave","room":"lobby"}`)
	bob.expect("left")
	bob.c.Close(websocket.StatusNormalClosure, "")
	if code, body := api(t, "POST", base+"/api/rooms/lobby/mutes", testKey, `{"user":"bob","duration":"10m"}`); code/100 != 2 {
		t.Fatalf("mute: %d %s", code, body)
	}

	r.wait(map[string]int{"user.connected": 2, "member.joined": 2, "message.sent": 1, "message.edited": 1, "message.deleted": 1, "member.left": 1, "user.disconnected": 1, "moderation.muted": 1})
	r.check()
	for _, e := range r.ofType("") {
		t.Errorf("event without type: %v", e)
	}
	r.mu.Lock()
	for _, e := range r.events {
		if e["node"] != "n1" || len(e["id"].(string)) != 32 {
			t.Errorf("event %v: want node n1 and a 32-digit id", e)
		}
		if ts, _ := e["ts"].(float64); time.Since(time.UnixMilli(int64(ts))) > time.Minute {
			t.Errorf("event %v: ts is not now", e)
		}
	}
	r.mu.Unlock()

	sent := data(r.ofType("message.sent")[0])
	text, _ := sent["data"].(map[string]any)
	if sent["room"] != "lobby" || sent["seq"] != 1.0 || sent["epoch"] != epoch || sent["from"] != "alice" || text["text"] != "hi" {
		t.Errorf("message.sent data = %v (the message was %v)", sent, msg)
	}
	edited := data(r.ofType("message.edited")[0])
	if text, _ := edited["data"].(map[string]any); edited["seq"] != 2.0 || edited["target"] != 1.0 || edited["from"] != "alice" || text["text"] != "hi!" {
		t.Errorf("message.edited data = %v", edited)
	}
	if deleted := data(r.ofType("message.deleted")[0]); deleted["seq"] != 3.0 || deleted["target"] != 1.0 || deleted["from"] != "alice" || deleted["data"] != nil {
		t.Errorf("message.deleted data = %v", deleted)
	}
	if d := data(r.ofType("moderation.muted")[0]); d["room"] != "lobby" || d["user"] != "bob" || d["by"] != "system" || d["until"] == nil {
		t.Errorf("moderation.muted data = %v", d)
	}
	joined := map[string]bool{}
	for _, e := range r.ofType("member.joined") {
		d := data(e)
		joined[fmt.Sprint(d["room"], "/", d["user"])] = true
	}
	if !joined["lobby/alice"] || !joined["lobby/bob"] {
		t.Errorf("member.joined for %v, want lobby/alice and lobby/bob", joined)
	}
	if d := data(r.ofType("member.left")[0]); d["room"] != "lobby" || d["user"] != "bob" {
		t.Errorf("member.left data = %v", d)
	}
	sessions := map[string]any{}
	for _, e := range r.ofType("user.connected") {
		sessions[data(e)["user"].(string)] = data(e)["session"]
	}
	if sessions["alice"] != aliceSession || sessions["bob"] != bobSession {
		t.Errorf("user.connected sessions %v, want alice %v and bob %v", sessions, aliceSession, bobSession)
	}
	if d := data(r.ofType("user.disconnected")[0]); d["user"] != "bob" || d["session"] != bobSession {
		t.Errorf("user.disconnected data = %v", d)
	}

	eventually(t, 10*time.Second, func() error {
		f := scrape(t, base+"/metrics", testKey)
		delivered, _ := f.lookup("switchboard_webhook_events_total", "outcome", "delivered")
		backlog, ok := f.lookup("switchboard_webhook_backlog")
		if delivered != 10 || backlog != 0 || !ok {
			return fmt.Errorf("delivered %v, backlog %v; want 10 and 0", delivered, backlog)
		}
		return nil
	})
}

// TestWebhookReceiverDownChatWorks: with the receiver hanging or refusing
// connections, chat goes on: joins, messages and leaves are answered and
// delivered as usual, while the events wait in the backlog.
func TestWebhookReceiverDownChatWorks(t *testing.T) {
	for _, mode := range []string{"hanging", "refusing"} {
		t.Run(mode, func(t *testing.T) {
			url := "http://" + freeAddr(t) + "/hook" // nothing listens there
			if mode == "hanging" {
				url = newHookReceiver(t, true).srv.URL + "/hook"
			}
			env := hookEnv(url)
			env["SWITCHBOARD_WEBHOOK_FLUSH_TIMEOUT"] = "200ms" // the stop does not wait 5s for the receiver
			base, _ := startRun(t, env)
			alice := dial(t, base, "?name=alice", nil)
			alice.expect("welcome")
			bob := dial(t, base, "?name=bob", nil)
			bob.expect("welcome")
			for round := range 3 {
				alice.send(`{"type":"join","room":"lobby"}`)
				alice.expect("joined")
				bob.send(`{"type":"join","room":"lobby"}`)
				bob.expect("joined")
				for i := range 5 {
					alice.send(fmt.Sprintf(`{"type":"send","room":"lobby","data":%d,"id":"r%d-%d"}`, i, round, i))
					if m := bob.expect("message"); m["data"] != float64(i) {
						t.Fatalf("bob got %v, want data %d", m, i)
					}
				}
				bob.send(`{"type":"leave","room":"lobby"}`)
				bob.expect("left")
				alice.send(`{"type":"leave","room":"lobby"}`)
				alice.expect("left")
			}
			f := scrape(t, base+"/metrics", "")
			if backlog, _ := f.lookup("switchboard_webhook_backlog"); backlog < 1 {
				t.Errorf("webhook backlog %v, want the undelivered events", backlog)
			}
			if delivered, _ := f.lookup("switchboard_webhook_events_total", "outcome", "delivered"); delivered != 0 {
				t.Errorf("%v delivered, want 0", delivered)
			}
		})
	}
}

// TestWebhookClusterOnce: two nodes on one Redis; every event is sent
// once, by one node, whichever node it happened on.
func TestWebhookClusterOnce(t *testing.T) {
	redis := redistest.Start(t)
	r := newHookReceiver(t, false)
	env := hookEnv(r.srv.URL + "/hook")
	delete(env, "SWITCHBOARD_NODE_ID")
	nodes := startCluster(t, redis.URL(), 2, env)
	alice := dial(t, nodes[0], "?name=alice", nil)
	alice.expect("welcome")
	bob := dial(t, nodes[1], "?name=bob", nil)
	bob.expect("welcome")
	alice.send(`{"type":"join","room":"lobby"}`)
	alice.expect("joined")
	bob.send(`{"type":"join","room":"lobby"}`)
	bob.expect("joined")
	alice.send(`{"type":"send","room":"lobby","data":"from alice","id":"a"}`)
	bob.expect("message")
	bob.send(`{"type":"send","room":"lobby","data":"from bob","id":"b"}`)
	alice.expect("message")
	bob.send(`{"type":"leave","room":"lobby"}`)
	bob.expect("left")

	r.wait(map[string]int{"user.connected": 2, "member.joined": 2, "message.sent": 2, "member.left": 1})
	r.check()
	for _, e := range r.ofType("message.sent") {
		want := map[string]string{"alice": "node-1", "bob": "node-2"}[data(e)["from"].(string)]
		if e["node"] != want {
			t.Errorf("message.sent %v: want node %s, where it was sent", e, want)
		}
	}
}

// TestWebhookConfigErrors: bad webhook flags are usage errors that name
// the problem.
func TestWebhookConfigErrors(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SWITCHBOARD_WEBHOOK_URL": "http://127.0.0.1:9/"}, "secret"},
		{map[string]string{"SWITCHBOARD_WEBHOOK_URL": "http://127.0.0.1:9/", "SWITCHBOARD_WEBHOOK_SECRET": "short"}, "secret"},
		{map[string]string{"SWITCHBOARD_WEBHOOK_URL": "ftp://example.com/", "SWITCHBOARD_WEBHOOK_SECRET": hookSecret}, "http"},
		{map[string]string{"SWITCHBOARD_WEBHOOK_URL": "http://127.0.0.1:9/", "SWITCHBOARD_WEBHOOK_SECRET": hookSecret,
			"SWITCHBOARD_WEBHOOK_EVENTS": "message.sent,message.snet"}, "message.snet"},
		{map[string]string{"SWITCHBOARD_WEBHOOK_SECRET": hookSecret}, "webhook-url"},
	} {
		err := run(context.Background(), nil, func(k string) string { return c.env[k] }, io.Discard, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: run = %v, want a usage error naming %q", c.env, err, c.want)
		}
	}
	cfg := testConfig(t, map[string]string{"SWITCHBOARD_WEBHOOK_URL": "https://example.com/hook", "SWITCHBOARD_WEBHOOK_SECRET": hookSecret,
		"SWITCHBOARD_WEBHOOK_EVENTS": "message.sent, member.joined"})
	if strings.Join(cfg.WebhookEvents, "|") != "message.sent|member.joined" {
		t.Errorf("webhook events = %q", cfg.WebhookEvents)
	}
}
