package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// The delivery guarantees of docs/protocol.md ("Ordering, history and
// recovery", "Idempotent sends") over real WebSockets, on three nodes
// sharing a real Redis.

// recoveryHistory is the history size of the recovery tests' nodes.
const recoveryHistory = 2000

// startRecoveryCluster starts a Redis and three nodes keeping
// recoveryHistory messages per room, without a rate limit.
func startRecoveryCluster(t *testing.T) (*redistest.Server, []string) {
	t.Helper()
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 3, map[string]string{
		"SWITCHBOARD_HISTORY_SIZE": fmt.Sprint(recoveryHistory),
		"SWITCHBOARD_RATE_LIMIT":   "0",
	})
	return redis, nodes
}

// TestClusterRecovery: a client that missed 1 000 messages rejoins on
// another node with since and epoch, and gets exactly them, in order, then
// the live ones.
func TestClusterRecovery(t *testing.T) {
	t.Parallel()
	_, nodes := startRecoveryCluster(t)
	const room, before, missed = "rec", 3, 1000

	sub := dial(t, nodes[0], "?name=sub", nil)
	epoch := sub.join(room)["epoch"].(string)
	pub := dial(t, nodes[1], "?name=pub", nil)
	pub.join(room)
	pub.sendAll(room, 1, before)
	var since uint64
	for range before {
		since = seqOf(sub.next("message"))
	}
	sub.c.CloseNow()

	pub.sendAll(room, before+1, before+missed)
	again := dial(t, nodes[2], "?name=sub", nil)
	again.send(joinSince(room, since, epoch))
	j := again.next("joined")
	if j["recovered"] != true || seqOf(j) != since+missed || j["epoch"] != epoch {
		t.Fatalf("rejoin answered %v, want recovered true at seq %d in epoch %s", j, since+missed, epoch)
	}
	again.expectMessages(since+1, since+missed)
	pub.sendAll(room, before+missed+1, before+missed+2)
	again.expectMessages(since+missed+1, since+missed+2)
}

// TestClusterRecoveryUnderLoad: while a publisher sends continuously, clients
// on the other nodes rejoin, again and again, with since a few messages
// behind or current: each gets every seq after since exactly once, in order.
func TestClusterRecoveryUnderLoad(t *testing.T) {
	t.Parallel()
	_, nodes := startRecoveryCluster(t)
	const room, rounds, reads = "load", 50, 20
	lags := []uint64{0, 1, 3, 20}

	pub := dial(t, nodes[0], "?name=pub", nil)
	epoch := pub.join(room)["epoch"].(string)
	tr := &tracker{}
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		tr.follow(pub)
	}()
	stop := make(chan struct{})
	published := make(chan error, 1)
	go func() { published <- pub.publish(room, 100000, time.Millisecond, stop) }()
	defer func() {
		close(stop)
		if err := <-published; err != nil {
			t.Errorf("publisher: %v", err)
		}
		pub.c.CloseNow()
		<-followed
	}()

	tr.waitFor(t, 2*reads)
	for round := range rounds {
		var joins sync.WaitGroup
		for i, lag := range lags {
			joins.Go(func() {
				last := tr.seq()
				since := last - min(lag, last)
				if err := checkRejoin(t, nodes[1+(round+i)%2], room, since, epoch, reads); err != nil {
					t.Errorf("round %d, %d behind: %v", round, lag, err)
				}
			})
		}
		joins.Wait()
		if t.Failed() {
			break
		}
	}
	if err := tr.failure(); err != nil {
		t.Errorf("the publisher's own session: %v", err)
	}
}

// checkRejoin connects to base and joins room with since and epoch, and
// checks that the next count messages follow since (or the joined seq,
// when the gap was too old to recover) without a gap or a duplicate. It
// returns an error instead of failing t, to run on any goroutine.
func checkRejoin(t *testing.T, base, room string, since uint64, epoch string, count int) error {
	c, err := dialErr(t, base, "?name=joiner", nil)
	if err != nil {
		return err
	}
	defer c.c.CloseNow()
	if err := c.write(joinSince(room, since, epoch)); err != nil {
		return err
	}
	j, err := c.nextErr("joined")
	if err != nil {
		return err
	}
	last := since
	if j["recovered"] != true {
		if seqOf(j) < since || seqOf(j)-since < recoveryHistory || j["epoch"] != epoch {
			return fmt.Errorf("joined with since %d: %v, want recovered", since, j)
		}
		last = seqOf(j)
	}
	for range count {
		m, err := c.nextErr("message")
		if err != nil {
			return fmt.Errorf("after seq %d: %w", last, err)
		}
		if seqOf(m) != last+1 {
			return fmt.Errorf("seq %d after %d (since %d, joined at %d)", seqOf(m), last, since, seqOf(j))
		}
		last++
	}
	return nil
}

