package redisbroker

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestBacklogDrops: a Handler that stalls until go-redis's buffer has been
// full past its send timeout makes go-redis drop pub/sub messages, the last
// ones included, after which nothing more is published. Once the Handler
// resumes it still sees every seq, in order.
func TestBacklogDrops(t *testing.T) {
	t.Parallel()
	const size, queue, total = 8, 4, 60
	// seq 1 stalls the Handler, queue wait in its shard's queue, one in the
	// receive loop for room there, size in go-redis's buffer.
	const dropped = total - 1 - queue - 1 - size
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	sub := newBroker(t, srv, Config{KeyPrefix: prefix})
	sub.setChannel(size, 5*time.Millisecond)
	sub.setShards(2, queue)
	h := &stallingHandler{Recorder: hubtest.NewRecorder(), room: "r",
		stalled: make(chan struct{}), resume: make(chan struct{})}
	if err := sub.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.unstall()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sub.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		h.Check(t)
	})
	pub, _ := startBroker(t, srv, Config{KeyPrefix: prefix})
	if err := sub.SubscribeRoom(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}

	drops := countDrops()
	mustPublish(t, pub, "r")
	select {
	case <-h.stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the Handler did not get seq 1")
	}
	for range total - 1 {
		mustPublish(t, pub, "r")
	}
	eventually(t, 10*time.Second, "go-redis dropping messages", func() error {
		if n := drops(); n < dropped {
			return fmt.Errorf("%d messages dropped, want %d", n, dropped)
		}
		return nil
	})
	h.unstall()
	if got := seqs(h.WaitPublications(t, "r", total)); !slices.Equal(got, span(1, total)) {
		t.Errorf("got seqs %v, want 1..%d in order", got, total)
	}
	mustPublish(t, pub, "r")
	if got := seqs(h.WaitPublications(t, "r", total+1)); got[total] != total+1 {
		t.Errorf("after the backlog, got seqs %v, want %d last", got[total-1:], total+1)
	}
	if s := sub.Stats(); s.Repaired < dropped || s.Lost != 0 || s.Backlogged == 0 {
		t.Errorf("stats %+v, want at least %d repaired, none lost, a backlog", s, dropped)
	}
}

// stallingHandler is a Recorder whose delivery of the first publication of
// room stalls, once, until unstall.
type stallingHandler struct {
	*hubtest.Recorder
	room    string
	once    sync.Once
	stalled chan struct{} // closed when the delivery stalls
	resume  chan struct{}
	resumed sync.Once
}

func (h *stallingHandler) HandlePublication(room string, p hub.Publication) {
	if room == h.room {
		h.once.Do(func() {
			close(h.stalled)
			<-h.resume
		})
	}
	h.Recorder.HandlePublication(room, p)
}

func (h *stallingHandler) unstall() { h.resumed.Do(func() { close(h.resume) }) }

var (
	dropLoggerOnce sync.Once
	droppedTotal   atomic.Uint64
)

// countDrops returns a function that reports how many pub/sub messages
// go-redis dropped in this process since countDrops was called. go-redis
// reports drops only to its process-wide logger: the first call replaces it
// with one that counts them and otherwise logs to stderr as go-redis does.
func countDrops() func() uint64 {
	dropLoggerOnce.Do(func() { redis.SetLogger(dropLogger{log.New(os.Stderr, "redis: ", log.LstdFlags)}) })
	start := droppedTotal.Load()
	return func() uint64 { return droppedTotal.Load() - start }
}

type dropLogger struct{ out *log.Logger }

func (l dropLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "message is dropped") {
		droppedTotal.Add(1)
		return
	}
	l.out.Print(msg)
}

// TestStoppedLoopReleasesWaiters: a caller awaiting Redis's confirmation of
// a SUBSCRIBE or UNSUBSCRIBE when the receive loop ends (Start's ctx was
// cancelled: the server is shutting down) is released at once, not after
// OpTimeout: the loop discards the confirmation with its buffer.
func TestStoppedLoopReleasesWaiters(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{OpTimeout: time.Minute})
	ctx, stop := context.WithCancel(context.Background())
	if err := b.Start(ctx, hubtest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	channel := b.userChannel("bob")
	b.mu.Lock()
	w := b.waitLocked(channel, "unsubscribe") // as unsubscribe does before UNSUBSCRIBE
	b.mu.Unlock()

	stop()
	waitCtx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b.await(waitCtx, channel, w)
	if waitCtx.Err() != nil {
		t.Fatal("the waiter was not released when the receive loop ended")
	}
	if _, _, _, waiters := b.subscriptionState(); waiters != 0 {
		t.Errorf("%d waiters left registered", waiters)
	}
}
