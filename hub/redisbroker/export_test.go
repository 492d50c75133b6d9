package redisbroker

import (
	"context"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/protocol"
)

// crash stops b as a killed process would stop: its goroutines and
// connections end, and nothing is cleaned up in Redis. Close then does
// nothing.
func (b *Broker) crash() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		cancel := b.cancel
		b.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		b.closePubSub()
		b.wg.Wait()
		b.client.Close()
	})
}

// silentLua appends a message to a room's history as publish.lua does, but
// without publishing it: a publication pub/sub lost.
var silentLua = redis.NewScript(`
local seq = string.format('%d', redis.call('HINCRBY', KEYS[1], 's', 1))
local frame = ARGV[1] .. seq .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'f', frame)
redis.call('HINCRBY', KEYS[1], 'b', #frame)
return seq
`)

// publishSilently stores a publication of m in room's history without
// publishing it, and returns its seq.
func (b *Broker) publishSilently(ctx context.Context, room string, m protocol.MessageTemplate) (uint64, error) {
	if _, err := b.position(ctx, room); err != nil { // the room's meta
		return 0, err
	}
	keys := []string{b.metaKey(room), b.streamKey(room)}
	seq, err := silentLua.Run(ctx, b.client, keys, m.Prefix, m.Suffix, b.cfg.HistorySize).Text()
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range seq {
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// subscriptionState returns the sizes of b's subscription bookkeeping.
func (b *Broker) subscriptionState() (rooms, users, pending, waiters int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.shards {
		s.mu.Lock()
		rooms += len(s.rooms)
		users += len(s.users)
		s.mu.Unlock()
	}
	return rooms, users, len(b.pending), len(b.waiters)
}

// setShards makes b deliver on n shards, each queueing up to queue
// messages. Call it before Start and before any subscription.
func (b *Broker) setShards(n, queue int) {
	b.opt.shards, b.opt.shardQueue = n, queue
	b.shards = newShards(b, n)
}

// shardIndex returns the index of the shard of a room or user name.
func (b *Broker) shardIndex(name string) int {
	return slices.Index(b.shards, b.shardOf(name))
}

// setBeforeRead makes the repair workers call f before each history read.
// Call it before Start.
func (b *Broker) setBeforeRead(f func(ctx context.Context, room string)) {
	b.opt.beforeRead = f
}

// setRepairBuffer sets the bounds of what a room under repair holds. Call
// it before Start.
func (b *Broker) setRepairBuffer(count, bytes int) {
	b.opt.repairBufferCount, b.opt.repairBufferBytes = count, bytes
}

// setChannel sets the size of go-redis's pub/sub buffer and how long go-redis
// waits for room in it before it drops a message. Call it before Start.
func (b *Broker) setChannel(size int, sendTimeout time.Duration) {
	b.opt.channelSize, b.opt.channelSendTimeout = size, sendTimeout
}
