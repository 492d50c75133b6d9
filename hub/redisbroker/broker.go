package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
)

// Broker is the Redis hub.Broker and hub.Presence. Its methods are safe for
// concurrent use. Start must be called before any other method; Close stops
// its goroutines and waits for them.
type Broker struct {
	cfg    Config
	opt    options
	log    zerolog.Logger
	client redis.UniversalClient // a *redis.Client, or a *redis.ClusterClient with Config.Cluster
	// scripts are the room scripts for Config.Durable.
	scripts roomScripts
	// ps is the node's one pub/sub connection on one Redis; sharded its
	// connections, one per master, on a cluster. One of them is nil.
	ps      *redis.PubSub
	sharded *sharded

	h hub.Handler // set by Start

	// mu guards the subscription state but for the subscription maps,
	// which the shards hold (see shard.go). It is never held while calling
	// h or Redis.
	mu      sync.Mutex
	pending map[string]bool     // channels whose SUBSCRIBE failed, to retry
	waiters map[string][]waiter // by channel: callers awaiting a confirmation
	cancel  context.CancelFunc  // stops the goroutines; nil before Start
	closed  bool

	subMu  sync.Mutex // serializes subscription changes with the pub/sub calls
	shards []*shard   // deliver the rooms and users, by hash of the name

	pres presenceState // this node's presence entries
	// departures is the function ReportDepartures set, or nil.
	departures atomic.Pointer[func(room string, users []string)]
	// returns is the function ReportReturns set, or nil.
	returns atomic.Pointer[func(room string, users []string)]
	sweeps  sweepState // the room sets of gone nodes to sweep: sweep.go

	wg        sync.WaitGroup // the receive, shard and maintenance loops, the repair workers
	stopped   chan struct{}  // closed when the receive loop has ended
	closeOnce sync.Once
	closeErr  error
	stats     counters
}

var (
	errStarted = errors.New("redisbroker: already started or closed")
	errClosed  = errors.New("redisbroker: closed")
)

var (
	_ hub.Broker   = (*Broker)(nil)
	_ hub.Presence = (*Broker)(nil)
)

// New returns a Broker for cfg. It does not connect: Start and the first
// calls do, and Ready reports whether Redis answers.
func New(cfg Config, log zerolog.Logger) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	b := &Broker{
		cfg:     cfg,
		opt:     defaultOptions(),
		log:     log.With().Str("component", "redisbroker").Str("node", cfg.NodeID).Logger(),
		client:  client,
		pending: make(map[string]bool),
		waiters: make(map[string][]waiter),
		stopped: make(chan struct{}),
		scripts: lossyScripts,
	}
	if cfg.Durable || cfg.Cluster {
		// On a cluster a room's keys change masters when its slot moves,
		// which the run check would take for a restart: see Config.Durable.
		b.scripts = durableScripts
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		b.sharded = newSharded(b, cc)
	} else {
		b.ps = client.Subscribe(context.Background()) // no channels: does not connect
	}
	b.shards = newShards(b, b.opt.shards)
	client.AddHook(errorCounter{&b.stats.errors})
	return b, nil
}

// NodeID returns the node's id, Config.NodeID or the one generated for it.
func (b *Broker) NodeID() string { return b.cfg.NodeID }

