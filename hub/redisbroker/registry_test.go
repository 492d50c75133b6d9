package redisbroker

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestRegistryWithoutScan: the registry lists every live node with its
// info, drops a crashed node within PresenceTTL and a closed one at once,
// and never scans the keyspace to do so.
func TestRegistryWithoutScan(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const ttl = 600 * time.Millisecond
	prefix := uniquePrefix()
	start := func(id string) *Broker {
		b, _ := startBroker(t, srv, Config{KeyPrefix: prefix, NodeID: id, PresenceTTL: ttl,
			NodeInfo: func() []byte { return []byte(`{"node":"` + id + `"}`) }})
		return b
	}
	a, b, c := start("a"), start("b"), start("c")
	for i := range 100 { // keys the registry must not have to look through
		mustPublish(t, a, fmt.Sprintf("room%d", i))
	}
	infos := func(want ...string) {
		t.Helper()
		eventually(t, 3*ttl, fmt.Sprintf("nodes %q", want), func() error {
			got, err := a.NodeInfos(t.Context())
			if err != nil {
				return err
			}
			wantInfos := map[string][]byte{}
			for _, id := range want {
				wantInfos[id] = []byte(`{"node":"` + id + `"}`)
			}
			if !maps.EqualFunc(got, wantInfos, func(x, y []byte) bool { return string(x) == string(y) }) {
				return fmt.Errorf("NodeInfos = %q", got)
			}
			return nil
		})
	}
	infos("a", "b", "c")
	nodes(t, b, "a", "b", "c")

	c.crash()
	infos("a", "b")

	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	nodes(t, a, "a")
	if n := commandCalls(t, srv, "scan"); n != 0 {
		t.Errorf("Redis ran SCAN %d times", n)
	}
}

// TestClaimNodeID: an id a live node holds cannot be claimed; one whose
// node closed, or crashed and expired, can; of many claims of one free id
// at once exactly one succeeds.
func TestClaimNodeID(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const ttl = 600 * time.Millisecond
	cfg := Config{URL: srv.URL(), KeyPrefix: uniquePrefix(), PresenceTTL: ttl}
	claim := func(id string) bool {
		t.Helper()
		ok, err := ClaimNodeID(t.Context(), cfg, id)
		if err != nil {
			t.Fatalf("ClaimNodeID(%q): %v", id, err)
		}
		return ok
	}
	start := func(id string) *Broker {
		c := cfg
		c.NodeID = id
		b, _ := startBroker(t, srv, c)
		return b
	}

	a := start("host")
	if claim("host") {
		t.Fatal("claimed the id of a live node")
	}
	if !claim("host-8081") {
		t.Fatal("could not claim a free id")
	}
	if claim("host-8081") {
		t.Fatal("claimed an id claimed a moment before")
	}
	nodes(t, a, "host") // a claim shows in Nodes from the node's first heartbeat on

	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !claim("host") {
		t.Fatal("could not claim the id of a closed node")
	}

	c := start("crashed")
	c.crash()
	eventually(t, 3*ttl, "the crashed node's id free", func() error {
		if !claim("crashed") {
			return fmt.Errorf("id still held")
		}
		return nil
	})

	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := ClaimNodeID(t.Context(), cfg, "race")
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Errorf("%d of 8 simultaneous claims of one id succeeded, want 1", n)
	}
}
