// Package redisbroker is the hub.Broker and hub.Presence shared by a cluster
// of Switchboard nodes, on one Redis (6.2 or later).
//
// It owns, in Redis under Config.KeyPrefix: each room's history (a Stream
// whose entry ids are the seqs) and position (a hash holding seq and epoch),
// idempotency keys, presence (a sorted set per room of user and node, scored
// by expiry) and the node registry. Publishing is one Lua script, so that
// assigning the seq, appending to history and publishing to the room's
// channel happen atomically.
//
// Each node has one pub/sub connection for every room and user it is
// subscribed to. Pub/sub loses messages when that connection breaks or lags,
// so the broker tracks the last seq delivered per room and repairs a gap by
// reading the missing publications from the Stream; on reconnection it reads
// whatever it missed. The Handler thus sees every room in seq order without
// gaps within an epoch, unless history (Config.HistorySize,
// Config.HistoryMaxBytes) no longer holds what was missed. Ephemeral events (typing, direct messages, kicks) have no such
// repair: one lost with the connection is lost.
//
// Every key the broker writes expires (Config.HistoryTTL,
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
// It does not own room membership or sessions (package hub) and does not read
// configuration from flags or the environment (cmd/switchboard).
package redisbroker
