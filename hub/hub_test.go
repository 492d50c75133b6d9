package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

func TestStats(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice1, alice2, bob := h.connect("alice"), h.connect("alice"), h.connect("bob")
	h.join(alice1, "lobby")
	h.join(alice2, "lobby")
	h.join(bob, "lobby")
	h.join(bob, "games")
	h.send(bob, "games", `1`)
	h.send(bob, "games", `2`)

	want := hub.Stats{Sessions: 3, Users: 2, Rooms: 2, Published: 2}
	if got := h.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	bob.disconnect()
	want = hub.Stats{Sessions: 2, Users: 1, Rooms: 1, Published: 2}
	if got := h.Stats(); got != want {
		t.Errorf("after bob disconnects: Stats() = %+v, want %+v", got, want)
	}
	alice1.disconnect()
	alice2.disconnect()
	want = hub.Stats{Published: 2}
	if got := h.Stats(); got != want {
		t.Errorf("after everyone disconnects: Stats() = %+v, want %+v", got, want)
	}
}

func TestTooManyRooms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{MaxRoomsPerSession: 2})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "a")
	h.join(alice, "b")
	err := h.Join(ctx, alice, hub.JoinRequest{Room: "c"})
	if !errors.Is(err, hub.ErrTooManyRooms) {
		t.Fatalf("third join: err = %v, want ErrTooManyRooms", err)
	}
	if got, want := hub.Describe(err).Code, protocol.CodeTooMany; got != want {
		t.Errorf("Describe(%v).Code = %q, want %q", err, got, want)
	}
	if got := alice.take(t); got != "joined a [alice] seq 0; joined b [alice] seq 0" {
		t.Errorf("alice got %q", got)
	}
	// The refused join left nothing behind: bob, alone in c, hears of nobody.
	h.join(bob, "c")
	if got := bob.take(t); got != "joined c [bob] seq 0" {
		t.Errorf("bob got %q", got)
	}
	if got, want := h.Stats().Rooms, 3; got != want {
		t.Errorf("rooms = %d, want %d", got, want)
	}

	// A join of a room already joined is no new room; a leave frees a place.
	h.join(alice, "b")
	if err := h.Leave(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	h.join(alice, "c")
	if got := alice.take(t); got != "joined b [alice] seq 0; joined c [alice bob] seq 0" {
		t.Errorf("alice got %q", got)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	sessions := []*recSession{h.connect("alice"), h.connect("alice"), h.connect("bob")}
	for _, s := range sessions {
		h.join(s, "lobby")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Close(ctx, protocol.CloseGoingAway, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returned, so every session has disconnected.
	for _, s := range sessions {
		if got, want := s.closeCode(), protocol.CloseGoingAway; got != want {
			t.Errorf("%s closed with %d, want %d", s.user, got, want)
		}
	}
	if got, want := h.Stats(), (hub.Stats{}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if members, _ := h.Members(ctx, "lobby"); len(members) != 0 {
		t.Errorf("members = %v, want none", members)
	}

	late := &recSession{id: "late", user: "carol"}
	if err := h.Connect(ctx, late); !errors.Is(err, hub.ErrClosing) {
		t.Errorf("Connect after Close: err = %v, want ErrClosing", err)
	}
	if err := h.Ready(ctx); !errors.Is(err, hub.ErrClosing) {
		t.Errorf("Ready after Close: err = %v, want ErrClosing", err)
	}
	// Closing again has nothing to wait for.
	if err := h.Close(ctx, protocol.CloseGoingAway, "bye"); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseEmpty(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	if err := h.Close(context.Background(), protocol.CloseRestart, "drain"); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCloseWaits checks that Close waits for sessions to disconnect and
// gives up when its context is done.
func TestCloseWaits(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	stuck := &recSession{id: "stuck", user: "alice"} // Close does not disconnect it
	if err := h.Connect(context.Background(), stuck); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx, protocol.CloseGoingAway, "bye"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: err = %v, want DeadlineExceeded", err)
	}
	if got, want := stuck.closeCode(), protocol.CloseGoingAway; got != want {
		t.Errorf("closed with %d, want %d", got, want)
	}

	done := make(chan error, 1)
	go func() { done <- h.Close(context.Background(), protocol.CloseGoingAway, "bye") }()
	h.Disconnect(stuck)
	if err := <-done; err != nil {
		t.Errorf("Close after the last disconnect: %v", err)
	}
}

func TestKick(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice1, alice2, bob := h.connect("alice"), h.connect("alice"), h.connect("bob")
	h.join(alice1, "lobby")
	h.join(bob, "lobby")

	kicked, err := h.Kick(ctx, "alice")
	if err != nil || !kicked {
		t.Fatalf("Kick(alice) = %t, %v; want true, nil", kicked, err)
	}
	for _, s := range []*recSession{alice1, alice2} {
		if got, want := s.closeCode(), protocol.CloseKicked; got != want {
			t.Errorf("alice closed with %d, want %d", got, want)
		}
	}
	if got := bob.closeCode(); got != 0 {
		t.Errorf("bob closed with %d", got)
	}
	kicked, err = h.Kick(ctx, "nobody")
	if err != nil || kicked {
		t.Errorf("Kick(nobody) = %t, %v; want false, nil", kicked, err)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{hub.ErrNotMember, protocol.CodeNotMember},
		{hub.ErrOffline, protocol.CodeOffline},
		{hub.ErrTooManyRooms, protocol.CodeTooMany},
		{hub.ErrUnavailable, protocol.CodeUnavailable},
		{errors.Join(hub.ErrMaybeDelivered, hub.ErrUnavailable), protocol.CodeUnavailable},
		{hub.ErrClosing, protocol.CodeUnavailable},
		{context.DeadlineExceeded, protocol.CodeUnavailable},
		{errors.New("boom"), protocol.CodeInternal},
	}
	for _, tt := range tests {
		if got := hub.Describe(tt.err).Code; got != tt.want {
			t.Errorf("Describe(%v).Code = %q, want %q", tt.err, got, tt.want)
		}
	}
}
