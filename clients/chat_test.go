package clients_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

func TestTwoUsers(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	alice := srv.dial("alice")
	if got, want := norm(t, mustJSON(t, alice.welcome)), norm(t, []byte(`{"type":"welcome","session":"S","user":"alice","node":"test-node","protocol":1}`)); got != want {
		t.Errorf("welcome %s, want %s", got, want)
	}
	bob := srv.dial("bob")

	alice.send(`{"type":"join","room":"lobby","id":"j1"}`)
	alice.expect(`{"type":"joined","id":"j1","room":"lobby","members":["alice"],"member_count":1,"seq":0,"epoch":"E"}`)
	bob.send(`{"type":"join","room":"lobby","id":2}`)
	bob.expect(`{"type":"joined","id":2,"room":"lobby","members":["alice","bob"],"member_count":2,"seq":0,"epoch":"E"}`)
	alice.expect(`{"type":"member_joined","room":"lobby","user":"bob","member_count":2}`)

	// Every member gets the message, the sender too, who also gets an ack.
	alice.send(`{"type":"send","room":"lobby","data":{"text": "hi bob"},"id":"m1"}`)
	alice.expectAnyOrder(
		`{"type":"message","room":"lobby","seq":1,"from":"alice","data":{"text":"hi bob"},"ts":"TS"}`,
		`{"type":"ack","id":"m1","seq":1,"epoch":"E"}`,
	)
	bob.expect(`{"type":"message","room":"lobby","seq":1,"from":"alice","data":{"text":"hi bob"},"ts":"TS"}`)
	bob.send(`{"type":"send","room":"lobby","data":"hi alice"}`) // no id: no ack
	bob.expect(`{"type":"message","room":"lobby","seq":2,"from":"bob","data":"hi alice","ts":"TS"}`)
	alice.expect(`{"type":"message","room":"lobby","seq":2,"from":"bob","data":"hi alice","ts":"TS"}`)
	bob.quiet()

	// Typing reaches the other user only.
	bob.send(`{"type":"typing","room":"lobby"}`)
	alice.expect(`{"type":"typing","room":"lobby","user":"bob"}`)
	bob.quiet()

	// A DM reaches the recipient, and the sender as an echo.
	alice.send(`{"type":"dm","to":"bob","data":{"secret":1},"id":"d1"}`)
	alice.expectAnyOrder(
		`{"type":"dm","from":"alice","to":"bob","data":{"secret":1},"ts":"TS"}`,
		`{"type":"ack","id":"d1"}`,
	)
	bob.expect(`{"type":"dm","from":"alice","to":"bob","data":{"secret":1},"ts":"TS"}`)

	bob.send(`{"type":"presence","room":"lobby","id":"p"}`)
	bob.expect(`{"type":"presence","id":"p","room":"lobby","members":["alice","bob"],"member_count":2}`)
	bob.send(`{"type":"history","room":"lobby","limit":10,"id":"h"}`)
	bob.expect(`{"type":"history","id":"h","room":"lobby","epoch":"E","messages":[
		{"type":"message","room":"lobby","seq":1,"from":"alice","data":{"text":"hi bob"},"ts":"TS"},
		{"type":"message","room":"lobby","seq":2,"from":"bob","data":"hi alice","ts":"TS"}]}`)
	bob.send(`{"type":"history","room":"lobby","limit":1,"before":2,"id":"h2"}`)
	bob.expect(`{"type":"history","id":"h2","room":"lobby","epoch":"E","messages":[
		{"type":"message","room":"lobby","seq":1,"from":"alice","data":{"text":"hi bob"},"ts":"TS"}]}`)
	bob.send(`{"type":"ping","id":99}`)
	bob.expect(`{"type":"pong","id":99}`)

	bob.send(`{"type":"leave","room":"lobby","id":"l"}`)
	bob.expect(`{"type":"left","id":"l","room":"lobby"}`)
	alice.expect(`{"type":"member_left","room":"lobby","user":"bob","member_count":1}`)
	alice.send(`{"type":"send","room":"lobby","data":1}`)
	alice.expect(`{"type":"message","room":"lobby","seq":3,"from":"alice","data":1,"ts":"TS"}`)
	bob.quiet()

	// The epoch is the room's, the same in every frame.
	alice.send(`{"type":"join","room":"lobby","id":"again"}`)
	joined := decode(t, alice.next())
	bob.send(`{"type":"history","room":"lobby","limit":1}`)
	history := decode(t, bob.next())
	if joined["epoch"] != history["epoch"] || joined["epoch"] == "" {
		t.Errorf("joined epoch %v, history epoch %v", joined["epoch"], history["epoch"])
	}

	// A disconnect is announced like a leave.
	bob.send(`{"type":"join","room":"lobby"}`)
	bob.next()
	alice.expect(`{"type":"member_joined","room":"lobby","user":"bob","member_count":2}`)
	bob.conn.Close(websocket.StatusNormalClosure, "")
	alice.expect(`{"type":"member_left","room":"lobby","user":"bob","member_count":1}`)
	alice.quiet()
}

