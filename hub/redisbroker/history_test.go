package redisbroker

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
	"github.com/switchboard-chat/switchboard/protocol"
)

// sized returns a publish request for room whose frame has about n bytes.
func sized(t testing.TB, room string, n int) hub.PublishRequest {
	t.Helper()
	data, _ := json.Marshal(map[string]string{"text": strings.Repeat("x", n)})
	m, err := protocol.NewMessage(room, "alice", data, 1)
	if err != nil {
		t.Fatal(err)
	}
	return hub.PublishRequest{Message: m}
}

// TestIdempotencyKeyKeepsSeqAndEpoch: the idempotency key of a large
// publish keeps a few bytes, not the frame, and a repeat still answers
// with the first publish's seq and epoch.
func TestIdempotencyKeyKeepsSeqAndEpoch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	ctx := t.Context()
	r := sized(t, "r", 60<<10)
	r.IdempotencyKey = "big"
	first, dup, err := b.Publish(ctx, "r", r)
	if err != nil || dup {
		t.Fatalf("Publish = %v, duplicate %v", err, dup)
	}
	if string(first.Frame) != string(r.Message.Frame(first.Seq)) {
		t.Errorf("Publish returned a frame of %d bytes, not the message's", len(first.Frame))
	}
	n, err := srv.Client(t).StrLen(ctx, b.pubIdemKey("r", "big")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || n > 64 {
		t.Errorf("the idempotency key holds %d bytes, want a few (epoch and seq)", n)
	}
	again, dup, err := b.Publish(ctx, "r", r)
	if err != nil || !dup || again.Seq != first.Seq || again.Epoch != first.Epoch {
		t.Errorf("repeat = %+v, %v, duplicate %v; want seq %d epoch %q, a duplicate",
			again, err, dup, first.Seq, first.Epoch)
	}
}

// TestHistoryMaxBytes: a room's history is trimmed, oldest first, to
// HistoryMaxBytes, always keeping the newest publication, and still to
// HistorySize.
func TestHistoryMaxBytes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const maxBytes = 10_000
	b := newBroker(t, srv, Config{HistorySize: 100, HistoryMaxBytes: maxBytes})
	admin := srv.Client(t)
	ctx := t.Context()
	check := func(what string, wantFirst, wantLast uint64) {
		t.Helper()
		page, err := b.History(ctx, "r", hub.HistoryQuery{HasSince: true})
		if err != nil {
			t.Fatal(err)
		}
		got := seqs(page.Publications)
		if !slices.Equal(got, span(wantFirst, wantLast)) {
			t.Errorf("%s: history has seqs %v, want %d..%d", what, got, wantFirst, wantLast)
		}
		total := 0
		for _, p := range page.Publications {
			total += len(p.Frame)
		}
		if len(got) > 1 && total > maxBytes {
			t.Errorf("%s: history holds %d bytes, want at most %d", what, total, maxBytes)
		}
		kept, err := admin.HGet(ctx, b.metaKey("r"), "b").Int()
		if err != nil || kept != total {
			t.Errorf("%s: meta counts %d bytes (%v), want %d", what, kept, err, total)
		}
	}
	for range 30 { // about 1 KiB each: the newest 9 fit
		if _, _, err := b.Publish(ctx, "r", sized(t, "r", 1000)); err != nil {
			t.Fatal(err)
		}
	}
	check("1 KiB frames", 22, 30)
	if _, _, err := b.Publish(ctx, "r", sized(t, "r", 3*maxBytes)); err != nil {
		t.Fatal(err)
	}
	check("a frame above the cap", 31, 31)
	for range 150 { // small: HistorySize trims
		if _, _, err := b.Publish(ctx, "r", msg(t, "r")); err != nil {
			t.Fatal(err)
		}
	}
	check("small frames", 82, 181)
}

