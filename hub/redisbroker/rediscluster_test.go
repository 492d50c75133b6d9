package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// startClusterBroker is startBroker on a Redis Cluster.
func startClusterBroker(t testing.TB, c *redistest.Cluster, cfg Config) (*Broker, *hubtest.Recorder) {
	t.Helper()
	b := newClusterBroker(t, c, cfg)
	rec := hubtest.NewRecorder()
	if err := b.Start(context.Background(), rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		rec.Check(t)
	})
	return b, rec
}

// roomPerMaster returns, by master index, a room whose keys that master
// owns.
func roomPerMaster(t testing.TB, c *redistest.Cluster, b *Broker) []string {
	t.Helper()
	rooms := make([]string, len(c.Masters))
	left := len(rooms)
	for i := 0; left > 0; i++ {
		room := "room" + strconv.Itoa(i)
		if m := c.MasterOf(t, b.metaKey(room)); rooms[m] == "" {
			rooms[m] = room
			left--
		}
	}
	return rooms
}

// TestClusterKeyLayout: everything a room's scripts touch, its channel
// included, is in one slot, as Redis computes it (CLUSTER KEYSLOT), even for
// names with braces; the boot key of a slot is in that slot; rooms spread
// over all three masters.
func TestClusterKeyLayout(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	b := newClusterBroker(t, c, Config{})
	cc := c.Client(t)
	ctx := t.Context()
	slot := func(key string) int {
		t.Helper()
		s, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if int(s) != keySlot(key) {
			t.Errorf("keySlot(%q) = %d, Redis says %d", key, keySlot(key), s)
		}
		return int(s)
	}
	for _, room := range []string{"lobby", "a", "a}b", "{x}", "}{", "room:with:colons"} {
		want := slot(b.metaKey(room))
		for _, key := range []string{b.streamKey(room), b.presenceKey(room), b.presenceCountKey(room),
			b.presenceUsersKey(room), b.pubIdemKey(room, "k}{"), b.roomChannel(room), b.bootKey(b.bootSlot(room))} {
			if got := slot(key); got != want {
				t.Errorf("room %q: %s in slot %d, meta in %d", room, key, got, want)
			}
		}
		if name, isRoom, ok := b.channelName(b.roomChannel(room)); !ok || !isRoom || name != room {
			t.Errorf("channelName(roomChannel(%q)) = %q, %v, %v", room, name, isRoom, ok)
		}
	}
	if a, bb := slot(b.userIdemKey("bob", "k")), slot(b.userChannel("bob")); a != bb {
		t.Errorf("user key in slot %d, user channel in %d", a, bb)
	}
	if a, bb := slot(b.registryKey()), slot(b.nodeKey("n1")); a != bb {
		t.Errorf("registry in slot %d, node info in %d", a, bb)
	}
	for _, id := range []string{"n1", "a}b", "{x}"} { // adoptScript takes both sets
		if a, bb := slot(b.nodeRoomsKey(id)), slot(b.prevRoomsKey(id)); a != bb {
			t.Errorf("node %q: room set in slot %d, previous life's in %d", id, a, bb)
		}
	}
	for _, s := range []int{0, 1, 5000, 16383} {
		if got := slot(b.bootKey(s)); got != s {
			t.Errorf("bootKey(%d) is in slot %d", s, got)
		}
	}
	rooms := roomPerMaster(t, c, b)
	if len(rooms) != 3 || slices.Contains(rooms, "") {
		t.Errorf("rooms by master %q, want one on each of three", rooms)
	}
}

// TestClusterAcrossNodes: two nodes publish to rooms on all three masters;
// each node receives every room's publications once, in order.
func TestClusterAcrossNodes(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	prefix := uniquePrefix()
	b1, rec1 := startClusterBroker(t, c, Config{KeyPrefix: prefix})
	b2, rec2 := startClusterBroker(t, c, Config{KeyPrefix: prefix})
	rooms := roomPerMaster(t, c, b1)
	for _, b := range []*Broker{b1, b2} {
		for _, room := range rooms {
			if err := b.SubscribeRoom(t.Context(), room); err != nil {
				t.Fatal(err)
			}
		}
	}
	const n = 20
	for i := range n {
		for _, room := range rooms {
			mustPublish(t, []*Broker{b1, b2}[i%2], room)
		}
	}
	for _, rec := range []*hubtest.Recorder{rec1, rec2} {
		for _, room := range rooms {
			got := seqs(rec.WaitPublications(t, room, n))
			want := make([]uint64, n)
			for i := range want {
				want[i] = uint64(i + 1)
			}
			if !slices.Equal(got, want) {
				t.Errorf("room %s: seqs %v, want 1..%d", room, got, n)
			}
		}
	}
	page, err := b2.History(t.Context(), rooms[0], hub.HistoryQuery{HasSince: true, Since: n - 5})
	if err != nil || len(page.Publications) != 5 {
		t.Errorf("recovery on the other node: %d publications, %v; want 5", len(page.Publications), err)
	}
}

