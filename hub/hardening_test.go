package hub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// TestReplyToMemberJoinedArrivesLive plays the member who answers a join at
// once: alice sends as soon as she sees member_joined for bob. Bob's joined
// seq must not count her message, so that it reaches him live. Before the
// fix, member_joined went out before bob's position was read.
func TestReplyToMemberJoinedArrivesLive(t *testing.T) {
	t.Parallel()
	h, broker, _ := newGatedHub(t, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	alice.take(t)

	replied := false
	reply := func() {
		if !replied && strings.Contains(alice.take(t), "member_joined lobby bob") {
			h.send(alice, "lobby", `"welcome bob"`)
			replied = true
		}
	}
	broker.armAt(true) // bob's join blocks before it reads the position
	done := make(chan error, 1)
	go func() { done <- h.Join(context.Background(), bob, hub.JoinRequest{Room: "lobby"}) }()
	<-broker.entered
	reply() // what alice can see while bob's join is under way
	close(broker.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reply()
	if !replied {
		t.Fatal("alice never saw member_joined for bob")
	}
	if got, want := bob.take(t), `joined lobby [alice bob] seq 0; message lobby#1 from alice "welcome bob"`; got != want {
		t.Errorf("bob got %q, want %q", got, want)
	}
}

// slowPresence makes every Remove take delay, or fail when its context ends
// first, as a networked Presence does.
type slowPresence struct {
	hub.Presence
	delay time.Duration

	mu     sync.Mutex
	failed int
}

func (p *slowPresence) Remove(ctx context.Context, room, user string) (bool, error) {
	select {
	case <-time.After(p.delay):
		return p.Presence.Remove(ctx, room, user)
	case <-ctx.Done():
		p.mu.Lock()
		p.failed++
		p.mu.Unlock()
		return false, ctx.Err()
	}
}

// TestDisconnectGivesEachExitItsDeadline: a session in many rooms leaves
// them all on disconnect, however long the exits take together. Before the
// fix, one OpTimeout was shared by every exit: the later ones failed and
// left ghost members.
func TestDisconnectGivesEachExitItsDeadline(t *testing.T) {
	t.Parallel()
	const rooms = 6
	b := memorybroker.New(memorybroker.Config{})
	p := &slowPresence{Presence: memorybroker.NewPresence(b), delay: 40 * time.Millisecond}
	h := newHubWith(t, b, p, hub.Config{OpTimeout: 100 * time.Millisecond})
	alice := h.connect("alice")
	alice.manual = true
	for i := range rooms {
		h.join(alice, fmt.Sprint("room", i))
	}
	alice.disconnect()
	p.mu.Lock()
	failed := p.failed
	p.mu.Unlock()
	if failed != 0 {
		t.Errorf("%d of %d presence removals ran out of time", failed, rooms)
	}
	for i := range rooms {
		members, err := h.Members(context.Background(), fmt.Sprint("room", i))
		if err != nil || len(members) != 0 {
			t.Errorf("room%d members after disconnect = %v, %v; want none", i, members, err)
		}
	}
}

// TestFailedJoinLeavesNoTrace: a join that fails after the room was entered
// (here the member list cannot be read) leaves no presence behind, and the
// others see member_joined then member_left, in that order.
func TestFailedJoinLeavesNoTrace(t *testing.T) {
	t.Parallel()
	h, _, presence := newGatedHub(t, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	alice.take(t)
	boom := errors.New("boom")
	presence.fail(boom)
	if err := h.Join(context.Background(), bob, hub.JoinRequest{Room: "lobby"}); !errors.Is(err, boom) {
		t.Fatalf("join = %v, want %v", err, boom)
	}
	presence.fail(nil)
	if got, want := alice.take(t), "member_joined lobby bob; member_left lobby bob"; got != want {
		t.Errorf("alice got %q, want %q", got, want)
	}
	if members, _ := h.Members(context.Background(), "lobby"); strings.Join(members, " ") != "alice" {
		t.Errorf("members = %v, want [alice]", members)
	}
}
