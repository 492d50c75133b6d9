package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
	"github.com/switchboard-chat/switchboard/protocol"
)

// msg returns a publish request for room.
func msg(t testing.TB, room string) hub.PublishRequest {
	t.Helper()
	m, err := protocol.NewMessage(room, "alice", []byte(`{"text":"hi"}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	return hub.PublishRequest{Message: m}
}

// eventually calls f until it returns nil, and fails t with its last error
// after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGapRepair: publications pub/sub did not deliver are read from history,
// including the first one after subscribing.
func TestGapRepair(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, rec := startBroker(t, srv, Config{})
	ctx := t.Context()
	for _, room := range []string{"r", "fresh"} {
		if err := b.SubscribeRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	mustPublish(t, b, "r")
	if _, err := b.publishSilently(ctx, "r", msg(t, "r").Message); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "r")
	if got := seqs(rec.WaitPublications(t, "r", 3)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("room r got seqs %v, want [1 2 3]", got)
	}

	// The first publication after subscribing is lost.
	if _, err := b.publishSilently(ctx, "fresh", msg(t, "fresh").Message); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "fresh")
	if got := seqs(rec.WaitPublications(t, "fresh", 2)); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("room fresh got seqs %v, want [1 2]", got)
	}
	if s := b.Stats(); s.Repaired < 2 || s.Lost != 0 {
		t.Errorf("stats %+v, want at least 2 repaired, none lost", s)
	}
}

// TestGapBeyondHistory: a gap longer than the history is delivered as a gap,
// and counted.
func TestGapBeyondHistory(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{HistorySize: 3})
	rec := hubtest.NewRecorder()
	if err := b.Start(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	ctx := t.Context()
	if err := b.SubscribeRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "r")
	// Once 1 is delivered the resync that follows the subscription is
	// over: what is published silently next is a gap, not part of it.
	rec.WaitPublications(t, "r", 1)
	for range 5 { // seqs 2 to 6
		if _, err := b.publishSilently(ctx, "r", msg(t, "r").Message); err != nil {
			t.Fatal(err)
		}
	}
	mustPublish(t, b, "r")
	// Once 7 is published history keeps 5, 6 and 7: 2, 3 and 4 are lost.
	if got := seqs(rec.WaitPublications(t, "r", 4)); !slices.Equal(got, []uint64{1, 5, 6, 7}) {
		t.Errorf("got seqs %v, want [1 5 6 7]", got)
	}
	if s := b.Stats(); s.Lost != 3 {
		t.Errorf("stats %+v, want 3 lost", s)
	}
	if v := rec.Violations(); len(v) != 1 {
		t.Errorf("violations %q, want the one gap", v)
	}
}

func mustPublish(t testing.TB, b *Broker, room string) hub.Publication {
	t.Helper()
	p, _, err := b.Publish(t.Context(), room, msg(t, room))
	if err != nil {
		t.Fatalf("Publish(%q): %v", room, err)
	}
	return p
}

func seqs(pubs []hub.Publication) []uint64 {
	var s []uint64
	for _, p := range pubs {
		s = append(s, p.Seq)
	}
	return s
}

// TestClientKill: pub/sub connections killed while another node publishes
// continuously lose nothing: the subscriber sees every seq, in order.
func TestClientKill(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	sub, rec := startBroker(t, srv, Config{KeyPrefix: prefix, HistorySize: 5000})
	pub, _ := startBroker(t, srv, Config{KeyPrefix: prefix, HistorySize: 5000})
	if err := sub.SubscribeRoom(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	admin := srv.Client(t)
	const total = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range total {
			if _, _, err := pub.Publish(t.Context(), "r", msg(t, "r")); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	}()
	kills := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(15 * time.Millisecond):
			n, err := admin.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Result()
			if err != nil {
				t.Fatalf("CLIENT KILL: %v", err)
			}
			kills += int(n)
		}
	}
	got := rec.WaitPublications(t, "r", total)
	if want := span(1, total); !slices.Equal(seqs(got), want) {
		t.Errorf("got %d publications, not seqs 1..%d in order", len(got), total)
	}
	t.Logf("%d connections killed; subscriber stats %+v", kills, sub.Stats())
	if kills == 0 {
		t.Errorf("no pub/sub connection was killed: the test tested nothing")
	}
}

func span(first, last uint64) []uint64 {
	var s []uint64
	for q := first; q <= last; q++ {
		s = append(s, q)
	}
	return s
}

// TestRestart: while Redis is down calls fail fast with ErrUnavailable and
// subscriptions are kept; when it is back they are restored without action,
// and the lost history shows as a new epoch.
func TestRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const opTimeout = time.Second
	cfg := Config{KeyPrefix: uniquePrefix(), OpTimeout: opTimeout}
	sub, rec := startBroker(t, srv, cfg)
	pub, _ := startBroker(t, srv, cfg)
	ctx := t.Context()
	if err := sub.SubscribeRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := sub.SubscribeUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	before := mustPublish(t, pub, "r")
	rec.WaitPublications(t, "r", 1)

	srv.Stop()
	checkDown(t, pub, opTimeout)
	if err := sub.SubscribeRoom(ctx, "r2"); err != nil {
		t.Errorf("SubscribeRoom while down = %v, want nil", err)
	}

	srv.Start()
	eventually(t, 10*time.Second, "Ready after restart", func() error { return pub.Ready(ctx) })
	var after hub.Publication
	eventually(t, 10*time.Second, "Publish after restart", func() (err error) {
		after, _, err = pub.Publish(ctx, "r", msg(t, "r"))
		return err
	})
	if after.Epoch == before.Epoch || after.Seq != 1 {
		t.Errorf("after restart published seq %d epoch %q, want seq 1 in a new epoch (not %q)",
			after.Seq, after.Epoch, before.Epoch)
	}
	checkRestored(t, pub, rec, after)
}

// checkDown checks the calls of a broker whose Redis is down.
func checkDown(t *testing.T, b *Broker, opTimeout time.Duration) {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	_, _, err := b.Publish(ctx, "r", msg(t, "r"))
	if !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("Publish while down = %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > opTimeout {
		t.Errorf("Publish while down took %v, want at most %v", elapsed, opTimeout)
	}
	if err := b.Ready(ctx); !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("Ready while down = %v, want ErrUnavailable", err)
	}
	if _, err := b.History(ctx, "r", hub.HistoryQuery{}); !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("History while down = %v, want ErrUnavailable", err)
	}
}

// checkRestored checks that the subscriptions of TestRestart's subscriber
// work again: room r got the publication after, room r2 (subscribed while
// down) and user bob get what pub sends.
func checkRestored(t *testing.T, pub *Broker, rec *hubtest.Recorder, after hub.Publication) {
	t.Helper()
	rec.Wait(t, "the publication after restart", func() bool {
		return slices.ContainsFunc(rec.Publications("r"), func(p hub.Publication) bool { return p.Epoch == after.Epoch })
	})
	mustPublish(t, pub, "r2")
	rec.WaitPublications(t, "r2", 1)
	e := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"dm"}`)}
	eventually(t, 10*time.Second, "SendUser after restart", func() error {
		delivered, _, err := pub.SendUser(t.Context(), "bob", e, "")
		if err == nil && !delivered {
			err = errors.New("not delivered")
		}
		return err
	})
	rec.Wait(t, "the user event", func() bool { return len(rec.UserEvents("bob")) > 0 })
}

