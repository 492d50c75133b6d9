package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// startCluster starts n nodes in this process sharing the Redis at url and
// returns their base URLs.
func startCluster(t *testing.T, url string, n int, extra map[string]string) []string {
	t.Helper()
	bases := make([]string, n)
	for i := range bases {
		env := map[string]string{
			"SWITCHBOARD_REDIS_URL":        url,
			"SWITCHBOARD_NODE_ID":          fmt.Sprintf("node-%d", i+1),
			"SWITCHBOARD_RATE_LIMIT":       "0",
			"SWITCHBOARD_RATE_LIMIT_BYTES": "0",
		}
		for k, v := range extra {
			env[k] = v
		}
		bases[i], _ = startRun(t, env)
	}
	return bases
}

func members(m map[string]any) []string {
	var out []string
	for _, v := range m["members"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

// eventually retries f until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClusterChat(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 3, nil)

	alice := dial(t, nodes[0], "?name=alice", nil)
	if w := alice.expect("welcome"); w["node"] != "node-1" {
		t.Fatalf("alice's welcome names node %v, want node-1", w["node"])
	}
	bob := dial(t, nodes[2], "?name=bob", nil)
	bob.expect("welcome")
	carol := dial(t, nodes[1], "?name=carol", nil)
	carol.expect("welcome")

	alice.send(`{"type":"join","room":"lobby"}`)
	alice.expect("joined")
	bob.send(`{"type":"join","room":"lobby"}`)
	if got := members(bob.expect("joined")); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("bob joined with members %v", got)
	}
	if ev := alice.expect("member_joined"); ev["user"] != "bob" {
		t.Fatalf("alice got %v", ev)
	}
	carol.send(`{"type":"join","room":"lobby"}`)
	carol.expect("joined")
	alice.expect("member_joined")
	bob.expect("member_joined")

	alice.send(`{"type":"send","room":"lobby","data":{"text":"hello cluster"},"id":"a1"}`)
	for _, c := range []*wsClient{alice, bob, carol} {
		if m := c.expect("message"); m["from"] != "alice" || m["seq"] != 1.0 {
			t.Fatalf("message = %v", m)
		}
	}
	bob.send(`{"type":"typing","room":"lobby"}`)
	for _, c := range []*wsClient{alice, carol} {
		if ev := c.expect("typing"); ev["user"] != "bob" {
			t.Fatalf("typing = %v", ev)
		}
	}
	alice.send(`{"type":"dm","to":"bob","data":"psst","id":"d1"}`)
	if dm := bob.expect("dm"); dm["from"] != "alice" || dm["data"] != "psst" {
		t.Fatalf("bob's dm = %v", dm)
	}
	alice.send(`{"type":"dm","to":"nobody","data":"?","id":"d2"}`)
	if e := alice.expect("error"); e["code"] != "offline" || e["id"] != "d2" {
		t.Fatalf("dm to nobody = %v", e)
	}
	carol.send(`{"type":"presence","room":"lobby"}`)
	if got := members(carol.expect("presence")); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("presence = %v", got)
	}
	bob.send(`{"type":"leave","room":"lobby"}`)
	bob.expect("left")
	if ev := alice.expect("member_left"); ev["user"] != "bob" {
		t.Fatalf("alice got %v", ev)
	}
}

// TestClusterOneOrder has two publishers on different nodes send at once;
// observers on every node must see one identical, gap-free sequence.
func TestClusterOneOrder(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 3, nil)
	const perPublisher = 150

	var observers []*wsClient
	for i, base := range nodes {
		c := dial(t, base, fmt.Sprintf("?name=obs%d", i), nil)
		c.send(`{"type":"join","room":"race"}`)
		c.expect("joined")
		observers = append(observers, c)
	}
	var pubs []*wsClient
	for i, base := range nodes[:2] {
		c := dial(t, base, fmt.Sprintf("?name=pub%d", i), nil)
		c.send(`{"type":"join","room":"race"}`)
		c.expect("joined")
		pubs = append(pubs, c)
	}
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perPublisher {
				p.send(fmt.Sprintf(`{"type":"send","room":"race","data":"%d-%d"}`, i, n))
			}
		}()
	}
	wg.Wait()

	var first []string
	for i, c := range observers {
		var got []string
		for n := 1; n <= 2*perPublisher; n++ {
			m := c.expect("message")
			if m["seq"] != float64(n) {
				t.Fatalf("observer %d: message %d has seq %v", i, n, m["seq"])
			}
			got = append(got, m["data"].(string))
		}
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			t.Fatalf("observer %d saw a different order", i)
		}
	}
}

