package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestPresenceExpiry: a node keeps its entries alive; a node that stops
// refreshing (killed) loses them, and its registry entry, within PresenceTTL.
func TestPresenceExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const ttl = time.Second
	prefix := uniquePrefix()
	a, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "a", PresenceTTL: ttl})
	b, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "b", PresenceTTL: ttl})
	ctx := t.Context()
	add(t, a, "r", "ann", true)
	add(t, a, "r", "cat", true)
	add(t, b, "r", "ann", false)
	add(t, b, "r", "bob", true)
	time.Sleep(2 * ttl) // refreshed meanwhile
	members(t, b, "r", "ann", "bob", "cat")
	nodes(t, b, "a", "b")

	a.crash()
	eventually(t, 3*ttl, "a's entries expire", func() error {
		got, err := b.Members(ctx, "r")
		if err == nil && !slices.Equal(got, []string{"ann", "bob"}) {
			err = fmt.Errorf("members %q", got)
		}
		return err
	})
	eventually(t, 3*ttl, "a's registry entry expires", func() error {
		got, err := b.Nodes(ctx)
		if err == nil && !slices.Equal(got, []string{"b"}) {
			err = fmt.Errorf("nodes %q", got)
		}
		return err
	})
	if last, err := b.Remove(ctx, "r", "ann"); err != nil || !last {
		t.Errorf("Remove of the last live entry = %v, %v; want last", last, err)
	}
	add(t, b, "r", "cat", true)
}

// TestPresenceClose: Close removes the node's entries at once.
func TestPresenceClose(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	a, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "a"})
	b, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "b"})
	add(t, a, "r", "ann", true)
	add(t, b, "r", "bob", true)
	nodes(t, b, "a", "b")
	if err := a.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	members(t, b, "r", "bob")
	nodes(t, b, "b")
}

func add(t *testing.T, b *Broker, room, user string, first bool) {
	t.Helper()
	got, err := b.Add(t.Context(), room, user)
	if err != nil || got != first {
		t.Errorf("node %s: Add(%q, %q) = %v, %v; want first = %v", b.NodeID(), room, user, got, err, first)
	}
}

func members(t *testing.T, b *Broker, room string, want ...string) {
	t.Helper()
	got, err := b.Members(t.Context(), room)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Members(%q) = %q, %v; want %q", room, got, err, want)
	}
}

func nodes(t *testing.T, b *Broker, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := b.Nodes(ctx)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Nodes = %q, %v; want %q", got, err, want)
	}
}
