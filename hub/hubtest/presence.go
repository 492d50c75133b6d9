package hubtest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// testPresence: Add and Remove report the first and last entry of a user;
// Members lists users sorted, with the count.
func testPresence(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	if n.p == nil {
		t.Skip("no Presence")
	}
	p := presence{n.p}
	p.add(t, "p", "zed", true)
	p.add(t, "p", "amy", true)
	p.add(t, "p.other", "bob", true)
	p.members(t, "p", "amy", "zed")
	p.remove(t, "p", "zed", true)
	p.members(t, "p", "amy")
	p.remove(t, "p", "amy", true)
	p.remove(t, "p", "amy", false)
	p.members(t, "p")
	p.members(t, "p.other", "bob")
}

// testPresencePages: Members pages through a room in name order from any
// start, present in the room or not, with the room's count on every page.
func testPresencePages(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	if n.p == nil {
		t.Skip("no Presence")
	}
	p := presence{n.p}
	var want []string
	for i := range 25 {
		user := fmt.Sprintf("u%02d", (i*7)%25) // added out of order
		p.add(t, "pages", user, true)
	}
	for i := range 25 {
		want = append(want, fmt.Sprintf("u%02d", i))
	}
	for _, limit := range []int{1, 4, 25, 100} {
		var got []string
		after := ""
		for range 30 {
			page := p.page(t, "pages", after, limit)
			if page.Count != 25 {
				t.Errorf("page after %q: count %d, want 25", after, page.Count)
			}
			got = append(got, page.Users...)
			if !page.More {
				break
			}
			after = page.Users[len(page.Users)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d list %q, want %q", limit, got, want)
		}
	}
	for _, tt := range []struct {
		after string
		want  []string
		more  bool
	}{
		{"", want[:3], true},
		{"u05", want[6:9], true},
		{"u05x", want[6:9], true}, // not a member: the names above it
		{"a", want[:3], true},
		{"u21", want[22:], false},
		{"u24", []string{}, false},
		{"z", []string{}, false},
	} {
		page := p.page(t, "pages", tt.after, 3)
		if !slices.Equal(page.Users, tt.want) || page.More != tt.more {
			t.Errorf("page after %q = %q more %v, want %q more %v", tt.after, page.Users, page.More, tt.want, tt.more)
		}
	}
	if page := p.page(t, "nobody.here", "", 10); len(page.Users) != 0 || page.Count != 0 || page.More {
		t.Errorf("empty room page = %+v", page)
	}
}

// testMemberEvents: member_joined and member_left carry the room's member
// count, and are announced only while the room has at most
// protocol.MemberEventsMax members before or after the change.
func testMemberEvents(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	if n.p == nil {
		t.Skip("no Presence")
	}
	const room, max = "large", protocol.MemberEventsMax
	n.subscribe(t, room)
	p := presence{n.p}
	user := func(i int) string { return fmt.Sprintf("u%04d", i) }
	for i := range max + 2 {
		p.add(t, room, user(i), true)
	}
	p.remove(t, room, user(0), true) // max+2 → max+1: not announced
	p.remove(t, room, user(1), true) // max+1 → max: announced
	p.add(t, room, user(1), true)    // max → max+1: announced
	want := make([]string, 0, max+3)
	for i := range max + 1 {
		want = append(want, fmt.Sprintf("member_joined %s %d", user(i), i+1))
	}
	want = append(want, fmt.Sprintf("member_left %s %d", user(1), max), fmt.Sprintf("member_joined %s %d", user(1), max+1))
	n.rec.Wait(t, "the member events", func() bool { return len(n.rec.RoomEvents(room)) >= len(want) })
	n.settle(t)
	got := memberEvents(t, n.rec.RoomEvents(room))
	if !slices.Equal(got, want) {
		t.Errorf("%d member events, want %d", len(got), len(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("event %d is %q, want %q", i, got[i], want[i])
				break
			}
		}
		if len(got) > 0 {
			t.Errorf("last event %q, want %q", got[len(got)-1], want[len(want)-1])
		}
	}
	if page := p.page(t, room, "", 1); page.Count != max+1 {
		t.Errorf("count %d, want %d", page.Count, max+1)
	}
}

// memberEvents describes member events as "type user count", checking that
// each excludes its user.
func memberEvents(t *testing.T, events []hub.Event) []string {
	t.Helper()
	out := make([]string, 0, len(events))
	for _, e := range events {
		var f protocol.MemberChange
		if err := json.Unmarshal(e.Frame, &f); err != nil {
			t.Fatalf("member event %q: %v", e.Frame, err)
		}
		if e.Exclude != f.User {
			t.Errorf("event %s excludes %q", e.Frame, e.Exclude)
		}
		out = append(out, fmt.Sprintf("%s %s %d", f.Type, f.User, f.MemberCount))
	}
	return out
}

// presence wraps a hub.Presence with checking helpers.
type presence struct{ hub.Presence }

func (p presence) add(t *testing.T, room, user string, first bool) {
	t.Helper()
	got, err := p.Add(t.Context(), room, user)
	if err != nil || got != first {
		t.Errorf("Add(%q, %q) = %v, %v; want first = %v", room, user, got, err, first)
	}
}

func (p presence) remove(t *testing.T, room, user string, last bool) {
	t.Helper()
	got, err := p.Remove(t.Context(), room, user)
	if err != nil || got != last {
		t.Errorf("Remove(%q, %q) = %v, %v; want last = %v", room, user, got, err, last)
	}
}

func (p presence) page(t *testing.T, room, after string, limit int) hub.MemberPage {
	t.Helper()
	page, err := p.Members(t.Context(), room, after, limit)
	if err != nil {
		t.Fatalf("Members(%q, after %q, limit %d): %v", room, after, limit, err)
	}
	return page
}

// members checks that room's first page lists exactly want, with the count.
func (p presence) members(t *testing.T, room string, want ...string) {
	t.Helper()
	page := p.page(t, room, "", 100)
	if !slices.Equal(page.Users, want) || page.Count != len(want) || page.More {
		t.Errorf("Members(%q) = %q count %d more %v, want %q", room, page.Users, page.Count, page.More, want)
	}
}
