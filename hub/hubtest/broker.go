package hubtest

import (
	"slices"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
)

// TestBroker runs the single-node conformance suite against the brokers
// newBroker returns, each configured with HistorySize. Its subtests run in
// parallel, each on a broker of its own.
func TestBroker(t *testing.T, newBroker NewBroker) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewBroker)
	}{
		{"Seq", testSeq},
		{"Delivery", testDelivery},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"History", testHistory},
		{"Epoch", testEpoch},
		{"HistoryEpoch", testHistoryEpoch},
		{"HistoryMaxBytes", testHistoryMaxBytes},
		{"Idempotency", testIdempotency},
		{"ConcurrentIdempotency", testConcurrentIdempotency},
		{"SendUser", testSendUser},
		{"ConcurrentSendUser", testConcurrentSendUser},
		{"BroadcastRoom", testBroadcastRoom},
		{"Presence", testPresence},
		{"PresencePages", testPresencePages},
		{"MemberEvents", testMemberEvents},
		{"Ready", testReady},
		{"Edits", testEdits},
		{"EditIdempotency", testEditIdempotency},
		{"EditTrimmed", testEditTrimmed},
		{"ReadPosition", testReadPosition},
		{"UnreadCount", testUnreadCount},
		{"UnreadCapped", testUnreadCapped},
		{"UnreadRooms", testUnreadRooms},
		{"Moderation", testModeration},
		{"ModerationExpiry", testModerationExpiry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newBroker)
		})
	}
}

// testSeq: seqs are 1, 2, 3 per room, in one epoch, with the frame built
// from the template.
func testSeq(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	var epoch string
	for want := uint64(1); want <= 3; want++ {
		m := message(t, "seq", "hi")
		p, dup, err := n.b.Publish(t.Context(), "seq", hub.PublishRequest{Message: m})
		if err != nil || dup {
			t.Fatalf("Publish = %v, duplicate %v", err, dup)
		}
		if p.Seq != want {
			t.Errorf("seq = %d, want %d", p.Seq, want)
		}
		if want == 1 {
			epoch = p.Epoch
		}
		if p.Epoch == "" || p.Epoch != epoch {
			t.Errorf("epoch = %q, want %q (and not empty)", p.Epoch, epoch)
		}
		if got, want := string(p.Frame), string(m.Frame(want)); got != want {
			t.Errorf("frame = %s, want %s", got, want)
		}
	}
	if p := n.publish(t, "seq.other", "hi"); p.Seq != 1 {
		t.Errorf("first seq of another room = %d, want 1", p.Seq)
	}
}

// testDelivery: publications reach the Handler, in order and as returned
// by Publish, only while the room is subscribed.
func testDelivery(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	n.subscribe(t, "d")
	sent := []hub.Publication{n.publish(t, "d", "one"), n.publish(t, "d", "two")}
	got := n.rec.WaitPublications(t, "d", 2)
	for i := range sent {
		if !equalPub(got[i], sent[i]) {
			t.Errorf("delivered %+v, want %+v", got[i], sent[i])
		}
	}

	n.unsubscribe(t, "d")
	unseen := n.publish(t, "d", "while unsubscribed")
	n.settle(t)
	if got := n.rec.Publications("d"); len(got) != 2 {
		t.Fatalf("after unsubscribing, delivered seqs %v, want [1 2]", seqs(got))
	}

	n.rec.Forget("d")
	n.subscribe(t, "d")
	again := n.publish(t, "d", "three")
	got = n.rec.WaitPublications(t, "d", 3)
	for _, p := range got {
		if p.Seq == unseen.Seq {
			t.Errorf("seq %d, published while unsubscribed, was delivered", p.Seq)
		}
	}
	if last := got[len(got)-1]; !equalPub(last, again) {
		t.Errorf("after subscribing again, delivered %+v, want %+v", last, again)
	}
}