// TestClusterRecoveryNewEpoch: Redis restarted without persistence lost the
// room's history: a rejoin with the old since and epoch answers recovered
// false with the new epoch, and the new epoch's messages follow from seq 1.
func TestClusterRecoveryNewEpoch(t *testing.T) {
	t.Parallel()
	redis, nodes := startRecoveryCluster(t)
	const room = "ep"
	sub := dial(t, nodes[0], "?name=sub", nil)
	epoch := sub.join(room)["epoch"].(string)
	pub := dial(t, nodes[1], "?name=pub", nil)
	pub.join(room)
	pub.sendAll(room, 1, 3)
	sub.expectMessages(1, 3)
	sub.c.CloseNow()

	redis.Stop()
	redis.Start()
	for _, base := range nodes {
		eventually(t, 15*time.Second, func() error {
			if code, err := getErr(base + "/readyz"); code != 200 {
				return fmt.Errorf("readyz of %s = %d, %v after Redis restarted", base, code, err)
			}
			return nil
		})
	}
	again := dial(t, nodes[2], "?name=sub", nil)
	var j map[string]any
	eventually(t, 15*time.Second, func() (err error) {
		again.send(joinSince(room, 3, epoch))
		j, err = again.nextErr("joined")
		return err
	})
	if j["recovered"] != false || j["epoch"] == epoch || seqOf(j) != 0 {
		t.Fatalf("rejoin after the restart answered %v, want recovered false at seq 0 in a new epoch (not %s)", j, epoch)
	}
	n := 0
	eventually(t, 15*time.Second, func() error {
		n++
		return pub.trySend(room, "after", fmt.Sprintf("after-%d", n))
	})
	if m := again.next("message"); seqOf(m) != 1 {
		t.Fatalf("the first message after the restart = %v, want seq 1", m)
	}
}

// TestClusterIdempotentSendAcrossNodes: the same user sends the same id from
// two nodes, one after the other: both get the same ack, observers on every
// node get the message once.
func TestClusterIdempotentSendAcrossNodes(t *testing.T) {
	t.Parallel()
	_, nodes := startRecoveryCluster(t)
	const room = "idem"
	alice1 := dial(t, nodes[0], "?name=alice", nil)
	alice2 := dial(t, nodes[1], "?name=alice", nil)
	alice1.join(room)
	alice2.join(room)
	var observers []*wsClient
	for i, base := range nodes {
		c := dial(t, base, fmt.Sprintf("?name=obs%d", i), nil)
		c.join(room)
		observers = append(observers, c)
	}
	const once = `{"type":"send","room":"idem","data":"once","id":"same"}`
	alice1.send(once)
	first := seqOf(alice1.ack("same"))
	alice2.send(once)
	if again := seqOf(alice2.ack("same")); again != first {
		t.Fatalf("the repeat was acked with seq %d, the first with %d", again, first)
	}
	alice1.send(`{"type":"send","room":"idem","data":"fence","id":"fence"}`)
	if fence := seqOf(alice1.ack("fence")); fence != first+1 {
		t.Fatalf("the next send got seq %d, want %d: the repeat was published", fence, first+1)
	}
	for _, c := range observers {
		for _, want := range []string{"once", "fence"} {
			if m := c.next("message"); m["data"] != want {
				t.Fatalf("got %v, want the message %q (each once)", m, want)
			}
		}
	}
}

// TestClusterPubSubLoss: Redis kills every pub/sub connection, a few times,
// while a publisher on another node sends continuously: clients still get
// every seq, in order (the nodes repair the gaps from history).
func TestClusterPubSubLoss(t *testing.T) {
	t.Parallel()
	redis, nodes := startRecoveryCluster(t)
	const room, total, killRounds = "loss", 1500, 5
	subs := []*wsClient{dial(t, nodes[0], "?name=sub0", nil), dial(t, nodes[0], "?name=sub1", nil)}
	for _, c := range subs {
		c.join(room)
	}
	pub := dial(t, nodes[1], "?name=pub", nil)
	pub.join(room)
	done := make(chan error, 1)
	go func() { done <- pub.publish(room, total, time.Millisecond, nil) }()

	admin := redis.Client(t)
	kills := 0
	for rounds, publishing := 0, true; publishing; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("publisher: %v", err)
			}
			publishing = false
		case <-time.After(100 * time.Millisecond):
			if rounds++; rounds <= killRounds {
				n, err := admin.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Result()
				if err != nil {
					t.Fatalf("CLIENT KILL: %v", err)
				}
				kills += int(n)
			}
		}
	}
	for _, c := range subs {
		c.expectMessages(1, total)
	}
	if kills == 0 {
		t.Errorf("no pub/sub connection was killed: the test tested nothing")
	}
}

// joinSince returns a join frame recovering from since in epoch.
func joinSince(room string, since uint64, epoch string) string {
	return fmt.Sprintf(`{"type":"join","room":%q,"since":%d,"epoch":%q}`, room, since, epoch)
}

