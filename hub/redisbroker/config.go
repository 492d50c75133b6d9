package redisbroker

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// Config configures a Broker. Its zero value works with a Redis on
// localhost.
type Config struct {
	// URL is the Redis URL, as redis://[[user]:password@]host:port/db or
	// rediss:// for TLS. Default "redis://127.0.0.1:6379/0". With Cluster,
	// it names seed nodes of the cluster, the first as host and the others
	// as addr parameters: redis://h1:7000?addr=h2:7001&addr=h3:7002 (see
	// redis.ParseClusterURL); no database.
	URL string
	// Cluster selects Redis Cluster (7.0 or later): the broker then uses
	// sharded pub/sub (SSUBSCRIBE, SPUBLISH), one pub/sub connection per
	// master, and key names with hash tags (see keys.go). Default false:
	// one Redis (6.2 or later), plain pub/sub.
	Cluster bool
	// NodeID names this node in presence entries, the node registry and its
	// Redis client name: printable ASCII without spaces, unique in the
	// cluster. Default: a random id.
	NodeID string
	// HistorySize is how many publications each room keeps. Default 100.
	HistorySize int
	// HistoryMaxBytes caps the summed frame sizes of a room's history in
	// Redis: the oldest publications are trimmed to stay below it (the
	// newest is always kept). Default DefaultHistoryMaxBytes.
	HistoryMaxBytes int
	// Durable tells the broker that Redis never loses a write it
	// acknowledged: AOF with appendfsync always, and no failover to a
	// replica that may lag. Then a room's history outlives Redis restarts.
	// Default false: a Redis restart (or failover) ends the life of every
	// room's history at the room's next use, and its next publish starts a
	// new epoch, because Redis may have come back with a room's seq behind
	// what members were given (see lua/lifecheck.lua); each script reading
	// a room then also reads INFO server (about 2 µs of Redis CPU). With
	// Cluster the broker acts as if Durable were set: a room's keys move
	// to another master (another run) when its slot is migrated, which
	// must not end its history, so a master's restart or failover is not
	// detected there.
	Durable bool
	// HistoryTTL drops a room's history, and so starts a new epoch, after
	// this long without a publish. Default 24h.
	HistoryTTL time.Duration
	// IdempotencyTTL is how long idempotency keys are remembered. Default
	// hub.DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// PresenceTTL is how long the presence entries and registry entry of a
	// node that stopped refreshing them (a crashed node) live. The broker
	// refreshes its own every PresenceTTL/3. A crashed node's users are
	// reported departed (ReportDepartures) within about 3/2 PresenceTTL (see
	// sweep.go). Default 30s.
	PresenceTTL time.Duration
	// OpTimeout bounds every Redis call. Default 3s.
	OpTimeout time.Duration
	// NodeInfo, when set, returns what the node's registry entry holds
	// (for example its counters as JSON), refreshed with every heartbeat;
	// NodeInfos reads them back. Default: "1".
	NodeInfo func() []byte
	// KeyPrefix starts every Redis key and channel name the broker uses, so
	// that several clusters (or tests) can share one Redis. Default "sb:".
	KeyPrefix string
}

// DefaultHistoryMaxBytes is Config.HistoryMaxBytes's default, 1 MiB.
const DefaultHistoryMaxBytes = 1 << 20

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.URL == "" {
		cfg.URL = "redis://127.0.0.1:6379/0"
	}
	if cfg.NodeID == "" {
		cfg.NodeID = hub.NewEpoch()
	}
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = 100
	}
	if cfg.HistoryMaxBytes <= 0 {
		cfg.HistoryMaxBytes = DefaultHistoryMaxBytes
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = 24 * time.Hour
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = hub.DefaultIdempotencyTTL
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = 30 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 3 * time.Second
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "sb:"
	}
	return cfg
}

// validate reports a configuration the broker cannot work with.
func (cfg Config) validate() error {
	if cfg.PresenceTTL < 30*time.Millisecond {
		return fmt.Errorf("presence TTL %v is below 30ms", cfg.PresenceTTL)
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		return fmt.Errorf("key prefix %q: must not contain '{' or '}' (hash tags)", cfg.KeyPrefix)
	}
	for i := 0; i < len(cfg.NodeID); i++ {
		if c := cfg.NodeID[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("node id %q: want printable ASCII without spaces", cfg.NodeID)
		}
	}
	return nil
}