// TestClusterNoStaleSubscriptions storms joins and leaves over three nodes
// and checks that Redis holds no room subscription once everyone is gone.
func TestClusterNoStaleSubscriptions(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 3, nil)
	rdb := redis.Client(t)
	ctx := context.Background()

	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, nodes[i%3], fmt.Sprintf("?name=u%d", i), nil)
			for n := range 20 {
				room := fmt.Sprintf("storm-%d", (i+n)%4)
				c.send(fmt.Sprintf(`{"type":"join","room":%q}`, room))
				c.send(fmt.Sprintf(`{"type":"leave","room":%q}`, room))
			}
			c.send(`{"type":"join","room":"storm-0"}`)
			c.send(`{"type":"ping","id":"done"}`)
			c.expect("pong")
			c.c.CloseNow()
		}()
	}
	keeper := dial(t, nodes[0], "?name=keeper", nil)
	keeper.send(`{"type":"join","room":"kept"}`)
	keeper.expect("joined")
	wg.Wait()

	eventually(t, 10*time.Second, func() error {
		chans, err := rdb.PubSubChannels(ctx, "sb:r:*").Result()
		if err != nil {
			return err
		}
		if !slices.Equal(chans, []string{"sb:r:kept"}) {
			return fmt.Errorf("room channels subscribed = %v, want only sb:r:kept", chans)
		}
		n, err := rdb.PubSubNumSub(ctx, "sb:r:kept", "sb:r:storm-0").Result()
		if err != nil {
			return err
		}
		if n["sb:r:kept"] != 1 || n["sb:r:storm-0"] != 0 {
			return fmt.Errorf("NUMSUB = %v", n)
		}
		return nil
	})
}

// TestClusterRedisRestart stops Redis under a running cluster: sends fail
// with unavailable, /readyz turns 503 (while /healthz stays 200), and once
// Redis is back delivery resumes without any client action.
func TestClusterRedisRestart(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 2, map[string]string{"SWITCHBOARD_PRESENCE_TTL": "3s"})
	alice := dial(t, nodes[0], "?name=alice", nil)
	bob := dial(t, nodes[1], "?name=bob", nil)
	for _, c := range []*wsClient{alice, bob} {
		c.send(`{"type":"join","room":"lobby"}`)
		c.expect("joined")
	}

	redis.Stop()
	eventually(t, 15*time.Second, func() error {
		if code, _ := get(t, nodes[0]+"/readyz"); code != 503 {
			return fmt.Errorf("readyz = %d while Redis is down, want 503", code)
		}
		return nil
	})
	if code, _ := get(t, nodes[0]+"/healthz"); code != 200 {
		t.Fatalf("healthz = %d while Redis is down, want 200", code)
	}
	alice.send(`{"type":"send","room":"lobby","data":"lost?","id":"x1"}`)
	if e := alice.expect("error"); e["code"] != "unavailable" || e["id"] != "x1" {
		t.Fatalf("send while Redis is down = %v", e)
	}

	redis.Start()
	eventually(t, 15*time.Second, func() error {
		if code, _ := get(t, nodes[0]+"/readyz"); code != 200 {
			return fmt.Errorf("readyz = %d after Redis returned", code)
		}
		return nil
	})
	// The subscriptions come back by themselves; a send may still race the
	// resubscription, so alice retries (with a fresh id) until bob sees one.
	deadline := time.Now().Add(15 * time.Second)
	for n := 0; ; n++ {
		alice.send(fmt.Sprintf(`{"type":"send","room":"lobby","data":"back","id":"y%d"}`, n))
		if ack := alice.expect("ack"); ack["id"] != fmt.Sprintf("y%d", n) {
			t.Fatalf("ack = %v", ack)
		}
		if m, err := bob.readType("message", time.Second); err == nil {
			if m["data"] != "back" {
				t.Fatalf("bob got %v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob never received a message after Redis came back")
		}
	}
	eventually(t, 10*time.Second, func() error {
		// Until every node registered its users again, presence is
		// refused rather than partial.
		bob.send(`{"type":"presence","room":"lobby","id":"p"}`)
		m := bob.expectAnswer("p")
		if m["type"] == "error" && m["code"] == "unavailable" {
			return fmt.Errorf("presence refused: %v", m["message"])
		}
		got := members(m)
		if !slices.Equal(got, []string{"alice", "bob"}) {
			return fmt.Errorf("presence after the restart = %v", got)
		}
		return nil
	})
}

