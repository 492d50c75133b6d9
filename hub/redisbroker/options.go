package redisbroker

import (
	"context"
	"runtime"
	"time"
)

// options are the broker's internal knobs: fixed in production, where their
// defaults are the only sensible values, and changed by tests (see
// export_test.go) to provoke what production rarely sees.
type options struct {
	// channelSize is how many pub/sub messages go-redis buffers for the
	// receive loop.
	channelSize int
	// channelSendTimeout is how long go-redis waits for room in that buffer
	// before it drops a message (see Stats.Backlogged). Long, because the
	// receive loop never waits on Redis: a stall means something is wrong,
	// and Redis then disconnects the connection for its output buffer
	// limit, which gap repair survives.
	channelSendTimeout time.Duration
	// shards is how many goroutines deliver the rooms and users: they are
	// spread over them by hash of the name.
	shards int
	// shardQueue is how many messages the receive loop queues for a shard
	// before it waits for the shard.
	shardQueue int
	// repairWorkers bounds the history reads made at once to repair rooms:
	// each shard makes its share of them, at least two.
	repairWorkers int
	// repairBufferCount and repairBufferBytes bound what a room under
	// repair holds, repairBufferTotal what all of them hold together (each
	// shard's rooms its share): a room beyond them drops its buffer and is
	// resynced from history.
	repairBufferCount, repairBufferBytes, repairBufferTotal int
	// beforeRead, when set, is called by a repair worker before it reads a
	// room's history: tests make it slow.
	beforeRead func(ctx context.Context, room string)
}

// defaultOptions returns the options of every Broker that New returns.
func defaultOptions() options {
	return options{
		channelSize:        10000,
		channelSendTimeout: time.Minute,
		shards:             min(4, runtime.GOMAXPROCS(0)),
		shardQueue:         256,
		repairWorkers:      4,
		repairBufferCount:  1000,
		repairBufferBytes:  1 << 20,
		repairBufferTotal:  64 << 20,
	}
}
