package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// sameShard returns base, or base followed by a number, so that it is
// delivered by the shard of room of.
func sameShard(b *Broker, of, base string) string {
	return findName(b, base, func(i int) bool { return i == b.shardIndex(of) })
}

// otherShard returns base, or base followed by a number, so that it is
// delivered by another shard than room of's. b has more than one shard.
func otherShard(b *Broker, of, base string) string {
	return findName(b, base, func(i int) bool { return i != b.shardIndex(of) })
}

func findName(b *Broker, base string, ok func(shard int) bool) string {
	for n := 0; ; n++ {
		name := base
		if n > 0 {
			name += strconv.Itoa(n)
		}
		if ok(b.shardIndex(name)) {
			return name
		}
	}
}

// blockingHandler is a Recorder whose deliveries of room "a" block until
// open is closed, announcing each on entered.
type blockingHandler struct {
	*hubtest.Recorder
	entered chan struct{}
	open    chan struct{}
}

func (h blockingHandler) HandlePublication(room string, p hub.Publication) {
	if room == "a" {
		h.entered <- struct{}{}
		<-h.open
	}
	h.Recorder.HandlePublication(room, p)
}

// TestShardsDeliverConcurrently: while the Handler is blocked delivering
// room a, a room of another shard still gets its publications and events,
// and can be unsubscribed; once the Handler resumes, a gets all of its
// publications in order.
func TestShardsDeliverConcurrently(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	b.setShards(4, 256)
	h := blockingHandler{hubtest.NewRecorder(), make(chan struct{}, 10), make(chan struct{})}
	if err := b.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		h.Check(t)
	})
	ctx := t.Context()
	other := otherShard(b, "a", "b")
	for _, room := range []string{"a", other} {
		if err := b.SubscribeRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		mustPublish(t, b, "a")
	}
	select {
	case <-h.entered:
	case <-time.After(hubtest.WaitTimeout):
		t.Fatal("the Handler did not get room a's first publication")
	}

	for i := range 5 {
		mustPublish(t, b, other)
		h.WaitPublications(t, other, i+1)
	}
	e := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"typing"}`)}
	if err := b.BroadcastRoom(ctx, other, e); err != nil {
		t.Fatal(err)
	}
	h.Wait(t, "room "+other+"'s event", func() bool { return len(h.RoomEvents(other)) == 1 })
	if err := b.UnsubscribeRoom(ctx, other); err != nil {
		t.Fatal(err)
	}

	close(h.open)
	if got := seqs(h.WaitPublications(t, "a", 3)); !slices.Equal(got, span(1, 3)) {
		t.Errorf("room a got seqs %v, want 1..3", got)
	}
}

// TestOrderAcrossShards: concurrent publishers to many rooms, spread over
// every shard, deliver every room's publications exactly once in seq order,
// and each room's events in the order they were broadcast.
func TestOrderAcrossShards(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	sub := newBroker(t, srv, Config{KeyPrefix: prefix})
	sub.setShards(4, 16) // a short queue: the receive loop waits for the shards
	rec := hubtest.NewRecorder()
	if err := sub.Start(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sub.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		rec.Check(t)
	})
	pub, _ := startBroker(t, srv, Config{KeyPrefix: prefix})
	const rooms, publishers, perPublisher, events = 24, 4, 15, 10
	names := make([]string, rooms)
	shards := make(map[int]bool)
	for i := range names {
		names[i] = fmt.Sprintf("room%d", i)
		shards[sub.shardIndex(names[i])] = true
		if err := sub.SubscribeRoom(t.Context(), names[i]); err != nil {
			t.Fatal(err)
		}
	}
	if len(shards) != 4 {
		t.Fatalf("the rooms use %d shards, want 4", len(shards))
	}

	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range perPublisher {
				for _, room := range names {
					if _, _, err := pub.Publish(t.Context(), room, msg(t, room)); err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
				}
			}
		})
	}
	for _, room := range names {
		wg.Go(func() {
			for i := range events {
				e := hub.Event{Kind: hub.EventFrame, Frame: fmt.Appendf(nil, `{"n":%d}`, i)}
				if err := pub.BroadcastRoom(t.Context(), room, e); err != nil {
					t.Errorf("BroadcastRoom: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	for _, room := range names {
		if got := seqs(rec.WaitPublications(t, room, publishers*perPublisher)); !slices.Equal(got, span(1, publishers*perPublisher)) {
			t.Errorf("room %s got seqs %v, want 1..%d", room, got, publishers*perPublisher)
		}
		rec.Wait(t, "room "+room+"'s events", func() bool { return len(rec.RoomEvents(room)) >= events })
		for i, e := range rec.RoomEvents(room) {
			if want := fmt.Sprintf(`{"n":%d}`, i); string(e.Frame) != want {
				t.Errorf("room %s event %d = %s, want %s", room, i, e.Frame, want)
			}
		}
	}
}
