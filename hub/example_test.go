package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// logSession is a Session that notes the frames it is sent, one line each.
type logSession struct {
	id, user string
	lines    *strings.Builder
}

func (s logSession) ID() string        { return s.id }
func (s logSession) User() string      { return s.user }
func (s logSession) Close(int, string) {}
func (s logSession) Enqueue(frame []byte) {
	var f struct {
		Type, Room, From, User string
		Seq                    uint64
		Members                []string
		Data                   json.RawMessage
	}
	json.Unmarshal(frame, &f)
	switch f.Type {
	case "joined":
		fmt.Fprintf(s.lines, "%s: joined %s with %v at seq %d\n", s.user, f.Room, f.Members, f.Seq)
	case "message":
		fmt.Fprintf(s.lines, "%s: message %d from %s: %s\n", s.user, f.Seq, f.From, f.Data)
	default:
		fmt.Fprintf(s.lines, "%s: %s %s\n", s.user, f.Type, f.User)
	}
}

// A hub over the single-node broker: two sessions join a room and one sends
// to it. Every member, the sender too, gets the message with its seq.
func Example() {
	ctx := context.Background()
	b := memorybroker.New(memorybroker.Config{})
	h := hub.New(b, memorybroker.NewPresence(b), hub.Config{})
	if err := h.Start(ctx); err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	alice := logSession{"s1", "alice", new(strings.Builder)}
	bob := logSession{"s2", "bob", new(strings.Builder)}
	for _, s := range []logSession{alice, bob} {
		if err := h.Connect(ctx, s); err != nil {
			panic(err)
		}
		if err := h.Join(ctx, s, hub.JoinRequest{Room: "lobby"}); err != nil {
			panic(err)
		}
		// The broker delivers from goroutines of its own: wait for each
		// step's frames, so that the output is the same every time.
		b.Flush(ctx)
	}
	pos, err := h.Send(ctx, bob, "lobby", json.RawMessage(`{"text": "hi"}`), nil)
	if err != nil {
		panic(err)
	}
	b.Flush(ctx)
	h.Disconnect(bob)
	b.Flush(ctx)
	h.Disconnect(alice)

	fmt.Print(alice.lines.String() + bob.lines.String())
	fmt.Println("sent seq", pos.Seq)
	// Output:
	// alice: joined lobby with [alice] at seq 0
	// alice: member_joined bob
	// alice: message 1 from bob: {"text":"hi"}
	// alice: member_left bob
	// bob: joined lobby with [alice bob] at seq 0
	// bob: message 1 from bob: {"text":"hi"}
	// sent seq 1
}