// seqOf returns a frame's seq.
func seqOf(m map[string]any) uint64 {
	f, _ := m["seq"].(float64)
	return uint64(f)
}

// join joins room without recovery and returns the joined frame.
func (c *wsClient) join(room string) map[string]any {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"type":"join","room":%q}`, room))
	return c.next("joined")
}

// next returns the next frame of one of types, skipping others (member
// events, messages while waiting for an ack), and fails the test on an
// error frame or a read error. Call it on the test's goroutine.
func (c *wsClient) next(types ...string) map[string]any {
	c.t.Helper()
	m, err := c.nextErr(types...)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// nextErr is next for any goroutine: it returns the failure.
func (c *wsClient) nextErr(types ...string) (map[string]any, error) {
	for {
		m, err := c.read()
		if err != nil {
			return nil, fmt.Errorf("waiting for %v: %w", types, err)
		}
		if m["type"] == "error" {
			return nil, fmt.Errorf("waiting for %v: got %v", types, m)
		}
		if typ, _ := m["type"].(string); slices.Contains(types, typ) {
			return m, nil
		}
	}
}

// ack waits for the ack of id.
func (c *wsClient) ack(id string) map[string]any {
	c.t.Helper()
	m := c.next("ack")
	if m["id"] != id {
		c.t.Fatalf("ack %v, want the ack of %q", m, id)
	}
	return m
}

// write sends a frame, returning the failure, for any goroutine.
func (c *wsClient) write(frame string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.c.Write(ctx, websocket.MessageText, []byte(frame))
}

// sendAll sends the messages from..to to room, message n with data n and id
// "n", and waits for their acks: message n must get seq n, so the caller's
// messages must be the room's only ones.
func (c *wsClient) sendAll(room string, from, to uint64) {
	c.t.Helper()
	for n := from; n <= to; n++ {
		c.send(fmt.Sprintf(`{"type":"send","room":%q,"data":%d,"id":"%d"}`, room, n, n))
	}
	for n := from; n <= to; n++ {
		if ack := c.ack(fmt.Sprint(n)); seqOf(ack) != n {
			c.t.Fatalf("ack %v, want seq %d", ack, n)
		}
	}
}

// trySend sends data to room with id and waits for its ack, returning an
// error frame as an error.
func (c *wsClient) trySend(room, data, id string) error {
	c.send(fmt.Sprintf(`{"type":"send","room":%q,"data":%q,"id":%q}`, room, data, id))
	m, err := c.nextErr("ack")
	if err == nil && m["id"] != id {
		err = fmt.Errorf("ack %v, want the ack of %q", m, id)
	}
	return err
}

// expectMessages reads the room's next messages and checks that they are
// seqs from..to, message n with data n (as sendAll and publish send them).
func (c *wsClient) expectMessages(from, to uint64) {
	c.t.Helper()
	for n := from; n <= to; n++ {
		if m := c.next("message"); seqOf(m) != n || m["data"] != float64(n) {
			c.t.Fatalf("got %v, want seq %d with data %d", m, n, n)
		}
	}
}

// publish sends count messages to room, without ids, one per interval,
// until stop is closed (nil: never). It returns the first write error.
func (c *wsClient) publish(room string, count int, interval time.Duration, stop <-chan struct{}) error {
	for n := 1; n <= count; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := c.write(fmt.Sprintf(`{"type":"send","room":%q,"data":%d}`, room, n)); err != nil {
			return err
		}
		time.Sleep(interval)
	}
	return nil
}

// tracker follows a member's messages, checking that their seqs are
// consecutive, and tells the last one.
type tracker struct {
	mu   sync.Mutex
	last uint64
	err  error // the first violation or error frame
}

// follow reads c's frames until its connection closes.
func (tr *tracker) follow(c *wsClient) {
	for b := range c.frames {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			tr.fail(fmt.Errorf("frame %s: %v", b, err))
			continue
		}
		switch m["type"] {
		case "error":
			tr.fail(fmt.Errorf("error frame %v", m))
		case "message":
			tr.mu.Lock()
			if seq := seqOf(m); seq != tr.last+1 && tr.err == nil {
				tr.err = fmt.Errorf("seq %d after %d", seq, tr.last)
			}
			tr.last = seqOf(m)
			tr.mu.Unlock()
		}
	}
}

func (tr *tracker) fail(err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.err == nil {
		tr.err = err
	}
}

func (tr *tracker) seq() uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.last
}

func (tr *tracker) failure() error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.err
}

// waitFor waits until the tracker saw seq n, failing t after 10 s.
func (tr *tracker) waitFor(t *testing.T, n uint64) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if seq := tr.seq(); seq < n {
			return fmt.Errorf("the publisher's session saw seq %d, want %d", seq, n)
		}
		return nil
	})
}
