package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestCountersMatchFrames: the hub's frame counters equal, type by type, the
// frames its sessions received, through every path a frame takes: fan-out,
// a recovery replay, a message held while a session joins, typing, a DM,
// joined answers. Delivered counts the message frames, Published the
// messages sent.
func TestCountersMatchFrames(t *testing.T) {
	t.Parallel()
	h, broker, _ := newGatedHub(t, hub.Config{})
	ctx := context.Background()
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(alice, "lobby")
	h.join(bob, "lobby")
	h.send(bob, "lobby", `"one"`)
	h.send(bob, "lobby", `"two"`)
	if err := h.Typing(ctx, alice, "lobby"); err != nil {
		t.Fatal(err)
	}
	if err := h.DM(ctx, alice, "bob", json.RawMessage(`"psst"`), nil); err != nil {
		t.Fatal(err)
	}

	carol := h.connect("carol") // recovers message 2
	epoch := h.position("lobby").Epoch
	if err := h.Join(ctx, carol, hub.JoinRequest{Room: "lobby", Recover: true, Since: 1, Epoch: epoch}); err != nil {
		t.Fatal(err)
	}
	dave := h.connect("dave") // gets message 3 held while he joins
	broker.arm()
	joined := make(chan error, 1)
	go func() { joined <- h.Join(ctx, dave, hub.JoinRequest{Room: "lobby"}) }()
	<-broker.entered
	h.send(bob, "lobby", `"three"`)
	close(broker.release)
	if err := <-joined; err != nil {
		t.Fatal(err)
	}

	got := map[string]uint64{}
	for _, s := range []*recSession{alice, bob, carol, dave} {
		for _, f := range s.all(t) {
			got[f.Type]++
		}
	}
	c := h.Counters()
	for typ, n := range c.FramesOut {
		if n != got[typ] {
			t.Errorf("FramesOut[%s] = %d, sessions received %d", typ, n, got[typ])
		}
	}
	for typ := range got {
		if _, ok := c.FramesOut[typ]; !ok {
			t.Errorf("sessions received %s frames, which FramesOut has no count for", typ)
		}
	}
	// 2 messages to alice and bob, message 2 replayed to carol, message 3 to
	// all four (dave's held): 4 + 1 + 4.
	if c.Delivered != 9 || got["message"] != 9 {
		t.Errorf("Delivered = %d, message frames received %d, want 9", c.Delivered, got["message"])
	}
	if c.Published != 3 {
		t.Errorf("Published = %d, want 3", c.Published)
	}
	if c.Recoveries[hub.RecoveryRecovered] != 1 {
		t.Errorf("Recoveries = %v, want one recovered", c.Recoveries)
	}
}

