package main

import (
	"context"
	"net"
	"os"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub/redisbroker"
)

// nodeID returns the node's id: --node-id when set, else the hostname, the
// same across restarts. With Redis, where two processes on one host would
// share the hostname (and a node's presence and registry entries with it),
// the default is claimed in the node registry first (redisbroker.ClaimNodeID):
// when a live node holds it, the node is hostname-PORT, PORT the one bound
// listens on, which no other process on the host can hold. An explicit
// --node-id is not checked: a node restarted after a crash takes its id
// back while the old entry lingers.
func nodeID(ctx context.Context, cfg config, bound net.Addr, log zerolog.Logger) string {
	if cfg.NodeID != "" {
		return cfg.NodeID
	}
	host := hostname()
	if cfg.RedisURL == "" {
		return host
	}
	_, port, _ := net.SplitHostPort(bound.String())
	alt := host + "-" + port
	for _, id := range []string{host, alt} {
		ok, err := redisbroker.ClaimNodeID(ctx, redisConfig(cfg), id)
		if err != nil {
			log.Warn().Err(err).Str("node", id).Msg("could not check that no other live node has this node id (set --node-id to choose one)")
			return id
		}
		if ok {
			if id == alt {
				log.Warn().Str("node", alt).Msgf("another live node has node id %s (a second process on this host, or this one before a crash): this node is %s; set --node-id to choose", host, alt)
			}
			return id
		}
	}
	log.Warn().Str("node", alt).Msgf("node ids %s and %s are both registered by live nodes: taking %s (set --node-id to choose)", host, alt, alt)
	return alt
}

// hostname returns the host's name, or "node" when it has none.
func hostname() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "node"
	}
	return host
}
