package hubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The read-position cases: TestBroker runs the single-node ones (reads*),
// TestCluster the cluster ones (testClusterReads*). Every broker must
// implement hub.Reads.

// reads returns n's hub.Reads, failing t when the broker has none.
func (n *node) reads(t *testing.T) hub.Reads {
	t.Helper()
	r, ok := n.b.(hub.Reads)
	if !ok {
		t.Fatalf("%T does not implement hub.Reads", n.b)
	}
	return r
}

// publishFrom publishes a message from user to room.
func (n *node) publishFrom(t *testing.T, room, from string) hub.Publication {
	t.Helper()
	m, err := protocol.NewMessage(room, from, json.RawMessage(`"m"`), 1700000000000)
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	p, _, err := n.b.Publish(t.Context(), room, hub.PublishRequest{Message: m})
	if err != nil {
		t.Fatalf("Publish(%q) from %s: %v", room, from, err)
	}
	return p
}

func markRead(t *testing.T, r hub.Reads, user, room string, pos hub.Position, wantMoved bool) {
	t.Helper()
	moved, err := r.MarkRead(t.Context(), user, room, pos)
	if err != nil || moved != wantMoved {
		t.Errorf("MarkRead(%s, %s, %+v) = %v, %v; want moved %v", user, room, pos, moved, err, wantMoved)
	}
}

// unread checks Unread's read seq, count and capped flag.
func unread(t *testing.T, r hub.Reads, user, room string, upTo uint64, readSeq uint64, count int, capped bool) hub.Unread {
	t.Helper()
	u, err := r.Unread(t.Context(), user, room, upTo)
	if err != nil {
		t.Fatalf("Unread(%s, %s, %d): %v", user, room, upTo, err)
	}
	if u.Room != room || u.ReadSeq != readSeq || u.Count != count || u.Capped != capped {
		t.Errorf("Unread(%s, %s, %d) = %+v; want read seq %d, count %d, capped %v", user, room, upTo, u, readSeq, count, capped)
	}
	return u
}

// testReadPosition: a position moves only forward within an epoch; one of
// another epoch replaces it but counts as 0 in the room's epoch.
func testReadPosition(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	r := n.reads(t)
	unread(t, r, "carol", "never", 0, 0, 0, false)
	var epoch string
	for range 5 {
		epoch = n.publishFrom(t, "rp", "bob").Epoch
	}
	u := unread(t, r, "carol", "rp", 0, 0, 5, false)
	if u.Position != (hub.Position{Seq: 5, Epoch: epoch}) {
		t.Errorf("Unread position %+v, want seq 5 of epoch %s", u.Position, epoch)
	}
	markRead(t, r, "carol", "rp", hub.Position{Seq: 3, Epoch: epoch}, true)
	unread(t, r, "carol", "rp", 0, 3, 2, false)
	markRead(t, r, "carol", "rp", hub.Position{Seq: 2, Epoch: epoch}, false)
	markRead(t, r, "carol", "rp", hub.Position{Seq: 3, Epoch: epoch}, false)
	unread(t, r, "carol", "rp", 0, 3, 2, false)
	unread(t, r, "dave", "rp", 0, 0, 5, false) // positions are per user

	markRead(t, r, "carol", "rp", hub.Position{Seq: 4, Epoch: "000000000000"}, true)
	unread(t, r, "carol", "rp", 0, 0, 5, false)
	markRead(t, r, "carol", "rp", hub.Position{Seq: 1, Epoch: epoch}, true)
	unread(t, r, "carol", "rp", 0, 1, 4, false)
	markRead(t, r, "carol", "rp", hub.Position{Seq: 5, Epoch: epoch}, true)
	unread(t, r, "carol", "rp", 0, 5, 0, false)
}