// TestPublishTimeout: a publish that times out may have run; the error says
// so, and a retry with the same key cannot publish twice.
func TestPublishTimeout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const opTimeout = 300 * time.Millisecond
	b, _ := startBroker(t, srv, Config{OpTimeout: opTimeout})
	ctx := t.Context()
	mustPublish(t, b, "r") // loads the script
	admin := srv.Client(t)
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "5000", "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	r := msg(t, "r")
	r.IdempotencyKey = "k"
	start := time.Now()
	_, _, err := b.Publish(ctx, "r", r)
	if !errors.Is(err, hub.ErrUnavailable) || !errors.Is(err, hub.ErrMaybeDelivered) {
		t.Errorf("Publish while paused = %v, want ErrUnavailable and ErrMaybeDelivered", err)
	}
	if elapsed := time.Since(start); elapsed > opTimeout+500*time.Millisecond {
		t.Errorf("Publish while paused took %v, want about %v", elapsed, opTimeout)
	}
	if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatalf("CLIENT UNPAUSE: %v", err)
	}
	eventually(t, 5*time.Second, "retry", func() error {
		_, _, err := b.Publish(ctx, "r", r)
		return err
	})
	page, err := b.History(ctx, "r", hub.HistoryQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Publications) != 2 {
		t.Errorf("history has seqs %v, want 2: the first and the keyed one, once", seqs(page.Publications))
	}
}