// Start implements hub.Broker: it registers the node, then starts the
// receive loop and the shards it hands messages to, which deliver to h, and
// the maintenance loop, which refreshes this node's presence and registry
// entries and retries failed subscriptions. They stop when ctx is cancelled
// or Close is called. Start does not fail when Redis is down.
//
// h is called from several goroutines at once, one per shard (up to four):
// for a given room or user the calls come one at a time and in order, while
// rooms and users of different shards are delivered concurrently.
func (b *Broker) Start(ctx context.Context, h hub.Handler) error {
	b.heartbeat(ctx)
	b.checkBoot(ctx)
	b.adoptPrevious(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil || b.closed {
		return fmt.Errorf("start: %w", errStarted)
	}
	ctx, b.cancel = context.WithCancel(ctx)
	b.h = h
	b.wg.Add(2 + len(b.shards))
	for _, s := range b.shards {
		go func() {
			defer b.wg.Done()
			s.run(ctx)
		}()
	}
	if b.sharded != nil {
		b.sharded.start(ctx)
		go func() {
			defer b.wg.Done()
			b.sharded.run(ctx)
		}()
	} else {
		ch := b.ps.ChannelWithSubscriptions(
			redis.WithChannelSize(b.opt.channelSize),
			redis.WithChannelSendTimeout(b.opt.channelSendTimeout),
		)
		go func() {
			defer b.wg.Done()
			b.receive(ctx, ch)
		}()
	}
	go func() {
		defer b.wg.Done()
		b.maintain(ctx)
	}()
	return nil
}

// Ready implements hub.Broker: it pings Redis. On a cluster it is ready
// while any master answers: a shard that is down makes only its rooms
// unavailable, not the node.
func (b *Broker) Ready(ctx context.Context) error {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	if cc, ok := b.client.(*redis.ClusterClient); ok {
		return wrap("ready", anyMasterAnswers(ctx, cc))
	}
	if _, err := b.presenceUsable(0); err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	return wrap("ready", b.client.Ping(ctx).Err())
}

// Close implements hub.Broker. It stops delivery and waits for the broker's
// goroutines (or for ctx), removes this node's presence entries and then
// its registry entry and room set (best effort: they expire anyway; when a
// presence entry could not be removed, the registry entry is left to
// expire, so that a live node sweeps the node's rooms: sweep.go) and closes
// the connections. Sweeps of gone nodes' rooms not done yet are dropped.
// Calling it again returns the first call's result.
func (b *Broker) Close(ctx context.Context) error {
	b.closeOnce.Do(func() { b.closeErr = b.close(ctx) })
	return b.closeErr
}

func (b *Broker) close(ctx context.Context) error {
	b.mu.Lock()
	cancel := b.cancel
	b.closed = true
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	b.closePubSub() // ends the receive loop, which discards what go-redis buffered
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("close: %w", ctx.Err())
	}
	if b.unregister(ctx) {
		b.deregister(ctx)
	}
	if cerr := b.client.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return err
}

// closePubSub closes the pub/sub connections.
func (b *Broker) closePubSub() {
	if b.sharded != nil {
		b.sharded.close()
		return
	}
	b.ps.Close()
}

// opContext bounds one Redis call by OpTimeout.
func (b *Broker) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.OpTimeout)
}

// Stats counts what the broker did to keep delivery complete.
type Stats struct {
	// Repaired counts publications read from history because pub/sub did
	// not deliver them (a lost connection, a dropped message).
	Repaired uint64
	// Lost counts publications pub/sub did not deliver that history no
	// longer had: the Handler saw a gap.
	Lost uint64
	// Duplicates counts publications dropped because already delivered.
	Duplicates uint64
	// Backlogged counts the times the receive buffer was found full. From
	// then on go-redis drops messages it cannot buffer within a minute,
	// reporting them only to its process-wide logger; once the buffer has
	// drained, every room is resynced from history, which restores the
	// publications, not the events.
	Backlogged uint64
	// Malformed counts messages that could not be decoded.
	Malformed uint64
	// Overflowed counts the times a room under repair received more than
	// it may hold meanwhile: it dropped what it held, to be read from
	// history instead.
	Overflowed uint64
	// GapRepairs counts the gaps repaired: a publication arrived after a
	// seq pub/sub had not delivered, and the missing ones were read from
	// history (Repaired counts the publications, Lost those it no longer
	// had).
	GapRepairs uint64
	// Resyncs counts the rooms resynced: read from history after their
	// subscription was confirmed (a room's first local member joined, or
	// the pub/sub connection came back) or after the receive buffer had
	// been full.
	Resyncs uint64
	// Errors counts the Redis commands that failed: unreachable, timed
	// out or refused (OOM, READONLY…), SUBSCRIBE and UNSUBSCRIBE included.
	// Not counted: a missing key (redis.Nil), a script not cached yet
	// (NOSCRIPT, which is loaded and run again), a caller that gave up.
	Errors uint64
	// PubSubReconnects counts the times the node's pub/sub connection was
	// opened again after its first: each one a break in delivery that the
	// resyncs make whole.
	PubSubReconnects uint64
}

type counters struct {
	repaired, lost, duplicates, backlogged, malformed, overflowed atomic.Uint64
	gapRepairs, resyncs, errors                                   atomic.Uint64
}

// Stats returns the broker's counters since New.
func (b *Broker) Stats() Stats {
	return Stats{
		Repaired:   b.stats.repaired.Load(),
		Lost:       b.stats.lost.Load(),
		Duplicates: b.stats.duplicates.Load(),
		Backlogged: b.stats.backlogged.Load(),
		Malformed:  b.stats.malformed.Load(),
		Overflowed: b.stats.overflowed.Load(),
		GapRepairs: b.stats.gapRepairs.Load(),
		Resyncs:    b.stats.resyncs.Load(),
		Errors:     b.stats.errors.Load(),
		// go-redis counts the pub/sub connections it opened: the first,
		// then one per reconnection.
		PubSubReconnects: uint64(max(b.client.PoolStats().PubSubStats.Created, 1) - 1),
	}
}