func TestThreeUsers(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	alice, bob, carol := srv.dial("alice"), srv.dial("bob"), srv.dial("carol")
	bob2 := srv.dial("bob") // bob's second tab

	alice.send(`{"type":"join","room":"r"}`)
	alice.expect(`{"type":"joined","room":"r","members":["alice"],"member_count":1,"seq":0,"epoch":"E"}`)
	bob.send(`{"type":"join","room":"r"}`)
	bob.expect(`{"type":"joined","room":"r","members":["alice","bob"],"member_count":2,"seq":0,"epoch":"E"}`)
	alice.expect(`{"type":"member_joined","room":"r","user":"bob","member_count":2}`)
	carol.send(`{"type":"join","room":"r"}`)
	carol.expect(`{"type":"joined","room":"r","members":["alice","bob","carol"],"member_count":3,"seq":0,"epoch":"E"}`)
	alice.expect(`{"type":"member_joined","room":"r","user":"carol","member_count":3}`)
	bob.expect(`{"type":"member_joined","room":"r","user":"carol","member_count":3}`)
	// bob's second tab is not news to anyone.
	bob2.send(`{"type":"join","room":"r"}`)
	bob2.expect(`{"type":"joined","room":"r","members":["alice","bob","carol"],"member_count":3,"seq":0,"epoch":"E"}`)

	for i, c := range []*client{alice, bob, carol} {
		c.send(`{"type":"send","room":"r","data":"from ` + c.name + `"}`)
		want := `{"type":"message","room":"r","seq":` + string(rune('1'+i)) + `,"from":"` + c.name + `","data":"from ` + c.name + `","ts":"TS"}`
		for _, to := range []*client{alice, bob, carol, bob2} {
			to.expect(want)
		}
	}

	// Typing skips all of the typer's tabs.
	bob.send(`{"type":"typing","room":"r"}`)
	alice.expect(`{"type":"typing","room":"r","user":"bob"}`)
	carol.expect(`{"type":"typing","room":"r","user":"bob"}`)
	bob.quiet()
	bob2.quiet()

	// A DM goes to every tab of the recipient and of the sender, no one else.
	carol.send(`{"type":"dm","to":"bob","data":"psst"}`)
	dm := `{"type":"dm","from":"carol","to":"bob","data":"psst","ts":"TS"}`
	carol.expect(dm)
	bob.expect(dm)
	bob2.expect(dm)
	alice.quiet()

	// member_left only when bob's last tab goes.
	bob.conn.Close(websocket.StatusNormalClosure, "")
	bob2.send(`{"type":"presence","room":"r"}`)
	bob2.expect(`{"type":"presence","room":"r","members":["alice","bob","carol"],"member_count":3}`)
	alice.quiet()
	bob2.send(`{"type":"leave","room":"r"}`)
	bob2.expect(`{"type":"left","room":"r"}`)
	alice.expect(`{"type":"member_left","room":"r","user":"bob","member_count":2}`)
	carol.expect(`{"type":"member_left","room":"r","user":"bob","member_count":2}`)
	for _, c := range []*client{alice, bob2, carol} {
		c.quiet()
	}
}