// TestReadsStoreNothing: reading the history or position of rooms nobody
// published to, in every kind of query, writes nothing to Redis; only a
// subscription gives a room its epoch before the first publish, and that
// publish keeps it.
func TestReadsStoreNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	admin := srv.Client(t)
	ctx := t.Context()
	before, err := admin.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	queries := []hub.HistoryQuery{
		{},
		{Limit: 10},
		{Limit: 10, Before: 5, MaxBytes: 100},
		{HasSince: true},
		{HasSince: true, Since: 3, Epoch: "000000000000", MaxBytes: 100},
	}
	for i := range 200 {
		room := fmt.Sprintf("unused%d", i)
		page, err := b.History(ctx, room, queries[i%len(queries)])
		if err != nil {
			t.Fatal(err)
		}
		if page.Position.Seq != 0 || page.Position.Epoch == "" || len(page.Publications) != 0 {
			t.Fatalf("History of an unused room = %+v, want seq 0, an epoch, nothing", page)
		}
	}
	if after, err := admin.DBSize(ctx).Result(); err != nil || after != before {
		t.Fatalf("DBSIZE went from %d to %d (%v): reads wrote keys", before, after, err)
	}

	if err := b.Start(ctx, nopHandler{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(t.Context()) })
	if err := b.SubscribeRoom(ctx, "joined"); err != nil {
		t.Fatal(err)
	}
	pos, err := b.History(ctx, "joined", hub.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if p := mustPublish(t, b, "joined"); p.Epoch != pos.Position.Epoch || p.Seq != 1 {
		t.Errorf("first publish after a subscription = seq %d epoch %q, want 1 and %q", p.Seq, p.Epoch, pos.Position.Epoch)
	}
}

// nopHandler discards what a Broker delivers.
type nopHandler struct{}

func (nopHandler) HandlePublication(string, hub.Publication) {}
func (nopHandler) HandleRoomEvent(string, hub.Event)         {}
func (nopHandler) HandleUserEvent(string, hub.Event)         {}

// TestOtherEpochReadsNoStream: a Since query with an epoch that is not the
// room's returns its position without reading the stream.
func TestOtherEpochReadsNoStream(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	ctx := t.Context()
	p := mustPublish(t, b, "r")
	xranges := func() int { return commandCalls(t, srv, "xrange") }
	start := xranges()
	page, err := b.History(ctx, "r", hub.HistoryQuery{HasSince: true, Epoch: "000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Publications) != 0 || page.Position != (hub.Position{Seq: 1, Epoch: p.Epoch}) {
		t.Errorf("History = %+v, want no publications and position 1 %s", page, p.Epoch)
	}
	if n := xranges() - start; n != 0 {
		t.Errorf("%d XRANGE calls, want none", n)
	}
}

var callsRE = regexp.MustCompile(`calls=(\d+)`)

// commandCalls returns how many times Redis ran cmd, per INFO commandstats.
func commandCalls(t testing.TB, srv *redistest.Server, cmd string) int {
	t.Helper()
	info, err := srv.Client(t).Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":"); ok {
			if m := callsRE.FindStringSubmatch(rest); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	return 0
}

// TestFrameStoredOnce: what Redis keeps of keyed publications is each frame
// once, in the room's stream; every other key the publishes wrote (meta,
// idempotency keys) holds a few bytes, whatever the frame's size.
func TestFrameStoredOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newBroker(t, srv, Config{})
	admin := srv.Client(t)
	ctx := t.Context()
	const count, size = 20, 16 << 10
	frames := 0
	for i := range count {
		r := sized(t, "r", size)
		r.IdempotencyKey = fmt.Sprintf("k%d", i)
		p, _, err := b.Publish(ctx, "r", r)
		if err != nil {
			t.Fatal(err)
		}
		frames += len(p.Frame)
	}
	keys, err := admin.Keys(ctx, globEscape(b.cfg.KeyPrefix)+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2+count {
		t.Errorf("keys %q, want the meta, the stream and %d idempotency keys", keys, count)
	}
	for _, k := range keys {
		n, err := admin.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case k == b.streamKey("r"):
			// Beyond the frames: entry headers, the allocator's size
			// classes (about a quarter); a second copy would double it.
			if n < int64(frames) || n > int64(frames)*3/2 {
				t.Errorf("the stream uses %d bytes for %d bytes of frames, want them once", n, frames)
			}
		case n > 256:
			t.Errorf("key %s uses %d bytes, want a few", k, n)
		}
	}
}
