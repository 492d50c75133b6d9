package hubtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// moderate applies a to room with the event e, failing t on an error.
func (n *node) moderate(t *testing.T, room string, a hub.ModAction, e hub.Event) {
	t.Helper()
	if err := n.b.Moderate(t.Context(), room, a, e); err != nil {
		t.Fatalf("Moderate(%q, %+v): %v", room, a, err)
	}
}

// moderation reads room's moderation state, of user only when not "".
func (n *node) moderation(t *testing.T, room, user string) hub.ModState {
	t.Helper()
	st, err := n.b.Moderation(t.Context(), room, user)
	if err != nil {
		t.Fatalf("Moderation(%q, %q): %v", room, user, err)
	}
	return st
}

// write publishes text to room as member's own write ("" for the server
// API's) and returns the error.
func (n *node) write(t *testing.T, room, member, text string) error {
	t.Helper()
	from := member
	if from == "" {
		from = "system"
	}
	m, err := protocol.NewMessage(room, from, json.RawMessage(fmt.Sprintf("%q", text)), 1700000000000)
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	_, _, err = n.b.Publish(t.Context(), room, hub.PublishRequest{Message: m, Member: member})
	return err
}

// restriction checks that err is a *hub.RestrictedError of want until until.
func restriction(t *testing.T, what string, err, want error, until int64) {
	t.Helper()
	var r *hub.RestrictedError
	if !errors.As(err, &r) || !errors.Is(err, want) || r.Until != until {
		t.Errorf("%s = %v, want %v until %d", what, err, want, until)
	}
}

// describeMod is a ModState in a line, for comparisons.
func describeMod(st hub.ModState) string {
	return fmt.Sprintf("frozen %v mutes %v bans %v more %v", st.Frozen, st.Mutes, st.Bans, st.More)
}

// testModeration: mutes refuse the muted member's writes, freezes every
// member's, neither the server API's (Member ""); bans are listed for the
// join's check; each change delivers its event to the room; the state
// reads back, whole or for one user.
func testModeration(t *testing.T, newBroker NewBroker) {
	const room = "mod"
	n := startNode(t, newBroker)
	if st := n.moderation(t, room, ""); describeMod(st) != describeMod(hub.ModState{}) {
		t.Errorf("untouched room: %s", describeMod(st))
	}
	n.subscribe(t, room)
	if err := n.write(t, room, "bob", "before"); err != nil {
		t.Fatalf("bob's write before any mute: %v", err)
	}
	muted := hub.Event{Kind: hub.EventTo, User: "bob", Frame: []byte(`{"type":"muted"}`)}
	n.moderate(t, room, hub.ModAction{Kind: hub.ModMute, User: "bob"}, muted)
	restriction(t, "bob's write, muted", n.write(t, room, "bob", "x"), hub.ErrMuted, 0)
	if err := n.write(t, room, "alice", "y"); err != nil {
		t.Errorf("alice's write while bob is muted: %v", err)
	}
	if err := n.write(t, room, "", "z"); err != nil {
		t.Errorf("the API's write while bob is muted: %v", err)
	}
	// An edit is a write too.
	edit, _ := protocol.NewEdited(room, "bob", 1, json.RawMessage(`"e"`), 1)
	_, _, err := n.b.Publish(t.Context(), room, hub.PublishRequest{Message: edit, Target: hub.Target{Seq: 1, Author: "bob"}, Member: "bob"})
	restriction(t, "bob's edit, muted", err, hub.ErrMuted, 0)

	until := time.Now().Add(time.Hour).UnixMilli()
	n.moderate(t, room, hub.ModAction{Kind: hub.ModMute, User: "bob", Until: until}, muted) // replaces
	restriction(t, "bob's write, muted for an hour", n.write(t, room, "bob", "x"), hub.ErrMuted, until)
	banned := hub.Event{Kind: hub.EventBan, User: "eve", Frame: []byte(`{"type":"left"}`)}
	n.moderate(t, room, hub.ModAction{Kind: hub.ModBan, User: "eve", Reason: "spam: links"}, banned)
	n.moderate(t, room, hub.ModAction{Kind: hub.ModBan, User: "amy", Until: until}, hub.Event{})
	want := hub.ModState{
		Mutes: []hub.Restriction{{User: "bob", Until: until}},
		Bans:  []hub.Restriction{{User: "amy", Until: until}, {User: "eve", Reason: "spam: links"}},
	}
	if got := n.moderation(t, room, ""); describeMod(got) != describeMod(want) {
		t.Errorf("state\n got %s\nwant %s", describeMod(got), describeMod(want))
	}
	restriction(t, "banned eve's write", n.write(t, room, "eve", "x"), hub.ErrBanned, 0)
	restriction(t, "banned amy's write", n.write(t, room, "amy", "x"), hub.ErrBanned, until)
	if got := n.moderation(t, room, "eve"); describeMod(got) != describeMod(hub.ModState{Bans: want.Bans[1:]}) {
		t.Errorf("eve's state: %s", describeMod(got))
	}
	if got := n.moderation(t, room, "zed"); describeMod(got) != describeMod(hub.ModState{}) {
		t.Errorf("zed's state: %s", describeMod(got))
	}

	updated := hub.Event{Frame: []byte(`{"type":"room_updated"}`)}
	n.moderate(t, room, hub.ModAction{Kind: hub.ModFreeze}, updated)
	if err := n.write(t, room, "alice", "x"); !errors.Is(err, hub.ErrFrozen) {
		t.Errorf("alice's write, frozen = %v, want ErrFrozen", err)
	}
	if err := n.write(t, room, "", "api"); err != nil {
		t.Errorf("the API's write, frozen: %v", err)
	}
	if st := n.moderation(t, room, "zed"); !st.Frozen {
		t.Errorf("zed's state of a frozen room: %s", describeMod(st))
	}
	n.moderate(t, room, hub.ModAction{Kind: hub.ModUnfreeze}, updated)
	n.moderate(t, room, hub.ModAction{Kind: hub.ModUnmute, User: "bob"}, muted)
	n.moderate(t, room, hub.ModAction{Kind: hub.ModUnban, User: "eve"}, hub.Event{})
	if err := n.write(t, room, "bob", "free"); err != nil {
		t.Errorf("bob's write, unmuted and unfrozen: %v", err)
	}
	want = hub.ModState{Bans: []hub.Restriction{{User: "amy", Until: until}}}
	if got := n.moderation(t, room, ""); describeMod(got) != describeMod(want) {
		t.Errorf("state after lifting\n got %s\nwant %s", describeMod(got), describeMod(want))
	}
	wantEvents := []hub.Event{muted, muted, banned, updated, updated, muted}
	n.rec.Wait(t, "the moderation events", func() bool { return len(n.rec.RoomEvents(room)) >= len(wantEvents) })
	n.settle(t)
	got := n.rec.RoomEvents(room)
	if len(got) != len(wantEvents) {
		t.Fatalf("events %+v, want %+v", got, wantEvents)
	}
	for i := range got {
		if !equalEvent(got[i], wantEvents[i]) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], wantEvents[i])
		}
	}
}

