package main

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestWebhookMemberLeftAfterNodeCrash: two nodes on one Redis, both sending
// webhooks. Users of the doomed node (a process of its own) join a room
// shared with the surviving node's user, and a room nobody else is in;
// the doomed node is SIGKILLed. The receiver gets one member.left for each
// (room, user), sent by the survivor, within a few presence TTLs, and no
// more afterwards.
func TestWebhookMemberLeftAfterNodeCrash(t *testing.T) {
	redis := redistest.Start(t)
	r := newHookReceiver(t, false)
	env := hookEnv(r.srv.URL + "/hook")
	env["SWITCHBOARD_PRESENCE_TTL"] = "2s"
	delete(env, "SWITCHBOARD_NODE_ID")
	survivor := startCluster(t, redis.URL(), 1, env)[0] // node-1

	doomed := startDrainNode(t, buildSwitchboard(t),
		"SWITCHBOARD_REDIS_URL="+redis.URL(),
		"SWITCHBOARD_NODE_ID=doomed",
		"SWITCHBOARD_PRESENCE_TTL=2s",
		"SWITCHBOARD_WEBHOOK_URL="+env["SWITCHBOARD_WEBHOOK_URL"],
		"SWITCHBOARD_WEBHOOK_SECRET="+hookSecret,
	)
	carol := dial(t, doomed.base, "?name=carol", nil)
	carol.send(`{"type":"join","room":"lobby"}`)
	carol.expect("joined")
	dave := dial(t, doomed.base, "?name=dave", nil)
	dave.send(`{"type":"join","room":"quiet"}`)
	dave.expect("joined")
	alice := dial(t, survivor, "?name=alice", nil)
	alice.send(`{"type":"join","room":"lobby"}`)
	if got := members(alice.expect("joined")); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("lobby's members before the kill = %v", got)
	}

	doomed.signal(t, os.Kill) // SIGKILL
	doomed.wait(t, 10*time.Second)
	if m := alice.expect("member_left"); m["user"] != "carol" {
		t.Errorf("alice got %v, want carol's member_left", m)
	}
	r.wait(map[string]int{"member.left": 2})
	time.Sleep(2 * time.Second) // a presence TTL more of refreshes and heartbeats
	r.check()
	left := map[string]bool{}
	for _, e := range r.ofType("member.left") {
		d := data(e)
		left[fmt.Sprint(d["room"], "/", d["user"])] = true
		if e["node"] != "node-1" {
			t.Errorf("member.left %v: want it sent by node-1, the survivor", e)
		}
	}
	if len(left) != 2 || !left["lobby/carol"] || !left["quiet/dave"] {
		t.Errorf("member.left for %v, want lobby/carol and quiet/dave, once each (%d events)", left, len(r.ofType("member.left")))
	}
}
