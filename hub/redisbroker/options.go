package redisbroker

import "time"

// options are the broker's internal knobs: fixed in production, where their
// defaults are the only sensible values, and changed by tests (see
// export_test.go) to provoke what production rarely sees.
type options struct {
	// channelSize is how many pub/sub messages go-redis buffers for the
	// receive loop.
	channelSize int
	// channelSendTimeout is how long go-redis waits for room in that buffer
	// before it drops a message (see Stats.Backlogged). Long, because the
	// receive loop only stalls for Redis reads bounded by OpTimeout: a
	// longer stall means something is wrong, and Redis then disconnects the
	// connection for its output buffer limit, which gap repair survives.
	channelSendTimeout time.Duration
}

// defaultOptions returns the options of every Broker that New returns.
func defaultOptions() options {
	return options{
		channelSize:        10000,
		channelSendTimeout: time.Minute,
	}
}