// testModerationExpiry: a timed mute and a timed ban end by themselves.
func testModerationExpiry(t *testing.T, newBroker NewBroker) {
	const room = "modx"
	n := startNode(t, newBroker)
	until := time.Now().Add(300 * time.Millisecond).UnixMilli()
	n.moderate(t, room, hub.ModAction{Kind: hub.ModMute, User: "bob", Until: until}, hub.Event{})
	n.moderate(t, room, hub.ModAction{Kind: hub.ModBan, User: "eve", Until: until}, hub.Event{})
	n.moderate(t, room, hub.ModAction{Kind: hub.ModBan, User: "amy"}, hub.Event{})
	err := n.write(t, room, "bob", "x")
	if err == nil {
		t.Fatal("bob's write right after a 300ms mute was accepted")
	}
	restriction(t, "bob's write, muted for 300ms", err, hub.ErrMuted, until)
	deadline := time.Now().Add(WaitTimeout)
	for n.write(t, room, "bob", "y") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("bob is still muted %v after a 300ms mute", WaitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for len(n.moderation(t, room, "eve").Bans) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("eve is still banned %v after a 300ms ban", WaitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := hub.ModState{Bans: []hub.Restriction{{User: "amy"}}}
	if got := n.moderation(t, room, ""); describeMod(got) != describeMod(want) {
		t.Errorf("state after the ends\n got %s\nwant %s", describeMod(got), describeMod(want))
	}
}

// testClusterModeration: a mute, freeze or ban applied on one node holds
// on the other at once, and its event reaches the other node's room
// within a second.
func testClusterModeration(t *testing.T, a, b *node) {
	const room = "cmod"
	a.subscribe(t, room)
	muted := hub.Event{Kind: hub.EventTo, User: "bob", Frame: []byte(`{"type":"muted"}`)}
	b.moderate(t, room, hub.ModAction{Kind: hub.ModMute, User: "bob"}, muted)
	restriction(t, "bob's write on node a", a.write(t, room, "bob", "x"), hub.ErrMuted, 0)
	within(t, time.Second, "the mute event on node a", func() bool { return len(a.rec.RoomEvents(room)) >= 1 })

	b.moderate(t, room, hub.ModAction{Kind: hub.ModFreeze}, hub.Event{Frame: []byte(`{"type":"room_updated"}`)})
	if err := a.write(t, room, "alice", "x"); !errors.Is(err, hub.ErrFrozen) {
		t.Errorf("alice's write on node a, frozen on b = %v", err)
	}
	banned := hub.Event{Kind: hub.EventBan, User: "eve", Frame: []byte(`{"type":"left"}`)}
	b.moderate(t, room, hub.ModAction{Kind: hub.ModBan, User: "eve"}, banned)
	if st := a.moderation(t, room, "eve"); len(st.Bans) != 1 {
		t.Errorf("eve's state on node a: %s", describeMod(st))
	}
	within(t, time.Second, "the ban event on node a", func() bool {
		events := a.rec.RoomEvents(room)
		return len(events) >= 3 && equalEvent(events[2], banned)
	})
}

// within polls cond every 10ms and fails t when it is not true by d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
