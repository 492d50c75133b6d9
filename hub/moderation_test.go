package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// opSession is a session whose user operates the rooms starting with prefix.
type opSession struct {
	*recSession
	prefix string
}

func (s *opSession) Operates(room string) bool { return strings.HasPrefix(room, s.prefix) }

// connectOp connects a session of user that operates the rooms starting
// with prefix.
func (h *testHub) connectOp(user, prefix string) *opSession {
	h.t.Helper()
	h.n++
	rs := &recSession{id: user + "-op", user: user, flush: h.flush, manual: true}
	s := &opSession{recSession: rs, prefix: prefix}
	if err := h.Connect(context.Background(), s); err != nil {
		h.t.Fatalf("connect %s: %v", user, err)
	}
	h.t.Cleanup(func() { h.Disconnect(s) })
	return s
}

// code returns the protocol code Describe gives err.
func code(err error) string {
	if err == nil {
		return ""
	}
	return hub.Describe(err).Code
}

func TestBanEvictsAndRefusesJoin(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob, bob2 := h.connect("alice"), h.connect("bob"), h.connect("bob")
	h.join(alice, "lobby")
	h.join(bob, "lobby")
	h.join(bob2, "lobby")
	h.join(bob2, "other")
	alice.take(t)
	bob.take(t)
	bob2.take(t)

	if _, err := h.Moderate(t.Context(), "lobby", hub.ModAction{Kind: hub.ModBan, User: "bob", Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*recSession{bob, bob2} {
		if got := s.all(t); len(got) == 0 || got[len(got)-1].Type != "left" {
			t.Errorf("%s got %v, want a left frame", s.id, got)
		}
	}
	if got, want := string(bob.frames[len(bob.frames)-1]), `{"type":"left","room":"lobby","reason":"banned"}`; got != want {
		t.Errorf("left frame %s, want %s", got, want)
	}
	if got := h.Rooms(bob2); !slices.Equal(got, []string{"other"}) {
		t.Errorf("bob2's rooms %v, want [other]", got)
	}
	if _, err := h.Send(t.Context(), bob, "lobby", json.RawMessage(`"x"`), nil); !errors.Is(err, hub.ErrNotMember) {
		t.Errorf("banned bob's send = %v, want ErrNotMember", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		members, err := h.Members(t.Context(), "lobby")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(members, []string{"alice"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lobby's members %v, want [alice]", members)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := alice.take(t); got != "member_left lobby bob" {
		t.Errorf("alice got %q, want bob's member_left", got)
	}

	err := h.Join(t.Context(), bob, hub.JoinRequest{Room: "lobby"})
	if e := hub.Describe(err); e.Code != protocol.CodeBanned || e.Until != 0 {
		t.Errorf("banned bob's join = %v (%+v), want code banned without until", err, e)
	}
	if got := h.Rooms(bob); len(got) != 0 {
		t.Errorf("bob's rooms after the refused join %v", got)
	}
	if _, err := h.Moderate(t.Context(), "lobby", hub.ModAction{Kind: hub.ModUnban, User: "bob"}); err != nil {
		t.Fatal(err)
	}
	h.join(bob, "lobby")

	a, err := h.Moderate(t.Context(), "timed", hub.ModAction{Kind: hub.ModBan, User: "bob", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Join(t.Context(), bob, hub.JoinRequest{Room: "timed"})
	if e := hub.Describe(err); e.Code != protocol.CodeBanned || e.Until != a.Until || a.Until == 0 {
		t.Errorf("timed ban's join = %+v, want until %d", e, a.Until)
	}
}

func TestMuteFreezeAndOperators(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	op := h.connectOp("olga", "team-")
	for _, s := range []hub.Session{alice, bob, op} {
		if err := h.Join(t.Context(), s, hub.JoinRequest{Room: "team-a"}); err != nil {
			t.Fatal(err)
		}
	}
	h.flush()
	alice.take(t)
	bob.take(t)
	op.take(t)
	bobSeq := h.send(bob, "team-a", `"hi"`)
	alice.take(t)
	bob.take(t)
	op.take(t)

	if _, err := h.ModerateAs(t.Context(), alice, "team-a", hub.ModAction{Kind: hub.ModMute, User: "bob"}); !errors.Is(err, hub.ErrNotOperator) || code(err) != protocol.CodeForbidden {
		t.Errorf("alice's mute = %v, want ErrNotOperator (forbidden)", err)
	}
	if _, err := h.ModerateAs(t.Context(), op, "lobby", hub.ModAction{Kind: hub.ModFreeze}); !errors.Is(err, hub.ErrNotOperator) {
		t.Errorf("olga's freeze of a room she does not operate = %v", err)
	}
	if _, err := h.ModerateAs(t.Context(), op, "team-a", hub.ModAction{Kind: hub.ModMute, User: "bob"}); err != nil {
		t.Fatal(err)
	}
	if got := bob.take(t); got != "muted" {
		t.Errorf("bob got %q, want muted", got)
	}
	if got := alice.take(t); got != "" {
		t.Errorf("alice got %q, want nothing", got)
	}
	_, err := h.Send(t.Context(), bob, "team-a", json.RawMessage(`"x"`), nil)
	if code(err) != protocol.CodeMuted {
		t.Errorf("muted bob's send = %v, want code muted", err)
	}
	if _, err := h.Edit(t.Context(), bob, "team-a", bobSeq, json.RawMessage(`"y"`), nil); code(err) != protocol.CodeMuted {
		t.Errorf("muted bob's edit = %v, want code muted", err)
	}
	if _, err := h.Delete(t.Context(), bob, "team-a", bobSeq, nil); code(err) != protocol.CodeMuted {
		t.Errorf("muted bob's delete of his own message = %v, want code muted", err)
	}
	h.send(alice, "team-a", `"fine"`)

	if _, err := h.ModerateAs(t.Context(), op, "team-a", hub.ModAction{Kind: hub.ModFreeze}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*recSession{alice, bob, op.recSession} {
		if got := s.take(t); !strings.HasSuffix(got, "room_updated") {
			t.Errorf("%s got %q, want room_updated last", s.id, got)
		}
	}
	if _, err := h.Send(t.Context(), alice, "team-a", json.RawMessage(`"x"`), nil); code(err) != protocol.CodeFrozen {
		t.Errorf("alice's send, frozen = %v, want code frozen", err)
	}
	if _, err := h.Publish(t.Context(), "team-a", "system", json.RawMessage(`"api"`), ""); err != nil {
		t.Errorf("API publish, frozen: %v", err)
	}
	if _, err := h.Send(t.Context(), op, "team-a", json.RawMessage(`"op"`), nil); err != nil {
		t.Errorf("operator's send, frozen: %v", err)
	}
	if _, err := h.Delete(t.Context(), alice, "team-a", bobSeq, nil); code(err) != protocol.CodeFrozen {
		t.Errorf("alice's delete of bob's message, frozen = %v, want frozen", err)
	}
	if _, err := h.Delete(t.Context(), op, "team-a", bobSeq, nil); err != nil {
		t.Errorf("operator's delete of bob's message: %v", err)
	}
	if _, err := h.Moderate(t.Context(), "team-a", hub.ModAction{Kind: hub.ModUnmute, User: "bob"}); err != nil {
		t.Fatal(err)
	}
	if got := bob.take(t); !strings.HasSuffix(got, "unmuted") {
		t.Errorf("bob got %q, want unmuted last", got)
	}
	st, err := h.Moderation(t.Context(), "team-a")
	if err != nil || !st.Frozen || len(st.Mutes) != 0 {
		t.Errorf("state %+v, %v: want frozen, no mutes", st, err)
	}
}

// banningBroker bans user from every room whose history a join reads, after
// its ban check: as if the ban landed on another node in between.
type banningBroker struct {
	*memorybroker.Broker
	t    testing.TB
	user string
}

func (b *banningBroker) History(ctx context.Context, room string, q hub.HistoryQuery) (hub.HistoryPage, error) {
	left := protocol.Encode(protocol.Left{Type: protocol.TypeLeft, Room: room, Reason: protocol.ReasonBanned})
	if err := b.Moderate(ctx, room, hub.ModAction{Kind: hub.ModBan, User: b.user}, hub.Event{Kind: hub.EventBan, User: b.user, Frame: left}); err != nil {
		return hub.HistoryPage{}, err
	}
	flushBroker(b.t, b.Broker) // the ban event reaches the joining member
	return b.Broker.History(ctx, room, q)
}

// TestBanDuringJoin: a ban that reaches a member while it joins fails the
// join with banned, and the session gets no joined frame and is in no room.
func TestBanDuringJoin(t *testing.T) {
	t.Parallel()
	mb := memorybroker.New(memorybroker.Config{})
	b := &banningBroker{Broker: mb, t: t, user: "bob"}
	h := newHubWith(t, b, memorybroker.NewPresence(mb), hub.Config{})
	bob := h.connect("bob")
	err := h.Join(t.Context(), bob, hub.JoinRequest{Room: "lobby"})
	if code(err) != protocol.CodeBanned {
		t.Errorf("join = %v, want code banned", err)
	}
	if got := bob.take(t); got != "" {
		t.Errorf("bob got %q, want nothing", got)
	}
	if got := h.Rooms(bob); len(got) != 0 {
		t.Errorf("bob's rooms %v", got)
	}
	if members, err := h.Members(t.Context(), "lobby"); err != nil || len(members) != 0 {
		t.Errorf("lobby's members %v, %v; want none", members, err)
	}
}
