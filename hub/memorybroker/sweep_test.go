package memorybroker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestMemoryBrokerForgetsIdleRooms: rooms nobody subscribes to are
// forgotten once their history expired, so state does not grow with every
// room name ever used; a subscribed room is kept.
func TestMemoryBrokerForgetsIdleRooms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBroker(t, memorybroker.Config{HistoryTTL: time.Millisecond}, nopHandler{})
	if err := b.SubscribeRoom(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	msg, _ := protocol.NewMessage("r", "alice", []byte(`1`), 0)
	for i := range 2000 {
		if _, _, err := b.Publish(ctx, fmt.Sprint("room-", i), hub.PublishRequest{Message: msg}); err != nil {
			t.Fatal(err)
		}
		if i == 1000 {
			time.Sleep(5 * time.Millisecond) // the first thousand expire
		}
	}
	if n := b.Streams(); n > 1100 {
		t.Fatalf("the broker keeps %d rooms after 2 000 one-message rooms expired in part, want at most 1 100", n)
	}
	if _, _, err := b.Publish(ctx, "kept", hub.PublishRequest{Message: msg}); err != nil {
		t.Fatal(err)
	}
	page, err := b.History(ctx, "kept", hub.HistoryQuery{Limit: 10})
	if err != nil || len(page.Publications) != 1 {
		t.Fatalf("the subscribed room lost its history: %v, %v", page, err)
	}
}

type nopHandler struct{}

func (nopHandler) HandlePublication(string, hub.Publication) {}
func (nopHandler) HandleRoomEvent(string, hub.Event)         {}
func (nopHandler) HandleUserEvent(string, hub.Event)         {}