// TestConcurrentClose: Close while calls are in flight neither hangs nor
// races.
func TestConcurrentClose(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	if err := b.Start(context.Background(), hubtest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				b.SubscribeRoom(t.Context(), "r")
				b.Publish(t.Context(), "r", msg(t, "r"))
				b.UnsubscribeRoom(t.Context(), "r")
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
}

// gatedHandler is a Recorder whose delivery of room "gate" blocks until open
// is closed, simulating a shard that fell behind: the rooms of gate's shard
// wait, those of other shards do not (see sameShard).
type gatedHandler struct {
	*hubtest.Recorder
	open chan struct{}
}

func (h gatedHandler) HandlePublication(room string, p hub.Publication) {
	if room == "gate" {
		<-h.open
	}
	h.Recorder.HandlePublication(room, p)
}

// TestRepairReadsOnlyTheGap: when a shard is behind, a gap is repaired by
// reading only the missing range, not what is still queued: history that
// moved on meanwhile does not turn queued publications into losses.
func TestRepairReadsOnlyTheGap(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{HistorySize: 5})
	h := gatedHandler{hubtest.NewRecorder(), make(chan struct{})}
	if err := b.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	ctx := t.Context()
	r := sameShard(b, "gate", "r")
	for _, room := range []string{"gate", r} {
		if err := b.SubscribeRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	// Once seq 1 is delivered the resync that follows r's subscription is
	// over: it cannot read what comes next.
	mustPublish(t, b, r)
	h.WaitPublications(t, r, 1)
	mustPublish(t, b, "gate") // blocks the shard
	if _, err := b.publishSilently(ctx, r, msg(t, r).Message); err != nil {
		t.Fatal(err) // seq 2, lost
	}
	const total = 100
	for range total - 2 {
		mustPublish(t, b, r)
	}
	close(h.open)
	got := h.WaitPublications(t, r, total-1)
	if want := append([]uint64{1}, span(3, total)...); !slices.Equal(seqs(got), want) {
		t.Errorf("got seqs %v, want 1 and 3..%d", seqs(got), total)
	}
	if s := b.Stats(); s.Lost != 1 {
		t.Errorf("stats %+v, want 1 lost: seq 2, trimmed from history before the shard read it", s)
	}
}

// TestResyncWaitsForBuffered: when a subscription is confirmed while its
// shard is behind and history has moved on, the resync does not count the
// queued publications as lost.
func TestResyncWaitsForBuffered(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{HistorySize: 5, OpTimeout: 300 * time.Millisecond})
	h := gatedHandler{hubtest.NewRecorder(), make(chan struct{})}
	if err := b.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	ctx := t.Context()
	if err := b.SubscribeRoom(ctx, "gate"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "gate") // blocks the shard
	r := sameShard(b, "gate", "r")
	if err := b.SubscribeRoom(ctx, r); err != nil {
		t.Fatal(err) // its resync waits behind the gate
	}
	const total = 50
	for range total {
		mustPublish(t, b, r)
	}
	close(h.open)
	got := h.WaitPublications(t, r, total)
	if want := span(1, total); !slices.Equal(seqs(got), want) {
		t.Errorf("got seqs %v, want 1..%d", seqs(got), total)
	}
	if s := b.Stats(); s.Lost != 0 {
		t.Errorf("stats %+v, want none lost", s)
	}
}