// TestClusterMasterRestart: one master is killed, then restarted empty.
// Rooms on the other masters keep delivering; rooms on it answer
// unavailable, then, once it is back, resubscribe: their history restarts
// with a new epoch (the shard lost it, as one Redis restarted without
// persistence does) and presence is registered again.
func TestClusterMasterRestart(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	prefix := uniquePrefix()
	b1, rec1 := startClusterBroker(t, c, Config{KeyPrefix: prefix, PresenceTTL: 3 * time.Second})
	b2, rec2 := startClusterBroker(t, c, Config{KeyPrefix: prefix, PresenceTTL: 3 * time.Second})
	rooms := roomPerMaster(t, c, b1)
	ctx := t.Context()
	for _, b := range []*Broker{b1, b2} {
		for _, room := range rooms {
			if err := b.SubscribeRoom(ctx, room); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, room := range rooms {
		if _, err := b1.Add(ctx, room, "alice"); err != nil {
			t.Fatalf("Add(%s): %v", room, err)
		}
		mustPublish(t, b1, room)
	}
	const down = 1
	c.Masters[down].Stop()

	for i, room := range rooms {
		if i == down {
			continue
		}
		mustPublish(t, b2, room)
		for _, rec := range []*hubtest.Recorder{rec1, rec2} {
			rec.WaitPublications(t, room, 2)
		}
	}
	eventually(t, 30*time.Second, "publish to the stopped master answers unavailable", func() error {
		_, _, err := b2.Publish(ctx, rooms[down], msg(t, rooms[down]))
		if !errors.Is(err, hub.ErrUnavailable) {
			return fmt.Errorf("Publish = %v, want ErrUnavailable", err)
		}
		return nil
	})

	c.Masters[down].Start()
	c.WaitOK()
	var epoch string
	eventually(t, 60*time.Second, "publish once the master is back", func() error {
		p, _, err := b2.Publish(ctx, rooms[down], msg(t, rooms[down]))
		epoch = p.Epoch
		return err
	})
	for _, rec := range []*hubtest.Recorder{rec1, rec2} {
		rec.Wait(t, "the new epoch's publications after the restart", func() bool {
			pubs := rec.Publications(rooms[down])
			return len(pubs) >= 2 && pubs[len(pubs)-1].Epoch == epoch
		})
	}
	eventually(t, 30*time.Second, "presence registered again on the restarted master", func() error {
		page, err := b2.Members(ctx, rooms[down], "", 10)
		if err != nil {
			return err
		}
		if !slices.Equal(page.Users, []string{"alice"}) {
			return fmt.Errorf("members %v, want [alice]", page.Users)
		}
		return nil
	})
	for _, b := range []*Broker{b1, b2} {
		if s := b.Stats(); s.Lost != 0 {
			t.Errorf("stats %+v: publications lost", s)
		}
	}
}

// TestClusterSlotMigration: a room's slot moves to another master while a
// node is subscribed to it; the old master unsubscribes the node, which
// subscribes on the new one and repairs what it missed from history.
func TestClusterSlotMigration(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	prefix := uniquePrefix()
	b1, rec1 := startClusterBroker(t, c, Config{KeyPrefix: prefix})
	b2, _ := startClusterBroker(t, c, Config{KeyPrefix: prefix})
	ctx := t.Context()
	room := roomPerMaster(t, c, b1)[0]
	if err := b1.SubscribeRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b2, room)
	rec1.WaitPublications(t, room, 1)

	from, to := c.Masters[0], c.Masters[1]
	migrateSlot(t, c, keySlot(b1.metaKey(room)), from, to)
	if m := c.MasterOf(t, b1.metaKey(room)); m != 1 {
		t.Fatalf("the room's keys are on master %d after the move, want 1", m)
	}
	for range 3 {
		mustPublish(t, b2, room)
	}
	if got := seqs(rec1.WaitPublications(t, room, 4)); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Errorf("seqs %v, want [1 2 3 4]", got)
	}
}

// migrateSlot moves slot, with its keys, from one master to another, as
// redis-cli --cluster reshard does.
func migrateSlot(t testing.TB, c *redistest.Cluster, slot int, from, to *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	src, dst := from.Client(t), to.Client(t)
	srcID, err1 := src.Do(ctx, "CLUSTER", "MYID").Text()
	dstID, err2 := dst.Do(ctx, "CLUSTER", "MYID").Text()
	if err := errors.Join(err1, err2,
		dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(),
		src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(),
	); err != nil {
		t.Fatalf("migrate slot %d: %v", slot, err)
	}
	keys, err := src.ClusterGetKeysInSlot(ctx, slot, 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		args := []any{"MIGRATE", "127.0.0.1", to.Addr()[len("127.0.0.1:"):], "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("MIGRATE: %v", err)
		}
	}
	for _, m := range append([]*redistest.Server{to, from}, c.Masters...) {
		if err := m.Client(t).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil &&
			!redis.HasErrorPrefix(err, "ERR") {
			t.Fatalf("SETSLOT NODE: %v", err)
		}
	}
	c.WaitOK()
}
