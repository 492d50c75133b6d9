package redisbroker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestSpentContextKeepsPubSub: subscription changes whose caller's context
// is already spent, or runs out while they are sent, do not tear down the
// node's one pub/sub connection: its Redis client id stays the same, and
// an event sent right after is delivered.
func TestSpentContextKeepsPubSub(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, rec := startBroker(t, srv, Config{})
	if err := b.SubscribeUser(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	id := pubsubClientID(t, srv, b)

	spent, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-spent.Done()
	ops := []struct {
		name string
		do   func(context.Context) error
	}{
		{"SubscribeRoom", func(ctx context.Context) error { return b.SubscribeRoom(ctx, "r") }},
		{"SubscribeUser", func(ctx context.Context) error { return b.SubscribeUser(ctx, "carol") }},
		{"UnsubscribeRoom", func(ctx context.Context) error { return b.UnsubscribeRoom(ctx, "r") }},
		{"UnsubscribeUser", func(ctx context.Context) error { return b.UnsubscribeUser(ctx, "carol") }},
	}
	for _, op := range ops {
		if err := op.do(spent); err != nil {
			t.Errorf("%s with a spent context: %v", op.name, err)
		}
		if got := pubsubClientID(t, srv, b); got != id {
			t.Fatalf("after %s with a spent context the pub/sub connection is %s, was %s", op.name, got, id)
		}
	}

	e := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"dm"}`)}
	delivered, _, err := b.SendUser(t.Context(), "bob", e, "")
	if err != nil || !delivered {
		t.Fatalf("SendUser = %v, delivered %v; want delivered", err, delivered)
	}
	rec.Wait(t, "the event", func() bool { return len(rec.UserEvents("bob")) == 1 })
	if got := pubsubClientID(t, srv, b); got != id {
		t.Errorf("the pub/sub connection is %s, was %s", got, id)
	}
}

// pubsubClientID returns the Redis client id of b's pub/sub connection, waiting
// for it to exist.
func pubsubClientID(t testing.TB, srv *redistest.Server, b *Broker) string {
	t.Helper()
	admin := srv.Client(t)
	var id string
	eventually(t, 10*time.Second, "the pub/sub connection", func() error {
		list, err := admin.Do(t.Context(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
		if err != nil {
			return err
		}
		var ids []string
		for _, line := range strings.Split(list, "\n") {
			if !strings.Contains(line, " name=switchboard:"+b.NodeID()+" ") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "id="); ok {
					ids = append(ids, v)
				}
			}
		}
		if len(ids) != 1 {
			return fmt.Errorf("pub/sub connections %v, want one", ids)
		}
		id = ids[0]
		return nil
	})
	return id
}
