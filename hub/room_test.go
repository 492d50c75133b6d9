package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

func TestSendFanOut(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob, carol := h.connect("alice"), h.connect("bob"), h.connect("carol")
	h.join(alice, "lobby")
	h.join(bob, "lobby")
	h.join(carol, "lobby")
	alice.take(t)
	bob.take(t)
	carol.take(t)

	for i, s := range []*recSession{alice, bob, alice} {
		if got, want := h.send(s, "lobby", fmt.Sprintf(`{"n": %d}`, i)), uint64(i+1); got != want {
			t.Errorf("send %d: seq %d, want %d", i, got, want)
		}
	}
	// Everyone in the room, the sender included, gets every message, data
	// compacted.
	want := `message lobby#1 from alice {"n":0}; message lobby#2 from bob {"n":1}; message lobby#3 from alice {"n":2}`
	for _, s := range []*recSession{alice, bob, carol} {
		if got := s.take(t); got != want {
			t.Errorf("%s got %q, want %q", s.user, got, want)
		}
	}
	for _, f := range bob.all(t) {
		if f.Type == "message" && f.TS <= 0 {
			t.Errorf("message %d has ts %d", f.Seq, f.TS)
		}
	}
}

func TestSendNotMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")

	if _, err := h.Send(ctx, bob, "lobby", []byte(`1`), nil); !errors.Is(err, hub.ErrNotMember) {
		t.Errorf("Send: err = %v, want ErrNotMember", err)
	}
	if err := h.Typing(ctx, bob, "lobby"); !errors.Is(err, hub.ErrNotMember) {
		t.Errorf("Typing: err = %v, want ErrNotMember", err)
	}
	if err := h.Leave(ctx, bob, "lobby"); !errors.Is(err, hub.ErrNotMember) {
		t.Errorf("Leave: err = %v, want ErrNotMember", err)
	}
	if got := alice.take(t); got != "joined lobby [alice] seq 0" {
		t.Errorf("alice got %q", got)
	}
	if got, want := h.position("lobby").Seq, uint64(0); got != want {
		t.Errorf("seq = %d, want %d", got, want)
	}
}

func TestSeqPerRoom(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice := h.connect("alice")
	h.join(alice, "a")
	h.join(alice, "b")
	alice.take(t)
	for i := range 10 {
		room := []string{"a", "b"}[i%3/2] // a a b a a b …
		h.send(alice, room, `1`)
	}
	next := map[string]uint64{"a": 1, "b": 1}
	for _, f := range alice.all(t) {
		if f.Type != "message" {
			continue
		}
		if f.Seq != next[f.Room] {
			t.Errorf("room %s: seq %d, want %d", f.Room, f.Seq, next[f.Room])
		}
		next[f.Room] = f.Seq + 1
	}
	if next["a"] != 8 || next["b"] != 4 {
		t.Errorf("rooms got %d and %d messages, want 7 and 3", next["a"]-1, next["b"]-1)
	}
}

