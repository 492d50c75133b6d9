package memorybroker_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// gateHandler records deliveries as "room#seq" and "room:event", and
// blocks a delivery of the room stuck until release is closed.
type gateHandler struct {
	stuck   string
	entered chan struct{} // closed when a delivery of stuck blocked
	release chan struct{}
	once    sync.Once

	mu  sync.Mutex
	got map[string][]string
}

func newGateHandler(stuck string) *gateHandler {
	return &gateHandler{stuck: stuck, entered: make(chan struct{}), release: make(chan struct{}), got: make(map[string][]string)}
}

func (g *gateHandler) HandlePublication(room string, p hub.Publication) {
	g.record(room, fmt.Sprintf("%s#%d", room, p.Seq))
}

func (g *gateHandler) HandleRoomEvent(room string, e hub.Event) {
	g.record(room, room+":"+string(e.Frame))
}

func (g *gateHandler) HandleUserEvent(user string, e hub.Event) {
	g.record("@"+user, string(e.Frame))
}

func (g *gateHandler) record(key, what string) {
	if key == g.stuck {
		g.once.Do(func() { close(g.entered) })
		<-g.release
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got[key] = append(g.got[key], what)
}

func (g *gateHandler) deliveries(key string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.got[key])
}

// wait waits until cond holds, failing t after hubtest.WaitTimeout.
func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hubtest.WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func publish(t *testing.T, b *memorybroker.Broker, room string) hub.Publication {
	t.Helper()
	msg, err := protocol.NewMessage(room, "alice", []byte(`1`), 0)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := b.Publish(context.Background(), room, hub.PublishRequest{Message: msg})
	if err != nil {
		t.Errorf("Publish(%q): %v", room, err)
	}
	return p
}

// otherRoom returns a room delivered by another goroutine than room's.
func otherRoom(t *testing.T, b *memorybroker.Broker, room string) string {
	t.Helper()
	for i := range 1000 {
		if name := fmt.Sprint("other", i); b.WorkerOf(name) != b.WorkerOf(room) {
			return name
		}
	}
	t.Fatal("no room on another delivery goroutine")
	return ""
}

// TestPublishDoesNotWaitForDelivery: while a room's delivery is stuck in
// the Handler, Publish to it returns, a room of another delivery goroutine
// is still delivered, and once unstuck the room's deliveries come in order.
func TestPublishDoesNotWaitForDelivery(t *testing.T) {
	t.Parallel()
	g := newGateHandler("stuck")
	b := startBroker(t, memorybroker.Config{Workers: 2}, g)
	other := otherRoom(t, b, "stuck")
	for _, room := range []string{"stuck", other} {
		if err := b.SubscribeRoom(t.Context(), room); err != nil {
			t.Fatal(err)
		}
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for range 5 {
			publish(t, b, "stuck")
		}
	}()
	select {
	case <-returned:
	case <-time.After(hubtest.WaitTimeout):
		close(g.release)
		t.Fatal("Publish waited for the room's delivery")
	}
	<-g.entered
	publish(t, b, other)
	wait(t, "the other room's delivery", func() bool { return len(g.deliveries(other)) == 1 })

	close(g.release)
	want := []string{"stuck#1", "stuck#2", "stuck#3", "stuck#4", "stuck#5"}
	wait(t, "the stuck room's deliveries", func() bool { return len(g.deliveries("stuck")) == len(want) })
	if got := g.deliveries("stuck"); !slices.Equal(got, want) {
		t.Errorf("stuck room got %v, want %v", got, want)
	}
}

