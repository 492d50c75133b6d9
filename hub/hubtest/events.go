package hubtest

import (
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
)

// sendUser calls SendUser and fails t on an error or an unexpected result.
func (n *node) sendUser(t *testing.T, user string, e hub.Event, key string, delivered, duplicate bool) {
	t.Helper()
	d, dup, err := n.b.SendUser(t.Context(), user, e, key)
	if err != nil {
		t.Fatalf("SendUser(%q, key %q): %v", user, key, err)
	}
	if d != delivered || dup != duplicate {
		t.Errorf("SendUser(%q, key %q) = delivered %v, duplicate %v; want %v, %v",
			user, key, d, dup, delivered, duplicate)
	}
}

// testSendUser: a user event is delivered only to a subscribed user, says
// so, and a key makes it happen once, but only once delivered.
func testSendUser(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	dm := hub.Event{Kind: hub.EventFrame, Exclude: "alice", Frame: []byte(`{"type":"dm"}`)}
	n.sendUser(t, "bob", dm, "", false, false)
	n.sendUser(t, "bob", dm, "d1", false, false) // not delivered: not remembered

	if err := n.b.SubscribeUser(t.Context(), "bob"); err != nil {
		t.Fatalf("SubscribeUser: %v", err)
	}
	n.sendUser(t, "bob", dm, "d1", true, false)
	n.sendUser(t, "bob", dm, "d1", true, true)
	kick := hub.Event{Kind: hub.EventKick}
	n.sendUser(t, "bob", kick, "", true, false)
	n.rec.Wait(t, "2 events for bob", func() bool { return len(n.rec.UserEvents("bob")) >= 2 })
	n.settle(t)
	got := n.rec.UserEvents("bob")
	if len(got) != 2 || !equalEvent(got[0], dm) || !equalEvent(got[1], kick) {
		t.Errorf("bob got %+v, want the dm once, then the kick", got)
	}

	if err := n.b.UnsubscribeUser(t.Context(), "bob"); err != nil {
		t.Fatalf("UnsubscribeUser: %v", err)
	}
	n.sendUser(t, "bob", dm, "", false, false)
	n.settle(t)
	if got := n.rec.UserEvents("bob"); len(got) != 2 {
		t.Errorf("bob got %d events, want 2: one was delivered after unsubscribing", len(got))
	}
}

// testConcurrentSendUser: concurrent sends with one key deliver once.
func testConcurrentSendUser(t *testing.T, newBroker NewBroker) {
	const workers = 16
	n := startNode(t, newBroker)
	if err := n.b.SubscribeUser(t.Context(), "carol"); err != nil {
		t.Fatalf("SubscribeUser: %v", err)
	}
	e := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"dm"}`)}
	dups := make([]bool, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			delivered, dup, err := n.b.SendUser(t.Context(), "carol", e, "k")
			if err != nil || !delivered {
				t.Errorf("SendUser = delivered %v, %v", delivered, err)
			}
			dups[i] = dup
		})
	}
	wg.Wait()
	if originals := workers - count(dups); originals != 1 {
		t.Errorf("%d sends were not duplicates, want 1", originals)
	}
	n.rec.Wait(t, "the event", func() bool { return len(n.rec.UserEvents("carol")) >= 1 })
	n.settle(t)
	if got := len(n.rec.UserEvents("carol")); got != 1 {
		t.Errorf("carol got %d events, want 1", got)
	}
}

// testBroadcastRoom: a room event reaches only subscribed rooms.
func testBroadcastRoom(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	n.subscribe(t, "b.on")
	typing := hub.Event{Kind: hub.EventFrame, Exclude: "alice", Frame: []byte(`{"type":"typing"}`)}
	kick := hub.Event{Kind: hub.EventKick, Exclude: "bob"}
	for _, room := range []string{"b.on", "b.off"} {
		for _, e := range []hub.Event{typing, kick} {
			if err := n.b.BroadcastRoom(t.Context(), room, e); err != nil {
				t.Fatalf("BroadcastRoom(%q): %v", room, err)
			}
		}
	}
	n.rec.Wait(t, "2 room events", func() bool { return len(n.rec.RoomEvents("b.on")) >= 2 })
	n.settle(t)
	got := n.rec.RoomEvents("b.on")
	if len(got) != 2 || !equalEvent(got[0], typing) || !equalEvent(got[1], kick) {
		t.Errorf("subscribed room got %+v, want the typing event then the kick", got)
	}
	if got := n.rec.RoomEvents("b.off"); len(got) != 0 {
		t.Errorf("unsubscribed room got %+v", got)
	}
}
