package redisbroker

import (
	"context"
	"slices"
	"strings"
)

// The node registry: one key per live node, holding what Config.NodeInfo
// returns, renewed by the maintenance loop and expiring PresenceTTL after a
// node stops.

// heartbeat renews the node's registry entry.
func (b *Broker) heartbeat(ctx context.Context) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	var info any = "1"
	if b.cfg.NodeInfo != nil {
		info = b.cfg.NodeInfo()
	}
	if err := b.client.Set(ctx, b.nodeKey(b.cfg.NodeID), info, b.cfg.PresenceTTL).Err(); err != nil {
		b.log.Warn().Err(err).Msg("node heartbeat failed")
	}
}

// Nodes returns the ids of the live nodes of the cluster: those whose
// registry entry was refreshed within PresenceTTL.
func (b *Broker) Nodes(ctx context.Context) ([]string, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	prefix := b.nodeKey("")
	var nodes []string
	iter := b.client.Scan(ctx, 0, globEscape(prefix)+"*", 100).Iterator()
	for iter.Next(ctx) {
		nodes = append(nodes, strings.TrimPrefix(iter.Val(), prefix))
	}
	if err := iter.Err(); err != nil {
		return nil, wrap("nodes", err)
	}
	slices.Sort(nodes)
	return slices.Compact(nodes), nil
}

// globEscape escapes the characters special in a SCAN MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NodeInfos returns the registry entry of every live node, by node id: what
// each node's Config.NodeInfo returned at its last heartbeat.
func (b *Broker) NodeInfos(ctx context.Context) (map[string][]byte, error) {
	nodes, err := b.Nodes(ctx)
	if err != nil || len(nodes) == 0 {
		return nil, err
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	keys := make([]string, len(nodes))
	for i, n := range nodes {
		keys[i] = b.nodeKey(n)
	}
	vals, err := b.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, wrap("node infos", err)
	}
	infos := make(map[string][]byte, len(nodes))
	for i, v := range vals {
		if s, ok := v.(string); ok { // nil: expired since the scan
			infos[nodes[i]] = []byte(s)
		}
	}
	return infos, nil
}