// testConcurrentPublishers: concurrent publishers to one room get a
// gap-free sequence, delivered in order.
func testConcurrentPublishers(t *testing.T, newBroker NewBroker) {
	const workers, each = 8, 25
	n := startNode(t, newBroker)
	n.subscribe(t, "c")
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				p, _, err := n.b.Publish(t.Context(), "c", hub.PublishRequest{Message: message(t, "c", "x")})
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				got = append(got, p.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if want := span(1, workers*each); !slices.Equal(got, want) {
		t.Fatalf("returned seqs %v, want 1..%d", got, workers*each)
	}
	delivered := n.rec.WaitPublications(t, "c", workers*each)
	if !slices.Equal(seqs(delivered), span(1, workers*each)) {
		t.Errorf("delivered seqs %v, want 1..%d in order", seqs(delivered), workers*each)
	}
}

// testHistory: the history keeps the newest HistorySize publications and
// pages through them oldest first.
func testHistory(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	total := uint64(HistorySize + 5)
	var sent []hub.Publication
	for range total {
		sent = append(sent, n.publish(t, "h", "m"))
	}
	kept := total - HistorySize + 1 // the oldest seq still kept
	pos := hub.Position{Seq: total, Epoch: sent[0].Epoch}
	tests := []struct {
		name string
		q    hub.HistoryQuery
		want []uint64
	}{
		{"Limit above size", hub.HistoryQuery{Limit: 100}, span(kept, total)},
		{"Limit", hub.HistoryQuery{Limit: 3}, span(total-2, total)},
		{"Limit Before", hub.HistoryQuery{Limit: 3, Before: total - 1}, span(total-4, total-2)},
		{"Before past the end", hub.HistoryQuery{Limit: 2, Before: total + 1}, span(total-1, total)},
		{"Before near the oldest", hub.HistoryQuery{Limit: 3, Before: kept + 1}, span(kept, kept)},
		{"Before the oldest", hub.HistoryQuery{Limit: 3, Before: kept}, nil},
		{"Limit 0", hub.HistoryQuery{}, nil},
		{"Limit 0 Before", hub.HistoryQuery{Before: total}, nil},
		{"Since 0", hub.HistoryQuery{HasSince: true}, span(kept, total)},
		{"Since", hub.HistoryQuery{HasSince: true, Since: total - 3}, span(total-2, total)},
		{"Since ignores Limit", hub.HistoryQuery{HasSince: true, Since: total - 3, Limit: 1}, span(total-2, total)},
		{"Since the last", hub.HistoryQuery{HasSince: true, Since: total}, nil},
	}
	for _, tt := range tests {
		page := n.history(t, "h", tt.q)
		if page.Position != pos {
			t.Errorf("%s: position %+v, want %+v", tt.name, page.Position, pos)
		}
		if got := seqs(page.Publications); !slices.Equal(got, tt.want) {
			t.Errorf("%s: seqs %v, want %v", tt.name, got, tt.want)
		}
		for _, p := range page.Publications {
			if !equalPub(p, sent[p.Seq-1]) {
				t.Errorf("%s: history has %+v, published %+v", tt.name, p, sent[p.Seq-1])
			}
		}
	}
}

// testEpoch: a room's epoch is stable, from before its first publication on.
func testEpoch(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	n.subscribe(t, "e") // History creates nothing; a subscription may
	before := n.history(t, "e", hub.HistoryQuery{}).Position
	if before.Seq != 0 || before.Epoch == "" {
		t.Fatalf("position of a new room = %+v, want seq 0 and an epoch", before)
	}
	if again := n.history(t, "e", hub.HistoryQuery{Limit: 5}).Position; again != before {
		t.Errorf("position read again = %+v, want %+v", again, before)
	}
	p := n.publish(t, "e", "first")
	if p.Epoch != before.Epoch || p.Seq != 1 {
		t.Errorf("first publication has seq %d epoch %q, want 1 and %q", p.Seq, p.Epoch, before.Epoch)
	}
	if after := n.history(t, "e", hub.HistoryQuery{}).Position; after != (hub.Position{Seq: 1, Epoch: before.Epoch}) {
		t.Errorf("position after the first publication = %+v", after)
	}
}

// testIdempotency: a repeated key publishes nothing and returns the first
// publication.
func testIdempotency(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	n.subscribe(t, "i")
	r := hub.PublishRequest{Message: message(t, "i", "once"), IdempotencyKey: "k1"}
	first, dup, err := n.b.Publish(t.Context(), "i", r)
	if err != nil || dup {
		t.Fatalf("first Publish = %v, duplicate %v", err, dup)
	}
	r.Message = message(t, "i", "a retry with other content")
	again, dup, err := n.b.Publish(t.Context(), "i", r)
	if err != nil || !dup {
		t.Fatalf("repeated Publish = %v, duplicate %v; want a duplicate", err, dup)
	}
	if !samePosition(again, first) {
		t.Errorf("duplicate returned %+v, want the seq and epoch of %+v", again, first)
	}
	other, dup, err := n.b.Publish(t.Context(), "i", hub.PublishRequest{Message: message(t, "i", "x"), IdempotencyKey: "k2"})
	if err != nil || dup || other.Seq != 2 {
		t.Errorf("Publish with another key = seq %d, %v, duplicate %v; want seq 2", other.Seq, err, dup)
	}
	n.rec.WaitPublications(t, "i", 2)
	n.settle(t)
	if got := seqs(n.rec.Publications("i")); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("delivered seqs %v, want [1 2]", got)
	}
	if got := seqs(n.history(t, "i", hub.HistoryQuery{Limit: 10}).Publications); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("history seqs %v, want [1 2]", got)
	}
}

// testConcurrentIdempotency: concurrent publishes with one key publish once.
func testConcurrentIdempotency(t *testing.T, newBroker NewBroker) {
	const workers = 16
	n := startNode(t, newBroker)
	r := hub.PublishRequest{Message: message(t, "ci", "once"), IdempotencyKey: "k"}
	pubs := make([]hub.Publication, workers)
	dups := make([]bool, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			var err error
			pubs[i], dups[i], err = n.b.Publish(t.Context(), "ci", r)
			if err != nil {
				t.Errorf("Publish: %v", err)
			}
		})
	}
	wg.Wait()
	if originals := workers - count(dups); originals != 1 {
		t.Errorf("%d publishes were not duplicates, want 1", originals)
	}
	for _, p := range pubs {
		if !samePosition(p, pubs[0]) {
			t.Errorf("publication %+v differs from %+v", p, pubs[0])
		}
	}
	if page := n.history(t, "ci", hub.HistoryQuery{Limit: 10}); len(page.Publications) != 1 {
		t.Errorf("history has %d publications, want 1", len(page.Publications))
	}
}

// testReady: a started broker on a working backend is ready.
func testReady(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	if err := n.b.Ready(t.Context()); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func count(bs []bool) int {
	c := 0
	for _, b := range bs {
		if b {
			c++
		}
	}
	return c
}
