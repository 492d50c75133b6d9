package hubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// HistorySize is the history size, in publications per room, that the
// constructors given to TestBroker and TestCluster must configure.
const HistorySize = 10

// NewBroker returns a new broker that is not started yet and its Presence, or
// a nil Presence when the implementation has none (the presence tests are
// then skipped). For TestBroker every call must return a broker on a backend
// of its own; the suite starts the broker and closes it when t ends.
type NewBroker func(t *testing.T) (hub.Broker, hub.Presence)

// closeTimeout bounds a broker's Close at the end of a test.
const closeTimeout = 10 * time.Second

// node is one started broker with the Recorder it delivers to and a room it
// is subscribed to for fencing.
type node struct {
	b     hub.Broker
	p     hub.Presence
	rec   *Recorder
	fence string
}

var nodeIDs atomic.Uint64

// startNode creates a broker with newBroker, starts it delivering to a new
// Recorder and subscribes it to its fence room.
func startNode(t *testing.T, newBroker NewBroker) *node {
	t.Helper()
	b, p := newBroker(t)
	n := &node{b: b, p: p, rec: NewRecorder(), fence: fmt.Sprintf("fence.%d", nodeIDs.Add(1))}
	if err := b.Start(context.Background(), n.rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		n.rec.Check(t)
	})
	n.subscribe(t, n.fence)
	return n
}

// settle returns once everything published on this node before the call
// was delivered: it publishes to the node's fence room and waits for that
// publication. A test checks that something was not delivered after settle.
//
// It relies on a broker delivering a node's publications of different rooms
// in the order they were published when nothing is lost and no room waits
// for a history read: the Redis broker holds a room's publications back
// while it resyncs the room just after subscribing. So a test first waits
// for what it expects, and settles only to see that nothing more comes. A
// broker that delivers rooms and users from several goroutines, so in no
// order across them (the memory broker), has a Flush method that waits for
// what it queued: settle calls it.
func (n *node) settle(t *testing.T) {
	t.Helper()
	if f, ok := n.b.(interface{ Flush(context.Context) error }); ok {
		if err := f.Flush(t.Context()); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	p := n.publish(t, n.fence, "fence")
	n.rec.Wait(t, "the fence publication", func() bool {
		for _, q := range n.rec.Publications(n.fence) {
			if q.Seq == p.Seq && q.Epoch == p.Epoch {
				return true
			}
		}
		return false
	})
}

func (n *node) subscribe(t *testing.T, room string) {
	t.Helper()
	if err := n.b.SubscribeRoom(t.Context(), room); err != nil {
		t.Fatalf("SubscribeRoom(%q): %v", room, err)
	}
}

func (n *node) unsubscribe(t *testing.T, room string) {
	t.Helper()
	if err := n.b.UnsubscribeRoom(t.Context(), room); err != nil {
		t.Fatalf("UnsubscribeRoom(%q): %v", room, err)
	}
}

// publish publishes a message with text to room and returns its publication.
func (n *node) publish(t *testing.T, room, text string) hub.Publication {
	t.Helper()
	p, dup, err := n.b.Publish(t.Context(), room, hub.PublishRequest{Message: message(t, room, text)})
	if err != nil || dup {
		t.Fatalf("Publish(%q) = %v, duplicate %v", room, err, dup)
	}
	return p
}

func (n *node) history(t *testing.T, room string, q hub.HistoryQuery) hub.HistoryPage {
	t.Helper()
	page, err := n.b.History(t.Context(), room, q)
	if err != nil {
		t.Fatalf("History(%q, %+v): %v", room, q, err)
	}
	return page
}

// message returns the template of a message with text as its data.
func message(t testing.TB, room, text string) protocol.MessageTemplate {
	t.Helper()
	data, _ := json.Marshal(map[string]string{"text": text})
	m, err := protocol.NewMessage(room, "alice", data, 1700000000000)
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	return m
}

// seqs returns the seqs of pubs.
func seqs(pubs []hub.Publication) []uint64 {
	s := make([]uint64, len(pubs))
	for i, p := range pubs {
		s[i] = p.Seq
	}
	return s
}

// span returns the seqs from first to last.
func span(first, last uint64) []uint64 {
	var s []uint64
	for q := first; q <= last; q++ {
		s = append(s, q)
	}
	return s
}

func equalPub(a, b hub.Publication) bool {
	return a.Seq == b.Seq && a.Epoch == b.Epoch && bytes.Equal(a.Frame, b.Frame)
}

func equalEvent(a, b hub.Event) bool {
	return a.Kind == b.Kind && a.Exclude == b.Exclude && a.User == b.User && bytes.Equal(a.Frame, b.Frame)
}