// TestRecoveryOutcomes counts each outcome of a recovering join once. A
// join that does not ask to recover, or rejoins a room, is not counted.
func TestRecoveryOutcomes(t *testing.T) {
	t.Parallel()
	h, _, presence := newGatedHub(t, hub.Config{MaxReplayBytes: 200})
	ctx := context.Background()
	bob := h.connect("bob")
	h.join(bob, "lobby")
	for range 5 {
		h.send(bob, "lobby", `"m"`)
	}
	epoch := h.position("lobby").Epoch
	join := func(req hub.JoinRequest) error {
		req.Room = "lobby"
		return h.Join(ctx, h.connect("alice"), req)
	}
	for _, req := range []hub.JoinRequest{
		{},                                      // not counted
		{Recover: true, Since: 5, Epoch: epoch}, // recovered
		{Recover: true, Since: 4, Epoch: epoch}, // recovered: one message, ~75 bytes
		{Recover: true, Since: 0, Epoch: epoch}, // too_large: five do not fit in 200 bytes
		{Recover: true, Since: 9, Epoch: epoch}, // invalid
		{Recover: true, Since: 3, Epoch: "old"}, // new_epoch
	} {
		if err := join(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Join(ctx, bob, hub.JoinRequest{Room: "lobby", Recover: true, Since: 1, Epoch: epoch}); err != nil {
		t.Fatal(err) // a rejoin: not counted
	}
	presence.fail(errors.New("presence down"))
	if err := join(hub.JoinRequest{Recover: true, Since: 5, Epoch: epoch}); err == nil {
		t.Fatal("a join whose presence failed succeeded")
	}
	presence.fail(nil)

	want := map[string]uint64{
		hub.RecoveryRecovered: 2, hub.RecoveryTooLarge: 1, hub.RecoveryInvalid: 1,
		hub.RecoveryNewEpoch: 1, hub.RecoveryTrimmed: 0, hub.RecoveryFailed: 1,
	}
	if got := h.Counters().Recoveries; !maps.Equal(got, want) {
		t.Errorf("Recoveries = %v, want %v", got, want)
	}
}

// TestRecoveryTrimmed: a gap history no longer holds counts as trimmed.
func TestRecoveryTrimmed(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{HistorySize: 2}, hub.Config{})
	bob := h.connect("bob")
	h.join(bob, "lobby")
	for range 5 {
		h.send(bob, "lobby", `"m"`)
	}
	req := hub.JoinRequest{Room: "lobby", Recover: true, Since: 1, Epoch: h.position("lobby").Epoch}
	if err := h.Join(context.Background(), h.connect("alice"), req); err != nil {
		t.Fatal(err)
	}
	if got := h.Counters().Recoveries[hub.RecoveryTrimmed]; got != 1 {
		t.Errorf("trimmed = %d, want 1", got)
	}
}

// TestFrameCounterTypes: a frame is counted under the type it was encoded
// with, anything else under OtherFrame, without allocating.
func TestFrameCounterTypes(t *testing.T) { // not parallel: AllocsPerRun
	msg, err := protocol.NewMessage("lobby", "bob", json.RawMessage(`"hi"`), 1)
	if err != nil {
		t.Fatal(err)
	}
	dm, err := protocol.NewDM("bob", "alice", json.RawMessage(`"hi"`), 1)
	if err != nil {
		t.Fatal(err)
	}
	frames := map[string][]byte{
		protocol.TypeMessage:        append(append(append([]byte(nil), msg.Prefix...), '1'), msg.Suffix...),
		protocol.TypeDM:             dm,
		protocol.TypeJoined:         protocol.Encode(protocol.Joined{Type: protocol.TypeJoined, Room: "lobby"}),
		protocol.TypeHistory:        protocol.EncodeHistory(nil, "lobby", "e", nil),
		protocol.TypeError:          protocol.EncodeError(nil, protocol.Errorf(protocol.CodeBadRequest, "no")),
		protocol.TypeMemberJoined:   hub.MemberChange("lobby", protocol.TypeMemberJoined, "bob", 2).Frame,
		protocol.TypeTyping:         hub.MemberEvent("lobby", protocol.TypeTyping, "bob").Frame,
		hub.OtherFrame:              []byte(`{"type":"nonsense"}`),
		protocol.TypeMessageDeleted: protocol.NewDeleted("lobby", "bob", 1, 1).Frame(2),
		protocol.TypeRoomUpdated:    protocol.Encode(protocol.RoomUpdated{Type: protocol.TypeRoomUpdated, Room: "lobby"}),
	}
	var c hub.FrameCounter
	for _, f := range frames {
		c.AddFrame(f, 2)
	}
	c.AddFrame([]byte(`not json`), 1)
	c.Add("welcome", 3)
	c.Add("nonsense", 1)
	got := c.Counts()
	for typ := range frames {
		want := uint64(2)
		if typ == hub.OtherFrame {
			want = 4
		}
		if got[typ] != want {
			t.Errorf("%s: %d, want %d (all: %v)", typ, got[typ], want, got)
		}
	}
	if got[protocol.TypeWelcome] != 3 || got[protocol.TypePong] != 0 {
		t.Errorf("counts = %v", got)
	}
	if n := testing.AllocsPerRun(100, func() { c.AddFrame(dm, 1) }); n != 0 {
		t.Errorf("AddFrame allocates %v times", n)
	}
}
