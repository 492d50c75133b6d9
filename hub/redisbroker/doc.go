// Package redisbroker is the hub.Broker and hub.Presence shared by a cluster
// of Switchboard nodes, on one Redis (6.2 or later) or, with Config.Cluster,
// on a Redis Cluster (7.0 or later).
//
// It owns, in Redis under Config.KeyPrefix: each room's history (a Stream
// whose entry ids are the seqs) and position (a hash holding seq and epoch),
// idempotency keys, presence (a sorted set per room of user and node, scored
// by expiry), each user's read positions (a hash per user: see read.go), the
// node registry and each node's set of the rooms it has presence in (to
// sweep when the node is gone: see sweep.go). The users of a crashed node
// leave its rooms once, reported by the node that finds them (see
// Broker.ReportDepartures). Publishing is one Lua script, so that
// assigning the seq, appending to history and publishing to the room's
// channel happen atomically.
//
// Unless Config.Durable (or Config.Cluster) is set, a room's position
// records the run of Redis its history began in, and a room found from
// another run (Redis restarted, perhaps from a snapshot older than what it
// acknowledged) starts a new life, so that no seq is ever handed out twice
// in one epoch: see lua/lifecheck.lua.
//
// Each node has one pub/sub connection (per master, on a cluster) for every
// room and user it is subscribed to. Pub/sub loses messages when that connection breaks or lags,
// so the broker tracks the last seq delivered per room and repairs a gap by
// reading the missing publications from the Stream; on reconnection it reads
// whatever it missed. The Handler thus sees every room in seq order without
// gaps within an epoch, unless history (Config.HistorySize,
// Config.HistoryMaxBytes) no longer holds what was missed. Ephemeral events (typing, direct messages, kicks) have no such
// repair: one lost with the connection is lost.
//
// Every key the broker writes expires (Config.HistoryTTL, read positions too,
// Config.IdempotencyTTL, Config.PresenceTTL), and a room's Stream is trimmed
// to Config.HistorySize entries and Config.HistoryMaxBytes of frames. Redis
// should run with maxmemory-policy noeviction, so that a full Redis refuses
// writes (reported as hub.ErrUnavailable): any other policy may evict a
// room's Stream without its meta, losing history without starting a new
// epoch, or presence and idempotency keys.
//
// One receive loop reads the pub/sub connection and hands each message to
// one of a few delivery shards (up to four, one per CPU), chosen by hash of
// the room or user name: a room is always delivered by the same shard, in
// order, and rooms of different shards are delivered in parallel, so the
// Handler is called concurrently for different rooms. Gap repairs and
// resyncs read history on a few worker goroutines per shard, never on the
// shard's loop: a room under repair holds what it receives meanwhile (within
// bounds) and delivery of the other rooms goes on.
//
// On a Redis Cluster every script must touch keys of one slot, so key and
// channel names carry hash tags (see keys.go): everything of a room is
// tagged {r:ROOM}, of a user {u:USER}, and presence's boot key is one per
// slot. Pub/sub is sharded (SSUBSCRIBE, SPUBLISH in the scripts): the node
// holds one pub/sub connection per master, each carrying the channels of
// the slots that master owns (see sharded.go). A connection that fails, or
// a slot that moves, makes its channels resubscribed on their owner and
// their rooms resynced from history, as after a reconnection on one Redis.
// A master that is down makes only its rooms unavailable. On one Redis the
// names, and PUBLISH and SUBSCRIBE, are those of earlier versions.
//
// It does not own room membership or sessions (package hub) and does not read
// configuration from flags or the environment (cmd/switchboard).
package redisbroker
