package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// departureLog records the departures brokers report (ReportDepartures),
// each as "node room user".
type departureLog struct {
	mu  sync.Mutex
	got []string
}

// watch makes b report its departures to d.
func (d *departureLog) watch(b *Broker) {
	b.ReportDepartures(func(room string, users []string) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, u := range users {
			d.got = append(d.got, b.NodeID()+" "+room+" "+u)
		}
	})
}

// of returns the reports of user in room, whichever node made them.
func (d *departureLog) of(room, user string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, r := range d.got {
		if strings.HasSuffix(r, " "+room+" "+user) {
			out = append(out, r)
		}
	}
	return out
}

// all returns every report so far, sorted.
func (d *departureLog) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(slices.Values(d.got))
}

// waitOnce waits until user's departure from room was reported, and checks
// that it was once, by one of nodes.
func (d *departureLog) waitOnce(t *testing.T, within time.Duration, room, user string, nodes ...string) {
	t.Helper()
	eventually(t, within, fmt.Sprintf("departure of %s from %s reported", user, room), func() error {
		if len(d.of(room, user)) == 0 {
			return fmt.Errorf("reports %q", d.all())
		}
		return nil
	})
	got := d.of(room, user)
	if len(got) != 1 || !slices.Contains(nodes, strings.Fields(got[0])[0]) {
		t.Errorf("departure of %s from %s reported as %q, want once by one of %q", user, room, got, nodes)
	}
}

// startWith starts a broker newBroker returns, delivering to a Recorder and
// reporting its departures to d, closed when t ends.
func startWith(t *testing.T, newBroker func(testing.TB, Config) *Broker, cfg Config, d *departureLog) *Broker {
	t.Helper()
	b := newBroker(t, cfg)
	d.watch(b)
	if err := b.Start(context.Background(), hubtest.NewRecorder()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	return b
}

// TestDeparturesOfCrashedNode: the users of a crashed node are reported as
// departed once, by one surviving node, both in a room the survivors
// refresh and in rooms where nobody else is (swept after its registry
// entry expired); a user also present on a live node is not; and the
// sweep leaves the live nodes' lonely rooms alone.
func TestDeparturesOfCrashedNode(t *testing.T) {
	t.Parallel()
	redisModes(t, func(t *testing.T, newBroker func(testing.TB, Config) *Broker) {
		const ttl = 600 * time.Millisecond
		prefix := uniquePrefix()
		var d departureLog
		start := func(id string) *Broker {
			return startWith(t, newBroker, Config{KeyPrefix: prefix, NodeID: id, PresenceTTL: ttl}, &d)
		}
		a, b, c := start("a"), start("b"), start("c")
		add(t, b, "shared", "bob", true)
		add(t, c, "shared", "cat", true)
		add(t, a, "shared", "ann", true)
		add(t, a, "shared", "bob", false)
		lonely := []string{"quiet", "still", "{odd}", "hush"} // on several masters of a cluster
		for _, room := range lonely {
			add(t, a, room, "ann", true)
			add(t, a, room, "al", true)
		}
		add(t, b, "bobs-own", "bob", true)
		time.Sleep(ttl) // refreshed meanwhile: nothing departed
		if got := d.all(); len(got) != 0 {
			t.Fatalf("departures before the crash: %q", got)
		}

		a.crash()
		d.waitOnce(t, 4*ttl, "shared", "ann", "b", "c")
		for _, room := range lonely {
			d.waitOnce(t, 4*ttl, room, "ann", "b", "c")
			d.waitOnce(t, 4*ttl, room, "al", "b", "c")
		}
		time.Sleep(ttl) // more refreshes and heartbeats: still reported once
		if got := d.all(); len(got) != 1+2*len(lonely) {
			t.Errorf("departures %q, want ann from shared and ann and al from %q, once each", got, lonely)
		}
		members(t, b, "shared", "bob", "cat")
		members(t, c, "bobs-own", "bob")
		for _, room := range lonely {
			members(t, b, room)
		}
		nodes(t, b, "b", "c")
	})
}

// TestDeparturesAfterRestartUnderSameID: a node that crashed and started
// again at once under the same id, before its registry entry expired,
// reports its earlier life's users in rooms nobody else is in, once their
// entries expired.
func TestDeparturesAfterRestartUnderSameID(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const ttl = 600 * time.Millisecond
	cfg := Config{KeyPrefix: uniquePrefix(), NodeID: "a", PresenceTTL: ttl}
	newB := func(t testing.TB, cfg Config) *Broker { return newBroker(t, srv, cfg) }
	var d departureLog
	a := startWith(t, newB, cfg, &d)
	add(t, a, "quiet", "ann", true)
	a.crash()
	again := startWith(t, newB, cfg, &d)
	d.waitOnce(t, 4*ttl, "quiet", "ann", "a")
	members(t, again, "quiet")
	if got := d.all(); len(got) != 1 {
		t.Errorf("departures %q, want ann's from quiet only", got)
	}
}

// TestDepartureOfRetriedRemoval: a removal that failed while Redis was down
// is reported as a departure, once, by the node that retried it.
func TestDepartureOfRetriedRemoval(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	newB := func(t testing.TB, cfg Config) *Broker { return newBroker(t, srv, cfg) }
	var d departureLog
	a := startWith(t, newB, Config{KeyPrefix: prefix, NodeID: "a"}, &d)
	b := startWith(t, newB, Config{KeyPrefix: prefix, NodeID: "b"}, &d)
	add(t, a, "r", "ann", true)
	add(t, b, "r", "bob", true)
	srv.Stop()
	if _, err := a.Remove(t.Context(), "r", "ann"); err == nil {
		t.Fatal("Remove with Redis down: no error")
	}
	srv.Start()
	d.waitOnce(t, 10*time.Second, "r", "ann", "a")
	time.Sleep(3 * retryInterval) // more retries: still once
	if got := d.all(); len(got) != 1 {
		t.Errorf("departures %q, want ann's once", got)
	}
}

// TestNodeRoomSet: a node's room set holds the rooms it has entries in:
// a room goes in with the first entry and out with the last, and Close
// deletes the set.
func TestNodeRoomSet(t *testing.T) {
	t.Parallel()
	redisModes(t, func(t *testing.T, newBroker func(testing.TB, Config) *Broker) {
		var d departureLog
		a := startWith(t, newBroker, Config{NodeID: "a"}, &d)
		key := a.nodeRoomsKey("a")
		rooms := func(want ...string) {
			t.Helper()
			got, err := a.client.SMembers(t.Context(), key).Result()
			slices.Sort(got)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("room set %q, %v; want %q", got, err, want)
			}
		}
		add(t, a, "r1", "ann", true)
		add(t, a, "r1", "bob", true)
		add(t, a, "r2", "ann", true)
		rooms("r1", "r2")
		remove(t, a, "r1", "ann", true)
		rooms("r1", "r2")
		remove(t, a, "r1", "bob", true)
		rooms("r2")
		if ttl, err := a.client.PTTL(t.Context(), key).Result(); err != nil || ttl <= 0 {
			t.Errorf("room set TTL %v, %v; want one", ttl, err)
		}
		if err := a.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		c := newBroker(t, Config{KeyPrefix: a.cfg.KeyPrefix, NodeID: "c"})
		defer c.Close(t.Context())
		if n, err := c.client.Exists(t.Context(), key).Result(); err != nil || n != 0 {
			t.Errorf("room set after Close: exists %d, %v", n, err)
		}
	})
}

