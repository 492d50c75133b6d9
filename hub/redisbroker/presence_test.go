package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
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
		got, err := memberList(ctx, b, "r")
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
	got, err := memberList(t.Context(), b, room)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Members(%q) = %q, %v; want %q", room, got, err, want)
	}
}

// memberList returns the first 1000 members of room.
func memberList(ctx context.Context, b *Broker, room string) ([]string, error) {
	page, err := b.Members(ctx, room, "", 1000)
	return page.Users, err
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

// memberEvents returns the member events rec got for room, as "joined ann"
// and "left ann".
func memberEvents(rec *hubtest.Recorder, room string) []string {
	var out []string
	for _, e := range rec.RoomEvents(room) {
		var f struct{ Type, User string }
		if json.Unmarshal(e.Frame, &f) == nil && strings.HasPrefix(f.Type, "member_") {
			out = append(out, strings.TrimPrefix(f.Type, "member_")+" "+f.User)
			if e.Exclude != f.User {
				out = append(out, "(not excluding "+f.User+")")
			}
		}
	}
	return out
}

func waitEvents(t *testing.T, rec *hubtest.Recorder, room string, want ...string) {
	t.Helper()
	rec.Wait(t, fmt.Sprintf("member events %q", want), func() bool {
		return len(memberEvents(rec, room)) >= len(want)
	})
	if got := memberEvents(rec, room); !slices.Equal(got, want) {
		t.Errorf("member events of %s = %q, want %q", room, got, want)
	}
}

// TestPresenceAnnounces: presence announces member_joined when a user is
// first in a room on any node and member_left when the last entry goes,
// each once, to every node subscribed to the room.
func TestPresenceAnnounces(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	a, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "a"})
	b, rec := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "b"})
	if err := b.SubscribeRoom(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	add(t, a, "r", "ann", true)
	add(t, b, "r", "ann", false)
	remove(t, a, "r", "ann", false)
	remove(t, b, "r", "ann", true)
	add(t, b, "r", "bob", true)
	waitEvents(t, rec, "r", "joined ann", "left ann", "joined bob")
}

// TestPresenceCrashedNodeLeaves: the users of a node that crashed leave the
// rooms when their entries expire, announced once by one surviving node.
func TestPresenceCrashedNodeLeaves(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const ttl = 600 * time.Millisecond
	prefix := uniquePrefix()
	a, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "a", PresenceTTL: ttl})
	b, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "b", PresenceTTL: ttl})
	c, rec := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "c", PresenceTTL: ttl})
	if err := c.SubscribeRoom(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	add(t, b, "r", "bob", true) // b and c both refresh the room
	add(t, c, "r", "cat", true)
	add(t, a, "r", "ann", true)
	waitEvents(t, rec, "r", "joined bob", "joined cat", "joined ann")
	a.crash()
	waitEvents(t, rec, "r", "joined bob", "joined cat", "joined ann", "left ann")
	time.Sleep(ttl) // more refreshes: still announced once
	waitEvents(t, rec, "r", "joined bob", "joined cat", "joined ann", "left ann")
	members(t, b, "r", "bob", "cat")
}

// TestPresenceRemoveDuringOutage: a removal while Redis is down fails, and
// is made, with its member_left, once Redis is back.
func TestPresenceRemoveDuringOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	a, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "a"})
	b, rec := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "b"})
	if err := b.SubscribeRoom(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	add(t, a, "r", "ann", true)
	add(t, b, "r", "bob", true)
	waitEvents(t, rec, "r", "joined ann", "joined bob")
	srv.Stop()
	if _, err := a.Remove(t.Context(), "r", "ann"); err == nil {
		t.Fatal("Remove with Redis down: no error")
	}
	srv.Start()
	rec.Wait(t, "member_left ann", func() bool { return slices.Contains(memberEvents(rec, "r"), "left ann") })
	eventually(t, 10*time.Second, "members without ann", func() error {
		got, err := memberList(t.Context(), b, "r")
		if err == nil && !slices.Equal(got, []string{"bob"}) {
			err = fmt.Errorf("members %q", got)
		}
		return err
	})
}

// TestPresenceAfterRestart: after Redis restarts empty, member lists are
// refused until the nodes registered their users again, never partial.
func TestPresenceAfterRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	a, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "a"})
	b, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "b"})
	want := []string{"ann", "bob", "cat", "dan", "eve"}
	for i, u := range want {
		add(t, []*Broker{a, b}[i%2], "r", u, true)
	}
	srv.Stop()
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := memberList(t.Context(), a, "r")
		if err == nil {
			if !slices.Equal(got, want) {
				t.Fatalf("first member list after the restart = %q, want %q", got, want)
			}
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) {
			t.Fatalf("Members = %v, want an unavailable error while re-registering", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence still refused 10 s after the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func remove(t *testing.T, b *Broker, room, user string, last bool) {
	t.Helper()
	got, err := b.Remove(t.Context(), room, user)
	if err != nil || got != last {
		t.Errorf("node %s: Remove(%q, %q) = %v, %v; want last = %v", b.NodeID(), room, user, got, err, last)
	}
}

// TestPresencePagesAcrossNodes: a user present on several nodes is one
// member, listed once and counted once, and pages run across the nodes'
// users in name order.
func TestPresencePagesAcrossNodes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	a, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "a"})
	b, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: "b"})
	add(t, a, "r", "dan", true)
	add(t, b, "r", "ann", true)
	add(t, b, "r", "dan", false)
	add(t, a, "r", "cat", true)
	add(t, b, "r", "bob", true)
	var got []string
	after := ""
	for range 5 {
		page, err := a.Members(t.Context(), "r", after, 2)
		if err != nil {
			t.Fatalf("Members after %q: %v", after, err)
		}
		if page.Count != 4 {
			t.Errorf("page after %q counts %d members, want 4", after, page.Count)
		}
		got = append(got, page.Users...)
		if !page.More {
			break
		}
		after = page.Users[len(page.Users)-1]
	}
	if want := []string{"ann", "bob", "cat", "dan"}; !slices.Equal(got, want) {
		t.Errorf("pages list %q, want %q", got, want)
	}
	remove(t, a, "r", "dan", false)
	members(t, b, "r", "ann", "bob", "cat", "dan")
	remove(t, b, "r", "dan", true)
	members(t, b, "r", "ann", "bob", "cat")
}

// TestPresenceRebuildsUsers: a room whose users set is missing or stale (as
// written by a version that kept only the entries and the count hash) is
// listed whole: the members op rebuilds the set from the hash.
func TestPresenceRebuildsUsers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, _ := startBroker(t, srv, Config{KeyPrefix: uniquePrefix(), NodeID: "a"})
	add(t, a, "r", "ann", true)
	add(t, a, "r", "bob", true)
	if err := a.client.Del(t.Context(), a.presenceUsersKey("r")).Err(); err != nil {
		t.Fatal(err)
	}
	members(t, a, "r", "ann", "bob")
	if err := a.client.ZAdd(t.Context(), a.presenceUsersKey("r"), redis.Z{Member: "ghost"}).Err(); err != nil {
		t.Fatal(err)
	}
	members(t, a, "r", "ann", "bob")
	ttl, err := a.client.PTTL(t.Context(), a.presenceUsersKey("r")).Result()
	if err != nil || ttl <= 0 {
		t.Errorf("rebuilt users set has TTL %v, %v; want one", ttl, err)
	}
}