// testUnreadCount: only other users' messages count, only message entries,
// and only up to upTo.
func testUnreadCount(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	r := n.reads(t)
	for _, from := range []string{"bob", "alice", "bob", "alice", "bob"} { // seqs 1-5
		n.publishFrom(t, "uc", from)
	}
	// An entry of another type (an edit, say) from bob: seq 6, not counted.
	other := protocol.MessageTemplate{
		Prefix: []byte(`{"type":"message_edited","room":"uc","seq":`),
		Suffix: []byte(`,"from":"bob","target":1,"data":"m2","ts":1}`),
	}
	p, _, err := n.b.Publish(t.Context(), "uc", hub.PublishRequest{Message: other})
	if err != nil {
		t.Fatalf("Publish an edit: %v", err)
	}
	unread(t, r, "alice", "uc", 0, 0, 3, false)
	unread(t, r, "bob", "uc", 0, 0, 2, false)
	unread(t, r, "alice", "uc", 4, 0, 2, false)
	markRead(t, r, "alice", "uc", hub.Position{Seq: 2, Epoch: p.Epoch}, true)
	unread(t, r, "alice", "uc", 0, 2, 2, false)
	markRead(t, r, "alice", "uc", hub.Position{Seq: 5, Epoch: p.Epoch}, true)
	unread(t, r, "alice", "uc", 0, 5, 0, false)
}

// testUnreadCapped: when history no longer reaches back to the position,
// the count is of what it holds, and capped.
func testUnreadCapped(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	r := n.reads(t)
	const total = HistorySize + 5 // history holds 6..15
	var epoch string
	for range total {
		epoch = n.publishFrom(t, "cap", "bob").Epoch
	}
	unread(t, r, "carol", "cap", 0, 0, HistorySize, true)
	markRead(t, r, "carol", "cap", hub.Position{Seq: 4, Epoch: epoch}, true)
	unread(t, r, "carol", "cap", 0, 4, HistorySize, true)
	markRead(t, r, "carol", "cap", hub.Position{Seq: 5, Epoch: epoch}, true)
	unread(t, r, "carol", "cap", 0, 5, HistorySize, false)
	markRead(t, r, "carol", "cap", hub.Position{Seq: 12, Epoch: epoch}, true)
	unread(t, r, "carol", "cap", 0, 12, 3, false)
}

// testUnreadRooms: a user's rooms are listed by name, a page at a time; a
// user has at most protocol.MaxReadRooms, the one written longest ago
// forgotten first.
func testUnreadRooms(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	r := n.reads(t)
	for _, room := range []string{"r2", "r1", "r3"} {
		p := n.publishFrom(t, room, "bob")
		n.publishFrom(t, room, "bob")
		markRead(t, r, "carol", room, hub.Position{Seq: 1, Epoch: p.Epoch}, true)
	}
	page := func(after string, limit int, want []string, wantMore bool) {
		t.Helper()
		rooms, more, err := r.UnreadRooms(t.Context(), "carol", after, limit)
		if err != nil {
			t.Fatalf("UnreadRooms: %v", err)
		}
		var got []string
		for _, u := range rooms {
			got = append(got, u.Room)
			if u.ReadSeq != 1 || u.Count != 1 || u.Position.Seq != 2 || u.Capped {
				t.Errorf("UnreadRooms: %+v, want read seq 1, count 1, at seq 2", u)
			}
		}
		if !slices.Equal(got, want) || more != wantMore {
			t.Errorf("UnreadRooms(after %q, limit %d) = %v, more %v; want %v, more %v", after, limit, got, more, want, wantMore)
		}
	}
	page("", 2, []string{"r1", "r2"}, true)
	page("r2", 2, []string{"r3"}, false)
	page("", 10, []string{"r1", "r2", "r3"}, false)
	if rooms, more, err := r.UnreadRooms(t.Context(), "nobody", "", 10); err != nil || len(rooms) != 0 || more {
		t.Errorf("UnreadRooms of a user without positions = %v, %v, %v", rooms, more, err)
	}

	markRead(t, r, "erin", "first", hub.Position{Seq: 1, Epoch: "e"}, true)
	time.Sleep(2 * time.Millisecond) // positions are stamped in milliseconds
	for i := range protocol.MaxReadRooms {
		markRead(t, r, "erin", fmt.Sprintf("room%04d", i), hub.Position{Seq: 1, Epoch: "e"}, true)
	}
	count, after := 0, ""
	for {
		rooms, more, err := r.UnreadRooms(t.Context(), "erin", after, hub.MaxUnreadPage)
		if err != nil {
			t.Fatalf("UnreadRooms: %v", err)
		}
		for _, u := range rooms {
			if u.Room == "first" {
				t.Errorf("the room written first is still listed beyond %d rooms", protocol.MaxReadRooms)
			}
		}
		count += len(rooms)
		if !more {
			break
		}
		after = rooms[len(rooms)-1].Room
	}
	if count != protocol.MaxReadRooms {
		t.Errorf("erin has %d rooms, want %d", count, protocol.MaxReadRooms)
	}
}