// TestClusterRedisRollback: Redis is killed and restarts from a snapshot
// older than what it acknowledged (RDB, or an everysec AOF), so the room's
// seq goes back from 6 to 3. Bob, on the other node, had 4 to 6: the next
// message must reach him, after an epoch frame, rather than reuse seq 4,
// which he would drop as one he already has.
func TestClusterRedisRollback(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 2, nil)
	alice := dial(t, nodes[0], "?name=alice", nil)
	bob := dial(t, nodes[1], "?name=bob", nil)
	for _, c := range []*wsClient{alice, bob} {
		c.send(`{"type":"join","room":"lobby"}`)
		c.expect("joined")
	}
	say := func(data string) {
		t.Helper()
		alice.send(fmt.Sprintf(`{"type":"send","room":"lobby","data":%q,"id":%q}`, data, data))
		if ack := alice.expectAnswer(data); ack["type"] != "ack" {
			t.Fatalf("send %s: %v", data, ack)
		}
		if m := bob.expect("message"); m["data"] != data {
			t.Fatalf("bob got %v, want %s", m, data)
		}
	}
	for _, data := range []string{"m1", "m2", "m3"} {
		say(data)
	}
	if err := redis.Client(t).Save(t.Context()).Err(); err != nil {
		t.Fatalf("SAVE: %v", err)
	}
	for _, data := range []string{"m4", "m5", "m6"} {
		say(data)
	}
	redis.Stop() // SIGKILL: m4 to m6 were never saved
	redis.Start()
	eventually(t, 15*time.Second, func() error {
		if code, _ := get(t, nodes[0]+"/readyz"); code != 200 {
			return fmt.Errorf("readyz = %d after Redis returned", code)
		}
		return nil
	})
	// A send may race the nodes' resubscription: alice retries, with fresh
	// ids, until bob gets one.
	sawEpoch := false
	deadline := time.Now().Add(15 * time.Second)
	for n := 0; ; n++ {
		id := fmt.Sprintf("after%d", n)
		alice.send(fmt.Sprintf(`{"type":"send","room":"lobby","data":"after","id":%q}`, id))
		if ack := alice.expectAnswer(id); ack["type"] != "ack" {
			t.Fatalf("send after the restart: %v", ack)
		}
		for {
			m, err := bob.readWithin(time.Second)
			if err != nil {
				break
			}
			switch m["type"] {
			case "epoch":
				sawEpoch = true
			case "message":
				if m["data"] != "after" {
					t.Fatalf("bob got %v, want the message sent after the restart", m)
				}
				if !sawEpoch {
					t.Fatalf("bob got %v without an epoch frame before it", m)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("bob never received a message sent after Redis rolled back")
		}
	}
}

// TestClusterNodeKilled kills a node with SIGKILL: its users leave presence
// within the presence TTL.
func TestClusterNodeKilled(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 1, map[string]string{"SWITCHBOARD_PRESENCE_TTL": "2s"})

	bin := filepath.Join(t.TempDir(), "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--addr", addr, "--node-id", "doomed", "--redis-url", redis.URL(), "--presence-ttl", "2s")
	cmd.Env = append(os.Environ(), "SWITCHBOARD_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	doomed := "http://" + addr
	eventually(t, 10*time.Second, func() error {
		if code, _ := getErr(doomed + "/healthz"); code != 200 {
			return fmt.Errorf("doomed node not healthy")
		}
		return nil
	})

	ghost := dial(t, doomed, "?name=ghost", nil)
	ghost.send(`{"type":"join","room":"lobby"}`)
	ghost.expect("joined")
	alice := dial(t, nodes[0], "?name=alice", nil)
	alice.send(`{"type":"join","room":"lobby"}`)
	if got := members(alice.expect("joined")); !slices.Contains(got, "ghost") {
		t.Fatalf("members before the kill = %v", got)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	eventually(t, 10*time.Second, func() error {
		alice.send(`{"type":"presence","room":"lobby"}`)
		if got := members(alice.expect("presence")); !slices.Equal(got, []string{"alice"}) {
			return fmt.Errorf("presence after the kill = %v", got)
		}
		return nil
	})
}

func getErr(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestClusterAPI: the server API of one node acts on the whole cluster.
func TestClusterAPI(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 2, map[string]string{
		"SWITCHBOARD_API_KEY":      testKey,
		"SWITCHBOARD_PRESENCE_TTL": "3s",
	})
	bob := dial(t, nodes[1], "?name=bob", nil)
	bob.send(`{"type":"join","room":"lobby"}`)
	bob.expect("joined")
	bob2 := dial(t, nodes[0], "?name=bob", nil)
	bob2.expect("welcome")

	code, body := api(t, "POST", nodes[0]+"/api/rooms/lobby/messages", testKey, `{"data":"from the backend"}`)
	if code != 200 {
		t.Fatalf("publish: %d %v", code, body)
	}
	if m := bob.expect("message"); m["data"] != "from the backend" {
		t.Fatalf("bob on node 2 got %v", m)
	}
	if code, body = api(t, "GET", nodes[0]+"/api/rooms/lobby/presence", testKey, ""); code != 200 || len(body["members"].([]any)) != 1 {
		t.Fatalf("presence via node 1: %d %v", code, body)
	}

	eventually(t, 10*time.Second, func() error {
		_, body := api(t, "GET", nodes[0]+"/api/stats", testKey, "")
		nodeList, _ := body["nodes"].([]any)
		cluster, _ := body["cluster"].(map[string]any)
		if len(nodeList) != 2 || cluster["connections"] != 2.0 {
			return fmt.Errorf("stats = %v, want two nodes and two connections", body)
		}
		return nil
	})

	code, body = api(t, "DELETE", nodes[0]+"/api/users/bob/sessions", testKey, "")
	if code != 200 || body["disconnected"] != true {
		t.Fatalf("kick: %d %v", code, body)
	}
	for _, c := range []*wsClient{bob, bob2} {
		if got := c.closeStatus(); got != 4003 {
			t.Fatalf("bob closed with %v, want 4003 on every node", got)
		}
	}
}

// TestClusterReplyToMemberJoined plays the member who greets a joiner at
// once: alice, on node 1, sends as soon as she sees member_joined for
// someone who joined on node 2. Each greeting must reach its addressee live,
// after its joined frame, with a seq above joined.seq. Before the fix the
// joiner's position was read after member_joined went out, and the greeting
// could be counted in joined.seq and never delivered.
func TestClusterReplyToMemberJoined(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 2, nil)
	alice := dial(t, nodes[0], "?name=alice", nil)
	alice.send(`{"type":"join","room":"hello"}`)
	alice.expect("joined")
	for i := range 20 {
		user := fmt.Sprintf("guest%d", i)
		guest := dial(t, nodes[1], "?name="+user, nil)
		guest.send(`{"type":"join","room":"hello"}`)
		for {
			ev := alice.expect("member_joined")
			if ev["user"] == user {
				break
			}
		}
		alice.send(fmt.Sprintf(`{"type":"send","room":"hello","data":%q}`, "welcome "+user))
		joined := guest.expect("joined")
		for {
			m := guest.expect("message")
			if m["data"] != "welcome "+user {
				continue // an earlier guest's greeting
			}
			if m["seq"].(float64) <= joined["seq"].(float64) {
				t.Fatalf("%s: greeting seq %v within joined seq %v", user, m["seq"], joined["seq"])
			}
			break
		}
		guest.c.Close(websocket.StatusNormalClosure, "")
	}
}