// TestConcurrentPublishers checks that, with many publishers at once, every
// member sees every message once, in one strictly increasing order of seq
// that is the same for all of them.
func TestConcurrentPublishers(t *testing.T) {
	t.Parallel()
	const publishers, each = 8, 200
	h := newHub(t, memorybroker.Config{HistorySize: publishers * each}, hub.Config{})
	var members []*recSession
	for i := range 5 {
		s := h.connect(fmt.Sprint("member", i))
		h.join(s, "lobby")
		members = append(members, s)
	}
	var pubs []*recSession
	for p := range publishers {
		s := h.connect(fmt.Sprint("pub", p))
		h.join(s, "lobby")
		pubs = append(pubs, s)
	}
	members = append(members, pubs...)
	var wg sync.WaitGroup
	for p, s := range pubs {
		wg.Go(func() {
			for i := range each {
				if _, err := h.Send(context.Background(), s, "lobby", fmt.Appendf(nil, `"%d/%d"`, p, i), nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	var first []string
	for _, s := range members {
		var got []string
		next := uint64(1)
		for _, f := range s.all(t) {
			if f.Type != "message" {
				continue
			}
			if f.Seq != next {
				t.Fatalf("%s: seq %d after %d", s.user, f.Seq, next-1)
			}
			next++
			got = append(got, string(f.Data))
		}
		if len(got) != publishers*each {
			t.Fatalf("%s got %d messages, want %d", s.user, len(got), publishers*each)
		}
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			t.Fatalf("%s saw another order than %s", s.user, members[0].user)
		}
	}
	// Each publisher's own messages are in the order it sent them.
	last := make(map[int]int)
	for _, d := range first {
		var p, i int
		fmt.Sscanf(d, `"%d/%d"`, &p, &i)
		if prev, ok := last[p]; ok && i != prev+1 {
			t.Fatalf("publisher %d: message %d after %d", p, i, prev)
		}
		last[p] = i
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{HistorySize: 10}, hub.Config{})
	alice := h.connect("alice")
	h.join(alice, "lobby")
	for i := 1; i <= 25; i++ {
		h.send(alice, "lobby", fmt.Sprint(i))
	}
	live := make(map[uint64]string)
	for _, f := range alice.all(t) {
		live[f.Seq] = f.String()
	}

	tests := []struct {
		before uint64
		limit  int
		want   []uint64
	}{
		{0, 100, seqs(16, 25)}, // the ring keeps the newest 10
		{0, 3, seqs(23, 25)},
		{20, 3, seqs(17, 19)},
		{17, 5, seqs(16, 16)},
		{16, 5, nil},
		{1, 5, nil},
		{1000, 4, seqs(22, 25)},
		{0, 0, nil}, // only the position
	}
	for _, tt := range tests {
		page, err := h.History(ctx, "lobby", tt.before, tt.limit, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, p := range page.Publications {
			got = append(got, p.Seq)
			var f frame
			decodeFrame(t, p.Frame, &f)
			if f.String() != live[p.Seq] || f.Seq != p.Seq {
				t.Errorf("history has %s, the room delivered %s", f, live[p.Seq])
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("History(before %d, limit %d) = %v, want %v", tt.before, tt.limit, got, tt.want)
		}
		if page.Position.Seq != 25 || page.Position.Epoch == "" {
			t.Errorf("position = %+v, want seq 25 and an epoch", page.Position)
		}
	}
}

// seqs returns from..to.
func seqs(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestTwoTabs checks that a user with two sessions in a room is announced
// once: member_joined when the first joins, member_left when the last
// leaves.
func TestTwoTabs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	tab1, tab2, bob := h.connect("alice"), h.connect("alice"), h.connect("bob")

	steps := []struct {
		do             func()
		tab1, tab2, bb string // what each then got
		members        string
	}{
		{func() { h.join(bob, "lobby") }, "", "", "joined lobby [bob] seq 0", "bob"},
		{func() { h.join(tab1, "lobby") }, "joined lobby [alice bob] seq 0", "", "member_joined lobby alice", "alice bob"},
		{func() { h.join(tab2, "lobby") }, "", "joined lobby [alice bob] seq 0", "", "alice bob"},
		{func() { h.send(bob, "lobby", `"hi"`) },
			`message lobby#1 from bob "hi"`, `message lobby#1 from bob "hi"`, `message lobby#1 from bob "hi"`, "alice bob"},
		{func() { leave(t, h, tab1, "lobby") }, "", "", "", "alice bob"},
		{func() { h.join(tab1, "lobby") }, "joined lobby [alice bob] seq 1", "", "", "alice bob"},
		{func() { tab1.disconnect() }, "", "", "", "alice bob"},
		{func() { leave(t, h, tab2, "lobby") }, "", "", "member_left lobby alice", "bob"},
	}
	for i, st := range steps {
		st.do()
		for _, c := range []struct {
			s    *recSession
			want string
		}{{tab1, st.tab1}, {tab2, st.tab2}, {bob, st.bb}} {
			if got := c.s.take(t); got != c.want {
				t.Errorf("step %d: %s got %q, want %q", i, c.s.id, got, c.want)
			}
		}
		members, err := h.Members(ctx, "lobby")
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(members); got != "["+st.members+"]" {
			t.Errorf("step %d: members %s, want [%s]", i, got, st.members)
		}
	}
}

func leave(t testing.TB, h *testHub, s *recSession, room string) {
	t.Helper()
	if err := h.Leave(context.Background(), s, room); err != nil {
		t.Fatalf("%s leaves %s: %v", s.user, room, err)
	}
}

// TestLeaveAndDisconnect checks that leaving and disconnecting both
// announce member_left, and that a user who left gets nothing more.
func TestLeaveAndDisconnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	h.join(alice, "games")
	h.join(bob, "lobby")
	h.join(bob, "games")
	alice.take(t)
	bob.take(t)

	leave(t, h, bob, "lobby")
	h.send(alice, "lobby", `1`)
	if got := alice.take(t); got != "member_left lobby bob; message lobby#1 from alice 1" {
		t.Errorf("alice got %q", got)
	}
	if got := bob.take(t); got != "" {
		t.Errorf("bob got %q after leaving", got)
	}
	if err := h.Leave(ctx, bob, "lobby"); !errors.Is(err, hub.ErrNotMember) {
		t.Errorf("second leave: err = %v, want ErrNotMember", err)
	}

	bob.disconnect()
	if got := alice.take(t); got != "member_left games bob" {
		t.Errorf("alice got %q", got)
	}
	for _, room := range []string{"lobby", "games"} {
		if members, _ := h.Members(ctx, room); !slices.Equal(members, []string{"alice"}) {
			t.Errorf("%s members = %v, want [alice]", room, members)
		}
	}
}

// TestRejoin checks that joining a room twice answers joined again without
// announcing or replaying anything.
func TestRejoin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	h.join(bob, "lobby")
	h.send(bob, "lobby", `1`)
	h.send(bob, "lobby", `2`)
	alice.take(t)
	bob.take(t)
	epoch := h.position("lobby").Epoch

	h.join(bob, "lobby")
	if got := bob.take(t); got != "joined lobby [alice bob] seq 2" {
		t.Errorf("bob got %q", got)
	}
	for _, req := range []struct {
		since uint64
		want  string
	}{
		{2, "joined lobby [alice bob] seq 2 recovered true"},
		{1, "joined lobby [alice bob] seq 2 recovered false"},
	} {
		err := h.Join(ctx, bob, hub.JoinRequest{Room: "lobby", Recover: true, Since: req.since, Epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		if got := bob.take(t); got != req.want {
			t.Errorf("rejoin since %d: bob got %q, want %q", req.since, got, req.want)
		}
	}
	if got := alice.take(t); got != "" {
		t.Errorf("alice got %q", got)
	}
	// Still one membership: one leave takes bob out.
	leave(t, h, bob, "lobby")
	if got := alice.take(t); got != "member_left lobby bob" {
		t.Errorf("alice got %q", got)
	}
}

// TestTyping checks that typing reaches the room's other users' sessions and
// none of the typer's.
func TestTyping(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	tab1, tab2, bob, carol := h.connect("alice"), h.connect("alice"), h.connect("bob"), h.connect("carol")
	h.join(tab1, "lobby")
	h.join(tab2, "lobby")
	h.join(bob, "lobby")
	h.join(carol, "elsewhere")
	for _, s := range []*recSession{tab1, tab2, bob, carol} {
		s.take(t)
	}

	if err := h.Typing(ctx, tab1, "lobby"); err != nil {
		t.Fatal(err)
	}
	if err := h.Typing(ctx, bob, "lobby"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    *recSession
		want string
	}{
		{tab1, "typing lobby bob"},
		{tab2, "typing lobby bob"},
		{bob, "typing lobby alice"},
		{carol, ""},
	} {
		if got := c.s.take(t); got != c.want {
			t.Errorf("%s got %q, want %q", c.s.user, got, c.want)
		}
	}
	// Typing is not stored.
	if got := h.position("lobby").Seq; got != 0 {
		t.Errorf("seq = %d after typing, want 0", got)
	}
}
