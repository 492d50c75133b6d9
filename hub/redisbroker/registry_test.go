package redisbroker

import (
	"fmt"
	"maps"
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
