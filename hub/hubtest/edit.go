package hubtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// change publishes an edit (data not empty) or a delete of target in room as
// from, checked against author, and returns the publication or the error.
func (n *node) change(t *testing.T, room, from, author string, target uint64, data, key string) (hub.Publication, bool, error) {
	t.Helper()
	r := hub.PublishRequest{IdempotencyKey: key, Target: hub.Target{Seq: target, Author: author, Delete: data == ""}}
	if data == "" {
		r.Message = protocol.NewDeleted(room, from, target, 1700000000000)
	} else {
		m, err := protocol.NewEdited(room, from, target, json.RawMessage(data), 1700000000000)
		if err != nil {
			t.Fatalf("NewEdited: %v", err)
		}
		r.Message = m
	}
	return n.b.Publish(t.Context(), room, r)
}

// mustChange is change that fails t on an error or a duplicate, and checks
// that the publication's frame is the template's.
func (n *node) mustChange(t *testing.T, room, from, author string, target uint64, data string) hub.Publication {
	t.Helper()
	p, dup, err := n.change(t, room, from, author, target, data, "")
	if err != nil || dup {
		t.Fatalf("change of %s#%d by %s = %v, duplicate %v", room, target, from, err, dup)
	}
	return p
}

// refused checks that a change is refused with want.
func (n *node) refused(t *testing.T, room, from, author string, target uint64, data string, want error) {
	t.Helper()
	p, _, err := n.change(t, room, from, author, target, data, "")
	if !errors.Is(err, want) {
		t.Errorf("change of %s#%d by %s (author %q, data %q) = %+v, %v; want %v", room, target, from, author, data, p, err, want)
	}
}