// testClusterReads: a position written through one node is read through
// the other, and outlives the node that wrote it.
func testClusterReads(t *testing.T, a, b *node) {
	p := a.publishFrom(t, "cr", "bob")
	a.publishFrom(t, "cr", "bob")
	markRead(t, a.reads(t), "carol", "cr", hub.Position{Seq: 1, Epoch: p.Epoch}, true)
	unread(t, b.reads(t), "carol", "cr", 0, 1, 1, false)
	markRead(t, b.reads(t), "carol", "cr", hub.Position{Seq: 1, Epoch: p.Epoch}, false)
}

// testClusterReadHubs runs the hub-level read cases on two hubs, each over
// a node of one cluster.
func testClusterReadHubs(t *testing.T, newCluster NewCluster) {
	t.Run("ReadReceipt", func(t *testing.T) {
		t.Parallel()
		testReadReceipt(t, newCluster(t))
	})
	t.Run("ReadsSurviveRestart", func(t *testing.T) {
		t.Parallel()
		testReadsSurviveRestart(t, newCluster(t))
	})
}

// readHub is a started hub.Hub over a broker of its own.
type readHub struct {
	*hub.Hub
	b    hub.Broker
	n    int
	gone map[*session]bool // disconnected by the test
}

// startReadHub starts a hub over a new node of newNode, both closed when t
// ends unless the test closed them before.
func startReadHub(t *testing.T, newNode NewBroker) *readHub {
	t.Helper()
	b, p := newNode(t)
	if p == nil {
		t.Skip("no Presence")
	}
	h := &readHub{Hub: hub.New(b, p, hub.Config{Logger: zerolog.New(zerolog.NewTestWriter(t))}), b: b, gone: make(map[*session]bool)}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.close(t) })
	return h
}

// close closes the hub and its broker; again, it does nothing more.
func (h *readHub) close(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := h.Close(ctx, protocol.CloseGoingAway, "test over"); err != nil {
		t.Errorf("hub Close: %v", err)
	}
	if err := h.b.Close(ctx); err != nil {
		t.Errorf("broker Close: %v", err)
	}
}

// connect connects a session of user, disconnected when t ends.
func (h *readHub) connect(t *testing.T, user string) *session {
	t.Helper()
	h.n++
	s := &session{id: fmt.Sprintf("%s-%d", user, h.n), user: user, changed: make(chan struct{})}
	if err := h.Connect(t.Context(), s); err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { h.disconnect(s) })
	return s
}

// disconnect disconnects s, once.
func (h *readHub) disconnect(s *session) {
	if !h.gone[s] {
		h.gone[s] = true
		h.Disconnect(s)
	}
}

func (h *readHub) join(t *testing.T, s *session, room string) {
	t.Helper()
	if err := h.Join(t.Context(), s, hub.JoinRequest{Room: room}); err != nil {
		t.Fatalf("%s joins %s: %v", s.user, room, err)
	}
}

