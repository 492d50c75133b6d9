package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

func TestDM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice1, alice2 := h.connect("alice"), h.connect("alice")
	bob1, bob2 := h.connect("bob"), h.connect("bob")
	carol := h.connect("carol")

	if err := h.DM(ctx, alice1, "dave", json.RawMessage(`"hi"`), nil); !errors.Is(err, hub.ErrOffline) {
		t.Errorf("DM to a user without sessions: err = %v, want ErrOffline", err)
	}
	if err := h.DM(ctx, alice1, "bob", json.RawMessage(`{"t": "hi"}`), nil); err != nil {
		t.Fatal(err)
	}
	// Every session of bob gets it, every session of alice a copy.
	want := `dm alice>bob {"t":"hi"}`
	for _, s := range []*recSession{alice1, alice2, bob1, bob2} {
		if got := s.take(t); got != want {
			t.Errorf("%s got %q, want %q", s.id, got, want)
		}
	}
	if got := carol.take(t); got != "" {
		t.Errorf("carol got %q", got)
	}
	for _, f := range bob1.all(t) {
		if f.TS <= 0 {
			t.Errorf("dm has ts %d", f.TS)
		}
	}

	// A DM to oneself reaches each of one's sessions once.
	if err := h.DM(ctx, alice2, "alice", json.RawMessage(`1`), nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*recSession{alice1, alice2} {
		if got := s.take(t); got != "dm alice>alice 1" {
			t.Errorf("%s got %q", s.id, got)
		}
	}
	if got := bob1.take(t); got != "" {
		t.Errorf("bob got %q", got)
	}

	// Once bob is gone, he is offline again.
	bob1.disconnect()
	bob2.disconnect()
	if err := h.DM(ctx, alice1, "bob", json.RawMessage(`1`), nil); !errors.Is(err, hub.ErrOffline) {
		t.Errorf("DM after bob left: err = %v, want ErrOffline", err)
	}
	if got := alice1.take(t); got != "" {
		t.Errorf("alice got %q for an undelivered DM", got)
	}
}

func TestDMIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice := h.connect("alice")
	id := json.RawMessage(`"d1"`)

	// An id that failed (offline) is not remembered: the retry is delivered.
	if err := h.DM(ctx, alice, "bob", json.RawMessage(`1`), id); !errors.Is(err, hub.ErrOffline) {
		t.Fatalf("err = %v, want ErrOffline", err)
	}
	bob := h.connect("bob")
	for range 3 {
		if err := h.DM(ctx, alice, "bob", json.RawMessage(`1`), id); err != nil {
			t.Fatal(err)
		}
	}
	if got := bob.take(t); got != "dm alice>bob 1" {
		t.Errorf("bob got %q, want one dm", got)
	}
	if got := alice.take(t); got != "dm alice>bob 1" {
		t.Errorf("alice got %q, want one echo", got)
	}

	// Without an id, every DM is delivered.
	for range 2 {
		if err := h.DM(ctx, alice, "bob", json.RawMessage(`2`), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := bob.take(t); got != "dm alice>bob 2; dm alice>bob 2" {
		t.Errorf("bob got %q", got)
	}
}

func TestSendIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	h.join(bob, "lobby")
	alice.take(t)
	bob.take(t)

	send := func(s *recSession, data, id string) uint64 {
		t.Helper()
		pos, err := h.Send(ctx, s, "lobby", json.RawMessage(data), json.RawMessage(id))
		if err != nil {
			t.Fatal(err)
		}
		return pos.Seq
	}
	first := send(alice, `"a"`, `"m1"`)
	if again := send(alice, `"a"`, `"m1"`); again != first {
		t.Errorf("repeat of id m1: seq %d, want %d", again, first)
	}
	// The id is the key, not the data; string and number ids differ; ids are
	// per user.
	if again := send(alice, `"changed"`, `"m1"`); again != first {
		t.Errorf("repeat of id m1 with other data: seq %d, want %d", again, first)
	}
	send(alice, `"b"`, `1`)
	send(alice, `"c"`, `"1"`)
	send(bob, `"d"`, `"m1"`)

	want := `message lobby#1 from alice "a"; message lobby#2 from alice "b"; message lobby#3 from alice "c"; message lobby#4 from bob "d"`
	for _, s := range []*recSession{alice, bob} {
		if got := s.take(t); got != want {
			t.Errorf("%s got %q, want %q", s.user, got, want)
		}
	}
	if got, want := h.Stats().Published, uint64(4); got != want {
		t.Errorf("published %d, want %d", got, want)
	}
}

// TestIdempotencyScope checks that an id makes a retry of the same request
// safe and nothing else: the same id used for another room or for a DM is
// another request, which must not be swallowed as a duplicate.
func TestIdempotencyScope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "a")
	h.join(alice, "b")
	alice.take(t)
	id := json.RawMessage(`7`)

	if _, err := h.Send(ctx, alice, "a", json.RawMessage(`"to a"`), id); err != nil {
		t.Fatal(err)
	}
	pos, err := h.Send(ctx, alice, "b", json.RawMessage(`"to b"`), id)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Seq != 1 {
		t.Errorf("send to b: seq %d, want 1", pos.Seq)
	}
	if err := h.DM(ctx, alice, "bob", json.RawMessage(`"dm"`), id); err != nil {
		t.Fatal(err)
	}
	// Order is kept per room, not across rooms and direct messages.
	got := strings.Split(alice.take(t), "; ")
	slices.Sort(got)
	if got, want := strings.Join(got, "; "), `dm alice>bob "dm"; message a#1 from alice "to a"; message b#1 from alice "to b"`; got != want {
		t.Errorf("alice got %q, want %q", got, want)
	}
	if got, want := bob.take(t), `dm alice>bob "dm"`; got != want {
		t.Errorf("bob got %q, want %q", got, want)
	}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice := h.connect("alice")
	h.join(alice, "lobby")
	alice.take(t)
	// The server API publishes as any user, member or not, connected or not.
	for range 2 {
		pos, err := h.Publish(ctx, "lobby", "system", json.RawMessage(`"maintenance"`), "k1")
		if err != nil || pos.Seq != 1 {
			t.Fatalf("Publish = %+v, %v; want seq 1, nil", pos, err)
		}
	}
	if got := alice.take(t); got != `message lobby#1 from system "maintenance"` {
		t.Errorf("alice got %q", got)
	}
	if _, err := h.Publish(ctx, "lobby", "system", json.RawMessage(`{bad`), ""); err == nil {
		t.Error("Publish of invalid JSON: no error")
	}
}