// testEdits: edits and deletes are publications with seqs of their own,
// checked for authorship, refused for what is not a live message of
// history, delivered, and kept in history in seq order with the messages.
func testEdits(t *testing.T, newBroker NewBroker) {
	const room = "ed"
	n := startNode(t, newBroker)
	n.refused(t, room, "alice", "alice", 1, `"x"`, hub.ErrNotFound) // a room without history
	n.subscribe(t, room)
	n.publish(t, room, "one") // 1, from alice
	bob, err := protocol.NewMessage(room, "bob", json.RawMessage(`"two"`), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.b.Publish(t.Context(), room, hub.PublishRequest{Message: bob}); err != nil { // 2, from bob
		t.Fatalf("Publish: %v", err)
	}
	edited := n.mustChange(t, room, "alice", "alice", 1, `{"text":"one!"}`) // 3
	want, _ := protocol.NewEdited(room, "alice", 1, json.RawMessage(`{"text":"one!"}`), 1700000000000)
	if edited.Seq != 3 || string(edited.Frame) != string(want.Frame(3)) {
		t.Errorf("edit = seq %d frame %s, want seq 3 frame %s", edited.Seq, edited.Frame, want.Frame(3))
	}
	n.refused(t, room, "alice", "alice", 2, `"mine now"`, hub.ErrNotAuthor)
	n.refused(t, room, "alice", "alice", 2, "", hub.ErrNotAuthor)
	n.mustChange(t, room, "system", "", 2, `"moderated"`)           // 4: any author
	n.refused(t, room, "alice", "alice", 3, `"x"`, hub.ErrNotFound) // an edit is not a message
	n.refused(t, room, "alice", "", 4, "", hub.ErrNotFound)
	n.refused(t, room, "alice", "alice", 5, `"x"`, hub.ErrNotFound) // not yet
	n.refused(t, room, "alice", "alice", 1<<40, "", hub.ErrNotFound)
	n.mustChange(t, room, "alice", "alice", 1, "") // 5
	n.refused(t, room, "alice", "alice", 1, `"again"`, hub.ErrNotFound)
	n.refused(t, room, "alice", "alice", 1, "", hub.ErrNotFound)
	n.refused(t, room, "system", "", 1, "", hub.ErrNotFound)
	n.mustChange(t, room, "bob", "bob", 2, `"three"`) // 6: edited twice

	n.rec.WaitPublications(t, room, 6)
	n.settle(t)
	got := n.rec.Publications(room)
	page := n.history(t, room, hub.HistoryQuery{Limit: 10})
	if !slices.EqualFunc(got, page.Publications, equalPub) {
		t.Errorf("delivered %s\nhistory %s", describePubs(got), describePubs(page.Publications))
	}
	wantTypes := "1 message alice, 2 message bob, 3 message_edited alice 1, 4 message_edited system 2, 5 message_deleted alice 1, 6 message_edited bob 2"
	if d := describePubs(page.Publications); d != wantTypes {
		t.Errorf("history\n got %s\nwant %s", d, wantTypes)
	}
	if page.Position.Seq != 6 {
		t.Errorf("position %+v, want seq 6", page.Position)
	}
}

// testEditIdempotency: a repeated key changes nothing and returns the first
// publication, even when the target is deleted by then; a refused change
// keeps no key.
func testEditIdempotency(t *testing.T, newBroker NewBroker) {
	const room = "ei"
	n := startNode(t, newBroker)
	n.publish(t, room, "one")
	if _, _, err := n.change(t, room, "alice", "bob", 1, "", "k"); !errors.Is(err, hub.ErrNotAuthor) {
		t.Fatalf("delete by another = %v, want ErrNotAuthor", err)
	}
	first, dup, err := n.change(t, room, "alice", "alice", 1, "", "k")
	if err != nil || dup || first.Seq != 2 {
		t.Fatalf("delete = %+v, %v, duplicate %v; want seq 2", first, err, dup)
	}
	again, dup, err := n.change(t, room, "alice", "alice", 1, "", "k")
	if err != nil || !dup || !samePosition(again, first) {
		t.Errorf("repeated delete = %+v, %v, duplicate %v; want a duplicate of %+v", again, err, dup, first)
	}
	if page := n.history(t, room, hub.HistoryQuery{Limit: 10}); page.Position.Seq != 2 {
		t.Errorf("position %+v after a repeat, want seq 2", page.Position)
	}
}

// testEditTrimmed: a message history no longer holds cannot be changed, and
// a delete's record goes with its message: deleting messages as history
// moves on keeps working, the newest deleted still refused.
func testEditTrimmed(t *testing.T, newBroker NewBroker) {
	const room = "et"
	n := startNode(t, newBroker)
	for range 3 * HistorySize {
		p := n.publish(t, room, "m")
		n.mustChange(t, room, "alice", "alice", p.Seq, "")
	}
	n.refused(t, room, "alice", "alice", 1, `"x"`, hub.ErrNotFound)
	last := n.history(t, room, hub.HistoryQuery{}).Position.Seq
	n.refused(t, room, "alice", "alice", last-1, `"x"`, hub.ErrNotFound)
	p := n.publish(t, room, "m")
	n.mustChange(t, room, "alice", "alice", p.Seq, `"kept"`)
}

// testClusterEdits: what one node changes, the other delivers; two nodes
// deleting one message at once: one wins, the other is refused.
func testClusterEdits(t *testing.T, a, b *node) {
	const room = "ce"
	a.subscribe(t, room)
	m := b.publish(t, room, "one")
	e := b.mustChange(t, room, "alice", "alice", m.Seq, `"one!"`)
	got := a.rec.WaitPublications(t, room, 2)
	if !equalPub(got[1], e) {
		t.Errorf("node a got %+v, want %+v", got[1], e)
	}
	for round := range 5 {
		m := a.publish(t, room, "race")
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, n := range []*node{a, b} {
			wg.Go(func() { _, _, errs[i] = n.change(t, room, "alice", "alice", m.Seq, "", "") })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, hub.ErrNotFound):
				t.Errorf("round %d: delete = %v", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d deletes succeeded (%v), want 1", round, won, errs)
		}
	}
}

// describePubs describes each publication by its seq, type, from and target.
func describePubs(pubs []hub.Publication) string {
	var out []string
	for _, p := range pubs {
		var f struct {
			Type, From string
			Target     uint64
		}
		json.Unmarshal(p.Frame, &f)
		s := fmt.Sprintf("%d %s %s", p.Seq, f.Type, f.From)
		if f.Target != 0 {
			s += fmt.Sprintf(" %d", f.Target)
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// recoverEdits: alice, away while bob sent, edited and deleted messages,
// recovers every change exactly once, in order, then the live ones.
func recoverEdits(t *testing.T, newBroker NewBroker, v variant) {
	const room = "lobby"
	h := startHub(t, newBroker)
	members := []string{"alice"}
	first := h.publish(t, room, `"before"`)
	if v == firstOnNode {
		dave := h.connect(t, "dave")
		h.join(t, dave, hub.JoinRequest{Room: room})
		if err := h.Leave(t.Context(), dave, room); err != nil {
			t.Fatalf("dave leaves: %v", err)
		}
	} else {
		carol := h.connect(t, "carol")
		h.join(t, carol, hub.JoinRequest{Room: room})
		members = append(members, "carol")
		h.lag.waitEvent(t)
	}
	if v == lagging {
		h.lag.hold()
	}
	since := h.position(t, room)
	m := h.publish(t, room, `"typo"`)
	h.change(t, room, m, `"fixed"`)
	h.change(t, room, first, `"before!"`)
	h.change(t, room, m, "")
	pos := h.position(t, room)
	alice := h.connect(t, "alice")
	h.join(t, alice, hub.JoinRequest{Room: room, Recover: true, Since: since.Seq, Epoch: since.Epoch})
	h.lag.release()
	live := h.change(t, room, first, "")

	want := []string{
		fmt.Sprintf("joined %s [%s] seq %d epoch %s recovered true", room, strings.Join(members, " "), pos.Seq, pos.Epoch),
		fmt.Sprintf(`message %s#%d from bob "typo"`, room, m),
		fmt.Sprintf(`edited %s#%d from bob of %d "fixed"`, room, m+1, m),
		fmt.Sprintf(`edited %s#%d from bob of %d "before!"`, room, m+2, first),
		fmt.Sprintf(`deleted %s#%d from bob of %d`, room, m+3, m),
		fmt.Sprintf(`deleted %s#%d from bob of %d`, room, live, first),
	}
	got := alice.waitFor(t, want[len(want)-1])
	if !slices.Equal(got, want) {
		t.Errorf("alice got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// change edits (data not empty) or deletes bob's message seq as bob and
// returns the change's seq.
func (h *testHub) change(t *testing.T, room string, seq uint64, data string) uint64 {
	t.Helper()
	var pos hub.Position
	var err error
	if data == "" {
		pos, err = h.DeleteAs(t.Context(), room, "bob", "bob", seq, "")
	} else {
		pos, err = h.EditAs(t.Context(), room, "bob", "bob", seq, json.RawMessage(data), "")
	}
	if err != nil {
		t.Fatalf("change %s#%d: %v", room, seq, err)
	}
	return pos.Seq
}
