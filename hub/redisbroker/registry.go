package redisbroker

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// The node registry: a sorted set of the live nodes' ids, scored by when
// their entry expires, and per node a key holding what Config.NodeInfo
// returns. The maintenance loop renews both every PresenceTTL/3; a node
// that stops (a crash) drops out PresenceTTL later, taken out by the next
// heartbeat of a live node, which then sweeps its rooms (sweep.go), and
// Close removes it at once. Reading the registry costs O(nodes): no SCAN of
// the keyspace.

// heartbeat renews the node's registry entry, and sweeps the rooms of the
// nodes whose entries it took out.
func (b *Broker) heartbeat(ctx context.Context) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	var info any = "1"
	if b.cfg.NodeInfo != nil {
		info = b.cfg.NodeInfo()
	}
	gone, err := registryScript.Run(ctx, b.client, []string{b.registryKey()},
		"beat", b.cfg.NodeID, ms(b.cfg.PresenceTTL), b.nodeKey(b.cfg.NodeID), info,
	).Slice()
	if err != nil {
		b.log.Warn().Err(err).Msg("node heartbeat failed")
		return
	}
	b.sweepGone(gone)
}

// ClaimNodeID registers id in the node registry of the Redis cfg names
// (URL, Cluster, KeyPrefix, PresenceTTL, OpTimeout; cfg.NodeID is not
// used), unless a live node has registered it already, and reports whether
// it did. The check and the registration are one step: of two processes
// that claim one id at once, one gets it. A process claims its node id
// before New, to choose one no other live node has (two processes on one
// host); the entry lasts PresenceTTL, renewed from the broker's first
// heartbeat on, and NodeInfos lists it from then.
func ClaimNodeID(ctx context.Context, cfg Config, id string) (bool, error) {
	cfg.NodeID = id
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return false, fmt.Errorf("redisbroker: %w", err)
	}
	client, err := newClient(cfg)
	if err != nil {
		return false, fmt.Errorf("redisbroker: %w", err)
	}
	defer client.Close()
	keys := &Broker{cfg: cfg} // names the keys only
	ctx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	defer cancel()
	n, err := registryScript.Run(ctx, client, []string{keys.registryKey()},
		"claim", id, ms(cfg.PresenceTTL),
	).Int()
	if err != nil {
		return false, wrap("claim node id", err)
	}
	return n == 1, nil
}

// deregister removes the node from the registry, and its room set (best
// effort: they expire anyway).
func (b *Broker) deregister(ctx context.Context) {
	ctx, cancel := b.opContext(context.WithoutCancel(ctx))
	defer cancel()
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, b.registryKey(), b.cfg.NodeID)
		p.Del(ctx, b.nodeKey(b.cfg.NodeID))
		p.Del(ctx, b.nodeRoomsKey(b.cfg.NodeID))
		return nil
	})
	if err != nil {
		b.log.Warn().Err(err).Msg("close: removing the registry entry failed; it expires")
	}
}

// Nodes returns the ids of the live nodes of the cluster, sorted: those
// whose registry entry was refreshed within PresenceTTL.
func (b *Broker) Nodes(ctx context.Context) ([]string, error) {
	infos, err := b.NodeInfos(ctx)
	if err != nil {
		return nil, err
	}
	nodes := make([]string, 0, len(infos))
	for id := range infos {
		nodes = append(nodes, id)
	}
	slices.Sort(nodes)
	return nodes, nil
}

// NodeInfos returns the registry entry of every live node, by node id: what
// each node's Config.NodeInfo returned at its last heartbeat.
func (b *Broker) NodeInfos(ctx context.Context) (map[string][]byte, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	res, err := registryScript.Run(ctx, b.client, []string{b.registryKey()},
		"list", b.nodeKey(""),
	).StringSlice()
	if err != nil {
		return nil, wrap("node infos", err)
	}
	infos := make(map[string][]byte, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		infos[res[i]] = []byte(res[i+1])
	}
	return infos, nil
}