// testReadReceipt: a read reported on one node reaches the room's members
// on the other as a read frame (not the reader's own sessions); a seq
// beyond the room's newest, or a room not joined, is refused.
func testReadReceipt(t *testing.T, newNode NewBroker) {
	ha, hb := startReadHub(t, newNode), startReadHub(t, newNode)
	alice, bob := ha.connect(t, "alice"), hb.connect(t, "bob")
	alice2 := ha.connect(t, "alice")
	hb.join(t, bob, "lobby")
	ha.join(t, alice, "lobby")
	ha.join(t, alice2, "lobby")
	var last uint64
	for range 3 {
		pos, err := hb.Publish(t.Context(), "lobby", "bob", json.RawMessage(`"m"`), "")
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		last = pos.Seq
	}
	alice.waitFor(t, fmt.Sprintf(`message lobby#%d from bob "m"`, last))
	const reads = 20 // coalesced: bob hears fewer, the last one surely
	for i := range reads {
		if err := ha.Read(t.Context(), alice, "lobby", 1+uint64(i)%last); err != nil {
			t.Fatalf("alice reads: %v", err)
		}
	}
	got := bob.waitFor(t, fmt.Sprintf("read lobby alice %d", last))
	if n := countPrefix(got, "read lobby alice "); n >= reads {
		t.Errorf("bob was told of %d reads of %d: not coalesced", n, reads)
	}

	err := ha.Read(t.Context(), alice, "lobby", last+1)
	if perr := hub.Describe(err); perr.Code != protocol.CodeBadRequest {
		t.Errorf("a read beyond the newest seq: %v, want bad_request", err)
	}
	carol := hb.connect(t, "carol")
	if err := hb.Read(t.Context(), carol, "lobby", 1); err != hub.ErrNotMember {
		t.Errorf("a read of a room not joined: %v, want ErrNotMember", err)
	}
	if err := hb.Read(t.Context(), bob, "lobby", last); err != nil {
		t.Fatalf("bob reads: %v", err)
	}
	alice.waitFor(t, fmt.Sprintf("read lobby bob %d", last))
	for _, s := range []*session{alice, alice2} {
		for _, f := range s.waitFor(t, fmt.Sprintf("read lobby bob %d", last)) {
			if f == fmt.Sprintf("read lobby alice %d", last) {
				t.Errorf("alice's session %s was told of her own read", s.id)
			}
		}
	}
}

// testReadsSurviveRestart: a position stored through one node is in the
// joined answer of a hub on a new node of the same backend, after the
// first node closed; its unread count is of other users' messages since.
func testReadsSurviveRestart(t *testing.T, newNode NewBroker) {
	ha := startReadHub(t, newNode)
	alice := ha.connect(t, "alice")
	ha.join(t, alice, "lobby")
	for _, from := range []string{"bob", "bob", "alice"} {
		if _, err := ha.Publish(t.Context(), "lobby", from, json.RawMessage(`"m"`), ""); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	alice.waitFor(t, `message lobby#3 from alice "m"`)
	if err := ha.Read(t.Context(), alice, "lobby", 2); err != nil {
		t.Fatalf("alice reads: %v", err)
	}
	ha.disconnect(alice)
	ha.close(t) // stores what is pending

	hc := startReadHub(t, newNode)
	for _, from := range []string{"bob", "alice", "bob"} { // 4-6
		if _, err := hc.Publish(t.Context(), "lobby", from, json.RawMessage(`"m"`), ""); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	again := hc.connect(t, "alice")
	hc.join(t, again, "lobby")
	var j protocol.Joined
	if err := json.Unmarshal(again.frameAt(t, 0), &j); err != nil || j.Type != protocol.TypeJoined {
		t.Fatalf("first frame %s, %v; want joined", again.frameAt(t, 0), err)
	}
	if j.Seq != 6 || j.ReadSeq != 2 || j.Unread != 2 || j.UnreadCapped {
		t.Errorf("joined seq %d read_seq %d unread %d capped %v; want 6, 2, 2, false", j.Seq, j.ReadSeq, j.Unread, j.UnreadCapped)
	}
}

// frameAt returns the session's i-th frame, failing t if it has fewer.
func (s *session) frameAt(t *testing.T, i int) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.frames) {
		t.Fatalf("session %s has %d frames, want a frame %d", s.id, len(s.frames), i)
	}
	return s.frames[i]
}

// countPrefix counts the strings of ss that start with prefix.
func countPrefix(ss []string, prefix string) int {
	n := 0
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
