package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// waitRead waits until s was told that user read room up to seq, and
// returns what s got since the last take.
func waitRead(t *testing.T, s *recSession, room, user string, seq uint64) string {
	t.Helper()
	want := fmt.Sprintf("read %s %s %d", room, user, seq)
	got := ""
	deadline := time.Now().Add(10 * time.Second)
	for {
		if more := s.take(t); more != "" {
			got += more + "; "
		}
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was never told %q; got %s", s.user, want, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// joinedOf decodes the joined answer among frames.
func joinedOf(t *testing.T, s *recSession) protocol.Joined {
	t.Helper()
	s.settle()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.frames) - 1; i >= 0; i-- {
		var j protocol.Joined
		if json.Unmarshal(s.frames[i], &j) == nil && j.Type == protocol.TypeJoined {
			return j
		}
	}
	t.Fatalf("%s got no joined frame", s.user)
	return protocol.Joined{}
}

// TestReadTellsRoom: a read reaches the room's other members as a read
// frame, not the reader's own sessions; it is refused beyond the room's
// newest message and outside the room.
func TestReadTellsRoom(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, alice2, bob := h.connect("alice"), h.connect("alice"), h.connect("bob")
	for _, s := range []*recSession{alice, alice2, bob} {
		h.join(s, "lobby")
	}
	h.send(bob, "lobby", `"a"`)
	seq := h.send(bob, "lobby", `"b"`)
	alice.take(t)
	alice2.take(t)
	if err := h.Read(t.Context(), alice, "lobby", seq); err != nil {
		t.Fatalf("Read: %v", err)
	}
	waitRead(t, bob, "lobby", "alice", seq)
	if got := alice.take(t) + alice2.take(t); got != "" {
		t.Errorf("alice's sessions got %q, want nothing of their own read", got)
	}
	if err := h.Read(t.Context(), alice, "lobby", seq+1); hub.Describe(err).Code != protocol.CodeBadRequest {
		t.Errorf("a read beyond the newest message: %v, want bad_request", err)
	}
	if err := h.Read(t.Context(), alice, "elsewhere", 1); err != hub.ErrNotMember {
		t.Errorf("a read of a room not joined: %v, want ErrNotMember", err)
	}
}

// TestReadJoinedUnread: a joined answer carries the user's read position
// and the unread count, counting a read reported just before, on this
// node, though the node has not flushed it yet.
func TestReadJoinedUnread(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	h.join(bob, "lobby")
	for _, s := range []*recSession{bob, alice, bob, bob} { // 1-4
		h.send(s, "lobby", `"m"`)
	}
	h.flush()
	if err := h.Read(t.Context(), alice, "lobby", 2); err != nil {
		t.Fatalf("Read: %v", err)
	}
	again := h.connect("alice")
	h.join(again, "lobby")
	j := joinedOf(t, again)
	if j.Seq != 4 || j.ReadSeq != 2 || j.Unread != 2 || j.UnreadCapped {
		t.Errorf("joined seq %d read_seq %d unread %d capped %v; want 4, 2, 2, false", j.Seq, j.ReadSeq, j.Unread, j.UnreadCapped)
	}
	carol := h.connect("carol")
	h.join(carol, "lobby")
	if j := joinedOf(t, carol); j.ReadSeq != 0 || j.Unread != 4 {
		t.Errorf("carol's joined read_seq %d unread %d, want 0, 4", j.ReadSeq, j.Unread)
	}
	rooms, more, err := h.UnreadRooms(t.Context(), "alice", "", 10)
	if err != nil || more || len(rooms) != 1 || rooms[0].ReadSeq != 2 || rooms[0].Count != 2 {
		t.Errorf("UnreadRooms = %+v, %v, %v; want lobby read 2, 2 unread", rooms, more, err)
	}
}

// TestReadLargeRoom: in a room of more than protocol.MemberEventsMax
// members, reads are stored but nobody is told.
func TestReadLargeRoom(t *testing.T) {
	t.Parallel()
	b := memorybroker.New(memorybroker.Config{})
	p := memorybroker.NewPresence(b)
	h := newHubWith(t, b, p, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "big")
	h.join(bob, "big")
	seq := h.send(bob, "big", `"m"`)
	for i := range protocol.MemberEventsMax {
		if _, err := p.Add(context.Background(), "big", fmt.Sprintf("user%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	h.flush()
	bob.take(t)
	if err := h.Read(t.Context(), alice, "big", seq); err != nil {
		t.Fatalf("Read: %v", err)
	}
	rooms, _, err := h.UnreadRooms(t.Context(), "alice", "", 10) // stores it now
	if err != nil || len(rooms) != 1 || rooms[0].ReadSeq != seq {
		t.Fatalf("UnreadRooms = %+v, %v; want big read up to %d", rooms, err, seq)
	}
	if got := bob.take(t); got != "" {
		t.Errorf("bob, in a room of %d members, got %q", protocol.MemberEventsMax+2, got)
	}
}