// TestDeliveryBackpressure: a publisher that finds its room's queue full
// waits until there is room on it; nothing is dropped.
func TestDeliveryBackpressure(t *testing.T) {
	t.Parallel()
	g := newGateHandler("r")
	b := startBroker(t, memorybroker.Config{Workers: 1, QueueSize: 1}, g)
	if err := b.SubscribeRoom(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "r") // taken by the goroutine, which blocks
	<-g.entered
	publish(t, b, "r") // fills the queue
	third := make(chan struct{})
	go func() {
		defer close(third)
		publish(t, b, "r")
	}()
	select {
	case <-third:
		t.Fatal("Publish returned while the delivery queue was full")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	<-third
	want := []string{"r#1", "r#2", "r#3"}
	wait(t, "3 deliveries", func() bool { return len(g.deliveries("r")) == 3 })
	if got := g.deliveries("r"); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestDeliveryOrderPerRoom: concurrent publishers to several rooms, each
// sending a room event after each of its publications: per room, the
// publications come in seq order and every event after the publication it
// follows.
func TestDeliveryOrderPerRoom(t *testing.T) {
	t.Parallel()
	const rooms, publishers, each = 4, 4, 50
	rec := hubtest.NewRecorder()
	ord := &orderHandler{Recorder: rec, seen: make(map[string]uint64)}
	b := startBroker(t, memorybroker.Config{Workers: 3, QueueSize: 8}, ord)
	for r := range rooms {
		if err := b.SubscribeRoom(t.Context(), fmt.Sprint("room", r)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				room := fmt.Sprint("room", (p+i)%rooms)
				pub := publish(t, b, room)
				e := hub.Event{Frame: fmt.Appendf(nil, "after %d", pub.Seq)}
				if err := b.BroadcastRoom(context.Background(), room, e); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for r := range rooms {
		total += len(rec.Publications(fmt.Sprint("room", r)))
	}
	if total != publishers*each {
		t.Errorf("%d publications delivered, want %d", total, publishers*each)
	}
	rec.Check(t) // seq order without gaps
	for _, v := range ord.violations() {
		t.Error(v)
	}
}

// orderHandler checks that an event "after N" comes after publication N of
// its room.
type orderHandler struct {
	*hubtest.Recorder
	mu   sync.Mutex
	seen map[string]uint64 // room → last seq delivered
	bad  []string
}

func (o *orderHandler) HandlePublication(room string, p hub.Publication) {
	o.mu.Lock()
	o.seen[room] = p.Seq
	o.mu.Unlock()
	o.Recorder.HandlePublication(room, p)
}

func (o *orderHandler) HandleRoomEvent(room string, e hub.Event) {
	var after uint64
	fmt.Sscanf(string(e.Frame), "after %d", &after)
	o.mu.Lock()
	if o.seen[room] < after {
		o.bad = append(o.bad, fmt.Sprintf("%s: %q delivered after seq %d", room, e.Frame, o.seen[room]))
	}
	o.mu.Unlock()
	o.Recorder.HandleRoomEvent(room, e)
}

func (o *orderHandler) violations() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.bad)
}

// TestUnsubscribeDropsQueued: once UnsubscribeRoom or UnsubscribeUser
// returned, nothing of the room or user is delivered, not what was queued
// before, nor after a new subscription.
func TestUnsubscribeDropsQueued(t *testing.T) {
	t.Parallel()
	g := newGateHandler("stuck")
	b := startBroker(t, memorybroker.Config{Workers: 1}, g) // one goroutine: all queue behind stuck
	ctx := t.Context()
	for _, room := range []string{"stuck", "r"} {
		if err := b.SubscribeRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SubscribeUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "stuck")
	<-g.entered
	publish(t, b, "r")
	if err := b.BroadcastRoom(ctx, "r", hub.Event{Frame: []byte("typing")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.SendUser(ctx, "bob", hub.Event{Kind: hub.EventKick}, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.UnsubscribeRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := b.UnsubscribeUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := b.SubscribeRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := b.SubscribeUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	publish(t, b, "r")
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.deliveries("r"), " "); got != "r#2" {
		t.Errorf("room r got %q, want only r#2, published after subscribing again", got)
	}
	if got := g.deliveries("@bob"); len(got) != 0 {
		t.Errorf("bob got %q, queued before unsubscribing", got)
	}
}

// TestCloseStopsDelivery: Close stops the delivery goroutines, dropping
// what is queued, and releases a publisher waiting for room on a full
// queue; a later Publish stores and delivers nothing. Not parallel: it
// counts goroutines.
func TestCloseStopsDelivery(t *testing.T) {
	before := runtime.NumGoroutine()
	g := newGateHandler("r")
	b := memorybroker.New(memorybroker.Config{Workers: 2, QueueSize: 1})
	if err := b.Start(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if err := b.SubscribeRoom(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "r")
	<-g.entered
	publish(t, b, "r")
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		publish(t, b, "r") // waits: the queue is full
	}()
	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	<-waiting // Close released it
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if p := publish(t, b, "r"); p.Seq != 4 {
		t.Errorf("Publish after Close: seq %d, want 4", p.Seq)
	}
	if err := b.Flush(t.Context()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
	if got := g.deliveries("r"); len(got) > 2 {
		t.Errorf("delivered %v, want at most r#1 and r#2", got)
	}
	if err := hubtest.Settled(before, hubtest.WaitTimeout); err != nil {
		t.Error(err)
	}
}

// TestStartContextStopsDelivery: the delivery goroutines also stop when
// Start's context is done.
func TestStartContextStopsDelivery(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	b := memorybroker.New(memorybroker.Config{Workers: 3})
	if err := b.Start(ctx, newGateHandler("")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := hubtest.Settled(before, hubtest.WaitTimeout); err != nil {
		t.Error(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
}