// TestJoinRecovery reconnects a client with since and epoch: the messages it
// missed come after joined, before any live one, once each.
func TestJoinRecovery(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{memory: memorybroker.Config{HistorySize: 5}})
	alice, bob := srv.dial("alice"), srv.dial("bob")
	alice.send(`{"type":"join","room":"r"}`)
	joined := decode(t, alice.next())
	epoch := joined["epoch"].(string)
	bob.send(`{"type":"join","room":"r"}`)
	bob.next()
	alice.next() // member_joined
	for range 4 {
		alice.send(`{"type":"send","room":"r","data":"x"}`)
		alice.next()
		bob.next()
	}
	bob.conn.Close(websocket.StatusNormalClosure, "")
	alice.expect(`{"type":"member_left","room":"r","user":"bob","member_count":1}`)
	for range 2 {
		alice.send(`{"type":"send","room":"r","data":"y"}`)
		alice.next()
	}

	bob = srv.dial("bob")
	bob.send(`{"type":"join","room":"r","since":4,"epoch":"` + epoch + `","id":1}`)
	bob.expect(
		`{"type":"joined","id":1,"room":"r","members":["alice","bob"],"member_count":2,"seq":6,"epoch":"E","recovered":true,"unread":5,"unread_capped":true}`,
		`{"type":"message","room":"r","seq":5,"from":"alice","data":"y","ts":"TS"}`,
		`{"type":"message","room":"r","seq":6,"from":"alice","data":"y","ts":"TS"}`,
	)
	bob.quiet()

	// Too far back for a ring of 5 (2-6), or another epoch: not recovered.
	carol := srv.dial("carol")
	carol.send(`{"type":"join","room":"r","since":0,"epoch":"` + epoch + `"}`)
	carol.expect(`{"type":"joined","room":"r","members":["alice","bob","carol"],"member_count":3,"seq":6,"epoch":"E","recovered":false,"unread":5,"unread_capped":true}`)
	dave := srv.dial("dave")
	dave.send(`{"type":"join","room":"r","since":6,"epoch":"nope"}`)
	dave.expect(`{"type":"joined","room":"r","members":["alice","bob","carol","dave"],"member_count":4,"seq":6,"epoch":"E","recovered":false,"unread":5,"unread_capped":true}`)
	carol.expect(`{"type":"member_joined","room":"r","user":"dave","member_count":4}`)
	carol.quiet()
	dave.quiet()
}

func TestGuestName(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	c := srv.dial("")
	user, _ := c.welcome["user"].(string)
	if !regexp.MustCompile(`^guest-[0-9a-f]{4}$`).MatchString(user) {
		t.Errorf("user %q, want guest-xxxx", user)
	}
	if got, want := norm(t, mustJSON(t, c.welcome)), norm(t, []byte(`{"type":"welcome","session":"S","user":"`+user+`","node":"test-node","protocol":1}`)); got != want {
		t.Errorf("welcome %s, want %s", got, want)
	}
}

func TestInvalidName(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	for _, name := range []string{"a%20b", "caf%C3%A9", "123456789012345678901234567890123", "a/b", "%00"} {
		resp, err := srv.ts.Client().Get(srv.ts.URL + "/ws?name=" + name)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("name %s: status %d, want 400", name, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("name %s: Content-Type %q", name, got)
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != protocol.CodeBadRequest || e.Error.Message == "" {
			t.Errorf("name %s: body %s, want a bad_request error", name, body)
		}
	}
	// A WebSocket client is refused the same way, before the upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, srv.url+"?name=no+spaces", &websocket.DialOptions{HTTPClient: srv.ts.Client()})
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("dial: err %v, resp %v; want a 400", err, resp)
	}
	srv.ts.Client().CloseIdleConnections()
}

// TestHubClose checks shutdown: every client gets 1001, and a client that
// connects after it is refused with 1001.
func TestHubClose(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	var cs []*client
	for _, name := range []string{"alice", "bob", "bob"} {
		c := srv.dial(name)
		c.send(`{"type":"join","room":"r"}`)
		c.sync()
		cs = append(cs, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.hub.Close(ctx, protocol.CloseGoingAway, "server shutting down") }()
	for _, c := range cs {
		if code, _ := c.closeStatus(); code != websocket.StatusGoingAway {
			t.Errorf("%s: close status %v, want 1001", c.name, code)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("hub close: %v", err)
	}
	if got := srv.hub.Stats().Sessions; got != 0 {
		t.Errorf("%d sessions after close", got)
	}
	late := srv.dialWith("late", nil)
	if code, frames := late.closeStatus(); code != websocket.StatusGoingAway || len(frames) != 0 {
		t.Errorf("late client: close status %v after %d frames, want 1001 and none", code, len(frames))
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