// TestReturnAfterExpiry: a node that could not refresh its user's entry in
// time (cut off from Redis, stalled) finds it expired at its next refresh;
// the reap reports the departure, and adding the entry again reports the
// user's return, once each, so that member.left is followed by member.joined.
func TestReturnAfterExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var departures departureLog
	b := startWith(t, func(t testing.TB, cfg Config) *Broker { return newBroker(t, srv, cfg) },
		Config{KeyPrefix: uniquePrefix()}, &departures)
	var mu sync.Mutex
	var returns []string
	b.ReportReturns(func(room string, users []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range users {
			returns = append(returns, room+" "+u)
		}
	})
	ctx := t.Context()
	if _, err := b.Add(ctx, "r", "alice"); err != nil {
		t.Fatal(err)
	}
	// The entry expires as if the node had missed its refreshes.
	rdb := srv.Client(t)
	entries, err := rdb.ZRange(ctx, b.presenceKey("r"), 0, -1).Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("entries %q, %v; want alice's one", entries, err)
	}
	if err := rdb.ZAddXX(ctx, b.presenceKey("r"), redis.Z{Score: 1, Member: entries[0]}).Err(); err != nil {
		t.Fatal(err)
	}
	b.refreshPresence(ctx)
	if got := departures.all(); !slices.Equal(got, []string{b.NodeID() + " r alice"}) {
		t.Errorf("departures %q, want alice's from r, once", got)
	}
	mu.Lock()
	got := slices.Clone(returns)
	mu.Unlock()
	if !slices.Equal(got, []string{"r alice"}) {
		t.Errorf("returns %q, want alice's to r, once", got)
	}
	page, err := b.Members(ctx, "r", "", 10)
	if err != nil || !slices.Equal(page.Users, []string{"alice"}) {
		t.Errorf("members %v, %v; want alice again", page.Users, err)
	}
}
