package hubtest

import (
	"slices"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
)

// NewCluster returns a NewBroker whose every call returns another node of one
// cluster: a broker sharing one backend, of its own, with the other nodes
// the same NewBroker returns, and with its own node identity.
type NewCluster func(t *testing.T) NewBroker

// TestCluster runs the multi-node conformance suite: what one node publishes,
// sends or records is seen by the others. Its subtests run in parallel, each
// on a cluster of its own.
func TestCluster(t *testing.T, newCluster NewCluster) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b *node)
	}{
		{"Publish", testClusterPublish},
		{"ConcurrentPublishers", testClusterConcurrentPublishers},
		{"Idempotency", testClusterIdempotency},
		{"Epoch", testClusterEpoch},
		{"BroadcastRoom", testClusterBroadcastRoom},
		{"SendUser", testClusterSendUser},
		{"Presence", testClusterPresence},
		{"Edits", testClusterEdits},
		{"Reads", testClusterReads},
		{"Moderation", testClusterModeration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			newNode := newCluster(t)
			tt.fn(t, startNode(t, newNode), startNode(t, newNode))
		})
	}
	testClusterReadHubs(t, newCluster)
}

// testClusterPublish: a node receives what another publishes, and both read
// the same history.
func testClusterPublish(t *testing.T, a, b *node) {
	a.subscribe(t, "x")
	var sent []hub.Publication
	for _, text := range []string{"one", "two", "three"} {
		sent = append(sent, b.publish(t, "x", text))
	}
	got := a.rec.WaitPublications(t, "x", 3)
	for i := range sent {
		if !equalPub(got[i], sent[i]) {
			t.Errorf("node a got %+v, want %+v", got[i], sent[i])
		}
	}
	ha := a.history(t, "x", hub.HistoryQuery{Limit: 10})
	hb := b.history(t, "x", hub.HistoryQuery{Limit: 10})
	if ha.Position != hb.Position || !slices.EqualFunc(ha.Publications, hb.Publications, equalPub) {
		t.Errorf("histories differ:\na: %+v\nb: %+v", ha, hb)
	}
}

// testClusterConcurrentPublishers: publishers on two nodes make one gap-free
// sequence that both nodes receive identically.
func testClusterConcurrentPublishers(t *testing.T, a, b *node) {
	const workers, each = 4, 25 // per node
	const total = 2 * workers * each
	a.subscribe(t, "c")
	b.subscribe(t, "c")
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		for range workers {
			wg.Go(func() {
				for range each {
					if _, _, err := n.b.Publish(t.Context(), "c", hub.PublishRequest{Message: message(t, "c", "x")}); err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	ga := a.rec.WaitPublications(t, "c", total)
	gb := b.rec.WaitPublications(t, "c", total)
	if !slices.Equal(seqs(ga), span(1, total)) {
		t.Errorf("node a got seqs %v, want 1..%d", seqs(ga), total)
	}
	if !slices.EqualFunc(ga, gb, equalPub) {
		t.Errorf("the nodes got different publications")
	}
}

// testClusterIdempotency: a key used on one node is a duplicate on another.
func testClusterIdempotency(t *testing.T, a, b *node) {
	r := hub.PublishRequest{Message: message(t, "i", "once"), IdempotencyKey: "k"}
	first, dup, err := a.b.Publish(t.Context(), "i", r)
	if err != nil || dup {
		t.Fatalf("Publish on a = %v, duplicate %v", err, dup)
	}
	again, dup, err := b.b.Publish(t.Context(), "i", r)
	if err != nil || !dup || !samePosition(again, first) {
		t.Errorf("Publish on b = %+v, %v, duplicate %v; want a duplicate of %+v", again, err, dup, first)
	}
	e := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"dm"}`)}
	if err := a.b.SubscribeUser(t.Context(), "bob"); err != nil {
		t.Fatalf("SubscribeUser: %v", err)
	}
	b.sendUser(t, "bob", e, "dk", true, false)
	a.sendUser(t, "bob", e, "dk", true, true)
}

// testClusterEpoch: the nodes agree on a room's epoch, from before its first
// publication on.
func testClusterEpoch(t *testing.T, a, b *node) {
	a.subscribe(t, "e") // History creates nothing; a subscription may
	pa := a.history(t, "e", hub.HistoryQuery{}).Position
	pb := b.history(t, "e", hub.HistoryQuery{}).Position
	if pa != pb || pa.Epoch == "" {
		t.Fatalf("positions of a new room: a %+v, b %+v; want equal, with an epoch", pa, pb)
	}
	if p := b.publish(t, "e", "first"); p.Epoch != pa.Epoch {
		t.Errorf("first publication's epoch %q, want %q", p.Epoch, pa.Epoch)
	}
}

// testClusterBroadcastRoom: a room event reaches the other node.
func testClusterBroadcastRoom(t *testing.T, a, b *node) {
	a.subscribe(t, "r")
	e := hub.Event{Kind: hub.EventFrame, Exclude: "alice", Frame: []byte(`{"type":"typing"}`)}
	if err := b.b.BroadcastRoom(t.Context(), "r", e); err != nil {
		t.Fatalf("BroadcastRoom: %v", err)
	}
	a.rec.Wait(t, "the room event", func() bool { return len(a.rec.RoomEvents("r")) >= 1 })
	if got := a.rec.RoomEvents("r"); !equalEvent(got[0], e) {
		t.Errorf("node a got %+v, want %+v", got[0], e)
	}
}

// testClusterSendUser: SendUser reaches a user subscribed on another node
// and reports whether any node has the user.
func testClusterSendUser(t *testing.T, a, b *node) {
	e := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"dm"}`)}
	b.sendUser(t, "bob", e, "", false, false)
	if err := a.b.SubscribeUser(t.Context(), "bob"); err != nil {
		t.Fatalf("SubscribeUser: %v", err)
	}
	b.sendUser(t, "bob", e, "", true, false)
	a.rec.Wait(t, "the user event", func() bool { return len(a.rec.UserEvents("bob")) >= 1 })
	if got := b.rec.UserEvents("bob"); len(got) != 0 {
		t.Errorf("node b, not subscribed, got %+v", got)
	}
	kick := hub.Event{Kind: hub.EventKick}
	b.sendUser(t, "bob", kick, "", true, false)
	a.rec.Wait(t, "the kick", func() bool { return len(a.rec.UserEvents("bob")) >= 2 })
	if got := a.rec.UserEvents("bob"); !equalEvent(got[0], e) || !equalEvent(got[1], kick) {
		t.Errorf("node a got %+v, want the dm then the kick", got)
	}
}

// testClusterPresence: first and last count every node's entries.
func testClusterPresence(t *testing.T, a, b *node) {
	if a.p == nil {
		t.Skip("no Presence")
	}
	pa, pb := presence{a.p}, presence{b.p}
	pa.add(t, "p", "zed", true)
	pb.add(t, "p", "zed", false)
	pb.add(t, "p", "amy", true)
	pa.members(t, "p", "amy", "zed")
	pb.members(t, "p", "amy", "zed")
	pa.remove(t, "p", "zed", false)
	pb.members(t, "p", "amy", "zed")
	pb.remove(t, "p", "zed", true)
	pa.members(t, "p", "amy")
}
