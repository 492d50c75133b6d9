package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestReadReceipts runs two nodes on one Redis: a read on one node is
// acked and reaches a member on the other as a read frame; the position is
// served by GET /api/users/{user}/unread and comes back in joined, with the
// unread count, when the user reconnects to the other node.
func TestReadReceipts(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 2, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	alice := dial(t, nodes[0], "?name=alice", nil)
	bob := dial(t, nodes[1], "?name=bob", nil)
	for _, c := range []*wsClient{alice, bob} {
		c.expect("welcome")
		c.send(`{"type":"join","room":"lobby"}`)
		c.expect("joined")
	}
	for i := 1; i <= 3; i++ {
		bob.send(fmt.Sprintf(`{"type":"send","room":"lobby","data":"m%d","id":"s%d"}`, i, i))
		bob.expectAnswer(fmt.Sprintf("s%d", i))
	}
	for range 3 {
		alice.expect("message")
	}

	alice.send(`{"type":"read","room":"lobby","seq":3,"id":"r1"}`)
	if ack := alice.expectAnswer("r1"); ack["type"] != "ack" {
		t.Fatalf("read answered %v, want an ack", ack)
	}
	if r := bob.expect("read"); r["room"] != "lobby" || r["user"] != "alice" || r["seq"] != 3.0 {
		t.Fatalf("bob got %v, want alice's read of 3", r)
	}
	alice.send(`{"type":"read","room":"lobby","seq":4,"id":"r2"}`)
	if e := alice.expectAnswer("r2"); e["type"] != "error" || e["code"] != "bad_request" {
		t.Fatalf("a read beyond the newest message answered %v, want bad_request", e)
	}
	alice.send(`{"type":"read","room":"elsewhere","seq":1,"id":"r3"}`)
	if e := alice.expectAnswer("r3"); e["code"] != "not_member" {
		t.Fatalf("a read of a room not joined answered %v, want not_member", e)
	}
	for i := 4; i <= 5; i++ {
		bob.send(fmt.Sprintf(`{"type":"send","room":"lobby","data":"m%d","id":"s%d"}`, i, i))
		bob.expectAnswer(fmt.Sprintf("s%d", i))
	}

	if code, body := api(t, "GET", nodes[1]+"/api/users/alice/unread", "", ""); code != 401 || errorCode(body) != "unauthorized" {
		t.Errorf("unread without the key: %d %v, want 401", code, body)
	}
	if code, body := api(t, "GET", nodes[1]+"/api/users/a%20b/unread", testKey, ""); code != 400 {
		t.Errorf("unread of an invalid user: %d %v, want 400", code, body)
	}
	if code, body := api(t, "GET", nodes[1]+"/api/users/alice/unread?limit=0", testKey, ""); code != 400 {
		t.Errorf("unread with limit 0: %d %v, want 400", code, body)
	}
	want := `[map[capped:false read_seq:3 room:lobby seq:5 unread:2]]`
	eventually(t, 5*time.Second, func() error {
		code, body := api(t, "GET", nodes[1]+"/api/users/alice/unread", testKey, "")
		if got := fmt.Sprint(body["rooms"]); code != 200 || body["user"] != "alice" || got != want {
			return fmt.Errorf("unread: %d %v, want rooms %s", code, body, want)
		}
		return nil
	})
	if code, body := api(t, "GET", nodes[0]+"/api/users/nobody/unread", testKey, ""); code != 200 || fmt.Sprint(body["rooms"]) != "[]" {
		t.Errorf("unread of a user without positions: %d %v, want no rooms", code, body)
	}

	alice.c.Close(websocket.StatusNormalClosure, "")
	again := dial(t, nodes[1], "?name=alice", nil)
	again.expect("welcome")
	again.send(`{"type":"join","room":"lobby"}`)
	j := again.expect("joined")
	if j["seq"] != 5.0 || j["read_seq"] != 3.0 || j["unread"] != 2.0 || j["unread_capped"] != nil {
		t.Errorf("joined on the other node: %v; want seq 5, read_seq 3, unread 2, not capped", j)
	}
}
