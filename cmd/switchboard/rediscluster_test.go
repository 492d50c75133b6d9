package main

import (
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestRedisClusterChat: two nodes on a 3-master Redis Cluster
// (SWITCHBOARD_REDIS_CLUSTER=true) chat across nodes: joins with presence,
// messages in order, direct messages.
func TestRedisClusterChat(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	nodes := startCluster(t, c.URL(), 2, map[string]string{"SWITCHBOARD_REDIS_CLUSTER": "true"})

	alice := dial(t, nodes[0], "?name=alice", nil)
	alice.expect("welcome")
	bob := dial(t, nodes[1], "?name=bob", nil)
	bob.expect("welcome")

	rooms := []string{"lobby", "room1", "room2", "room3", "room4"}
	for _, room := range rooms {
		alice.send(`{"type":"join","room":"` + room + `"}`)
		alice.expect("joined")
		bob.send(`{"type":"join","room":"` + room + `"}`)
		if got := members(bob.expect("joined")); !slices.Equal(got, []string{"alice", "bob"}) {
			t.Fatalf("bob joined %s with members %v", room, got)
		}
		if ev := alice.expect("member_joined"); ev["user"] != "bob" || ev["room"] != room {
			t.Fatalf("alice got %v", ev)
		}
	}
	for i, room := range rooms {
		alice.send(`{"type":"send","room":"` + room + `","data":{"text":"one"},"id":"a` + room + `"}`)
		bob.send(`{"type":"send","room":"` + room + `","data":{"text":"two"},"id":"b` + room + `"}`)
		for _, cl := range []*wsClient{alice, bob} {
			var got []string
			for range 2 {
				m := cl.expect("message")
				if m["room"] != room {
					t.Fatalf("room %d: message %v", i, m)
				}
				got = append(got, m["from"].(string))
				if m["seq"] != float64(len(got)) {
					t.Fatalf("room %s: message %v, want seq %d", room, m, len(got))
				}
			}
		}
	}
	alice.send(`{"type":"dm","to":"bob","data":"psst","id":"d1"}`)
	if dm := bob.expect("dm"); dm["from"] != "alice" || dm["data"] != "psst" {
		t.Fatalf("bob's dm = %v", dm)
	}
}