// TestRollback: Redis comes back older than what it acknowledged (killed,
// then restarted from a snapshot taken before the last five publications,
// as with RDB or an everysec AOF). A member's node got seqs 6 to 10; had
// the room's next publication reused seq 6 in the same epoch, the member
// would take it for one it already has. Without Durable it starts a new
// epoch instead, and history holds only the new life. With Durable the
// broker trusts Redis, and the seqs go on from the snapshot's.
func TestRollback(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			cfg := Config{KeyPrefix: uniquePrefix(), OpTimeout: time.Second, Durable: durable}
			pub, _ := startBroker(t, srv, cfg)
			ctx := t.Context()
			var rec *hubtest.Recorder
			if !durable { // with Durable the reused seq is a violation the Recorder reports
				var sub *Broker
				sub, rec = startBroker(t, srv, cfg)
				if err := sub.SubscribeRoom(ctx, "r"); err != nil {
					t.Fatal(err)
				}
			}
			for range 5 {
				mustPublish(t, pub, "r")
			}
			if err := srv.Client(t).Save(ctx).Err(); err != nil {
				t.Fatalf("SAVE: %v", err)
			}
			var lost hub.Publication
			for range 5 {
				lost = mustPublish(t, pub, "r")
			}
			if rec != nil {
				rec.WaitPublications(t, "r", 10)
			}
			srv.Stop() // SIGKILL: seqs 6 to 10 were never saved
			srv.Start()
			var after hub.Publication
			eventually(t, 10*time.Second, "Publish after the restart", func() (err error) {
				after, _, err = pub.Publish(ctx, "r", msg(t, "r"))
				return err
			})
			if durable {
				if after.Epoch != lost.Epoch || after.Seq != 6 {
					t.Fatalf("after the restart: seq %d epoch %q, want seq 6 in epoch %q (trusted)", after.Seq, after.Epoch, lost.Epoch)
				}
				return
			}
			if after.Epoch == lost.Epoch || after.Seq != 1 {
				t.Fatalf("after the restart: seq %d epoch %q, want seq 1 in a new epoch (not %q)", after.Seq, after.Epoch, lost.Epoch)
			}
			rec.Wait(t, "the new epoch's publication", func() bool {
				pubs := rec.Publications("r")
				return len(pubs) > 0 && pubs[len(pubs)-1].Epoch == after.Epoch
			})
			page, err := pub.History(ctx, "r", hub.HistoryQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if page.Position.Epoch != after.Epoch || page.Position.Seq != 1 || len(page.Publications) != 1 {
				t.Errorf("history after the restart: position %+v, %d publications; want the new epoch's one", page.Position, len(page.Publications))
			}
		})
	}
}

// TestRestartEndsHistoryLife: without Durable, even a restart that lost
// nothing (Redis saved on the way down) starts every room's history anew:
// the broker cannot tell it from a rollback. Presence and the rest survive.
func TestRestartEndsHistoryLife(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := Config{KeyPrefix: uniquePrefix(), OpTimeout: time.Second}
	pub, _ := startBroker(t, srv, cfg)
	ctx := t.Context()
	before := mustPublish(t, pub, "r")
	if err := srv.Client(t).Save(ctx).Err(); err != nil {
		t.Fatalf("SAVE: %v", err)
	}
	srv.Stop()
	srv.Start()
	var page hub.HistoryPage
	eventually(t, 10*time.Second, "History after the restart", func() (err error) {
		page, err = pub.History(ctx, "r", hub.HistoryQuery{Limit: 100})
		return err
	})
	if page.Position.Epoch == before.Epoch || len(page.Publications) != 0 {
		t.Errorf("history after a restart: position %+v, %d publications; want a new epoch, empty", page.Position, len(page.Publications))
	}
}

// TestLifeAdopted: a room whose meta records no run of Redis (written by an
// earlier version, or by a node with Durable) is adopted by a node without
// Durable, not restarted: an upgrade does not end every room's history.
func TestLifeAdopted(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	old, _ := startBroker(t, srv, Config{KeyPrefix: prefix, Durable: true})
	first := mustPublish(t, old, "r")
	if run, err := srv.Client(t).HGet(t.Context(), old.metaKey("r"), "r").Result(); err == nil {
		t.Fatalf("a durable broker recorded run %q", run)
	}
	b, _ := startBroker(t, srv, Config{KeyPrefix: prefix})
	next := mustPublish(t, b, "r")
	if next.Epoch != first.Epoch || next.Seq != 2 {
		t.Errorf("published seq %d epoch %q, want seq 2 in epoch %q", next.Seq, next.Epoch, first.Epoch)
	}
	if run, err := srv.Client(t).HGet(t.Context(), b.metaKey("r"), "r").Result(); err != nil || run == "" {
		t.Errorf("run recorded after adoption: %q, %v; want this run's id", run, err)
	}
}
