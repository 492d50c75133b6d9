package memorybroker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// Config configures a Broker. Its zero value works.
type Config struct {
	// HistorySize is how many messages each room keeps. Default 100.
	HistorySize int
	// HistoryMaxBytes caps the summed frame sizes of a room's history: the
	// oldest messages are dropped to stay below it (the newest is always
	// kept). Default 1 MiB.
	HistoryMaxBytes int
	// HistoryTTL drops a room's history (and starts a new epoch) after this
	// long without a publish. Default 24h.
	HistoryTTL time.Duration
	// IdempotencyTTL is how long idempotency keys are remembered. Default
	// hub.DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// Workers is the number of delivery goroutines; each room and each
	// user is delivered by one of them. Default GOMAXPROCS.
	Workers int
	// QueueSize is how many deliveries (publications and events) each
	// delivery goroutine may have waiting; a publisher that finds its
	// room's queue full waits for room on it. Default 1024.
	QueueSize int
}

// Broker is the single-node Broker: history is a ring per room, and
// publications and events are handed to the hub.Handler by a few delivery
// goroutines (see Config.Workers), so that Publish returns without waiting
// for a room's fan-out. Per room, publications and events are delivered in
// the order they were published; per user, events likewise.
//
// Close stops the delivery goroutines and drops what is still queued: by
// then the hub has closed its sessions. After Close, Publish still stores
// the message and returns, and nothing is delivered.
type Broker struct {
	cfg   Config
	idem  idempotency
	reads readStore // read positions: see MarkRead

	seed     maphash.Seed
	workers  []worker
	h        hub.Handler // set by Start, before the workers start
	started  bool        // guarded by mu
	stop     chan struct{}
	stopOnce sync.Once
	stopCtx  func() bool // stops Start's context.AfterFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	streams map[string]*memStream
	users   map[string]uint64 // subscribed users → subscription generation
	userGen uint64            // the last generation given to a user's subscription
	ops     int               // publishes and history reads since the last sweep
}

var _ hub.Broker = (*Broker)(nil)

// memStream is one room's history and subscription state. mu is held while
// a seq is assigned and the publication queued for delivery, so that the
// room's deliveries are queued in seq order.
type memStream struct {
	mu         sync.Mutex
	worker     *worker // delivers the room
	subscribed bool
	// gen counts the changes of subscribed: a delivery queued under one
	// subscription is dropped once it ended. It is written with both mu
	// and deliverMu held.
	gen uint64
	// deliverMu is held while the room's deliveries are handed to the
	// Handler, and while subscribed changes.
	deliverMu sync.Mutex
	seq       uint64
	epoch     string
	ring      []hub.Publication // oldest first, at most HistorySize
	bytes     int               // summed frame sizes of ring, at most HistoryMaxBytes but for the newest
	last      time.Time         // last publish
	// deleted holds the seqs of history's messages that a delete targeted
	// (edit.go).
	deleted map[uint64]struct{}
	// mod is the room's moderation (moderation.go).
	mod modState
}

// New returns a Broker.
func New(cfg Config) *Broker {
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = 100
	}
	if cfg.HistoryMaxBytes <= 0 {
		cfg.HistoryMaxBytes = hub.DefaultHistoryMaxBytes
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = 24 * time.Hour
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = hub.DefaultIdempotencyTTL
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	b := &Broker{
		cfg:     cfg,
		idem:    idempotency{ttl: cfg.IdempotencyTTL},
		seed:    maphash.MakeSeed(),
		workers: make([]worker, cfg.Workers),
		stop:    make(chan struct{}),
		streams: make(map[string]*memStream),
		users:   make(map[string]uint64),
	}
	for i := range b.workers {
		b.workers[i].queue = make(chan delivery, cfg.QueueSize)
	}
	return b
}

// errStarted is returned by a second Start.
var errStarted = errors.New("memorybroker: already started")

// Start implements Broker: it starts the delivery goroutines, which deliver
// to h until Close is called or ctx is done.
func (b *Broker) Start(ctx context.Context, h hub.Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return fmt.Errorf("start: %w", errStarted)
	}
	b.started = true
	b.startWorkers(ctx, h)
	return nil
}

// stream returns the room's stream, creating it, or starting a new epoch when
// its history expired.
func (b *Broker) stream(room string) *memStream {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[room]
	if s == nil {
		s = &memStream{worker: b.workerFor(room), epoch: hub.NewEpoch(), last: time.Now()}
		b.streams[room] = s
	}
	return s
}

// lockStream returns the room's stream with its mu held. A sweep removes a
// stream from the map only while holding its mu, so a stream still in the
// map once locked is the live one; a stream swept in between is retried.
func (b *Broker) lockStream(room string) *memStream {
	for {
		s := b.stream(room)
		s.mu.Lock()
		b.mu.Lock()
		live := b.streams[room] == s
		b.mu.Unlock()
		if live {
			return s
		}
		s.mu.Unlock()
	}
}

// expireLocked resets a stream whose history outlived HistoryTTL. s.mu is held.
func (b *Broker) expireLocked(s *memStream, now time.Time) {
	if now.Sub(s.last) > b.cfg.HistoryTTL {
		s.seq, s.epoch, s.ring, s.bytes, s.deleted = 0, hub.NewEpoch(), nil, 0, nil
	}
}

// Publish implements Broker.
func (b *Broker) Publish(ctx context.Context, room string, r hub.PublishRequest) (hub.Publication, bool, error) {
	var p hub.Publication
	pos, dup, err := b.idem.do(ctx, r.IdempotencyKey, func() (hub.Position, bool, error) {
		s := b.lockStream(room)
		defer s.mu.Unlock()
		now := time.Now()
		b.expireLocked(s, now)
		if err := s.mod.checkLocked(r.Member, now.UnixMilli()); err != nil {
			return hub.Position{}, false, err
		}
		if err := checkTargetLocked(s, r.Target); err != nil {
			return hub.Position{}, false, err
		}
		s.seq++
		s.last = now
		p = hub.Publication{Seq: s.seq, Epoch: s.epoch, Frame: r.Message.Frame(s.seq)}
		b.appendLocked(s, p)
		markDeletedLocked(s, r.Target)
		if s.subscribed {
			b.enqueue(s.worker, delivery{kind: deliverPublication, gen: s.gen, stream: s, name: room, pub: p})
		}
		b.maybeSweep(now)
		return hub.Position{Seq: p.Seq, Epoch: p.Epoch}, true, nil
	})
	if dup {
		return hub.Publication{Seq: pos.Seq, Epoch: pos.Epoch}, true, err
	}
	return p, false, err
}

// appendLocked adds p to the stream's history, dropping the oldest
// publications beyond HistorySize or HistoryMaxBytes. s.mu is held.
func (b *Broker) appendLocked(s *memStream, p hub.Publication) {
	s.ring = append(s.ring, p)
	s.bytes += len(p.Frame)
	drop := 0
	for len(s.ring)-drop > 1 && (len(s.ring)-drop > b.cfg.HistorySize || s.bytes > b.cfg.HistoryMaxBytes) {
		s.bytes -= len(s.ring[drop].Frame)
		drop++
	}
	if drop > 0 {
		n := copy(s.ring, s.ring[drop:])
		clear(s.ring[n:])
		s.ring = s.ring[:n]
	}
}

// emptyIdle is how long a stream with no message and no subscriber (a room
// whose history or position was only read) is kept.
const emptyIdle = time.Minute

// maybeSweep drops, every 1024 publishes and history reads, the streams
// nobody subscribes to whose history expired or that never had a message
// and sat idle, and that hold no moderation in force, so that memory does not grow with every room name ever used.
// Forgetting an empty stream only changes its epoch, which loses nothing.
func (b *Broker) maybeSweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ops++; b.ops < 1024 {
		return
	}
	b.ops = 0
	for name, s := range b.streams {
		if s.mu.TryLock() {
			idle := now.Sub(s.last)
			expired := idle > b.cfg.HistoryTTL || s.seq == 0 && idle > emptyIdle
			if !s.subscribed && expired && s.mod.empty(now.UnixMilli()) {
				delete(b.streams, name)
			}
			s.mu.Unlock()
		}
	}
}

// History implements Broker. It reads a room nobody subscribed to or
// published to without keeping anything of it.
func (b *Broker) History(ctx context.Context, room string, q hub.HistoryQuery) (hub.HistoryPage, error) {
	b.mu.Lock()
	s := b.streams[room]
	b.mu.Unlock()
	if s == nil {
		return hub.HistoryPage{Position: hub.Position{Epoch: hub.NewEpoch()}}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b.expireLocked(s, time.Now())
	page := hub.HistoryPage{Position: hub.Position{Seq: s.seq, Epoch: s.epoch}}
	switch {
	case q.HasSince:
		if q.Epoch != "" && q.Epoch != s.epoch {
			break
		}
		n := 0
		for _, p := range s.ring {
			if p.Seq <= q.Since {
				continue
			}
			if n += len(p.Frame); q.MaxBytes > 0 && n > q.MaxBytes {
				page.Truncated = true
				break
			}
			page.Publications = append(page.Publications, p)
		}
	case q.Limit > 0:
		end := len(s.ring)
		for end > 0 && q.Before != 0 && s.ring[end-1].Seq >= q.Before {
			end--
		}
		start, n := end, 0
		for start > 0 && end-start < q.Limit {
			if n += len(s.ring[start-1].Frame); q.MaxBytes > 0 && n > q.MaxBytes && start < end {
				break
			}
			start--
		}
		page.Publications = append([]hub.Publication(nil), s.ring[start:end]...)
	}
	return page, nil
}

// BroadcastRoom implements Broker.
func (b *Broker) BroadcastRoom(ctx context.Context, room string, e hub.Event) error {
	s := b.lockStream(room)
	defer s.mu.Unlock()
	if s.subscribed {
		b.enqueue(s.worker, delivery{kind: deliverRoomEvent, gen: s.gen, stream: s, name: room, event: e})
	}
	return nil
}

// SendUser implements Broker.
func (b *Broker) SendUser(ctx context.Context, user string, e hub.Event, idempotencyKey string) (bool, bool, error) {
	delivered := false
	_, dup, err := b.idem.do(ctx, idempotencyKey, func() (hub.Position, bool, error) {
		b.mu.Lock()
		gen := b.users[user]
		b.mu.Unlock()
		if gen != 0 {
			b.enqueue(b.workerFor(user), delivery{kind: deliverUserEvent, gen: gen, name: user, event: e})
			delivered = true
		}
		return hub.Position{}, delivered, nil
	})
	return delivered || dup, dup, err
}

// SubscribeRoom implements Broker.
func (b *Broker) SubscribeRoom(ctx context.Context, room string) error {
	b.setRoom(room, true)
	return nil
}

// UnsubscribeRoom implements Broker. Once it returned, nothing of the room
// is delivered, not even what was queued before.
func (b *Broker) UnsubscribeRoom(ctx context.Context, room string) error {
	b.setRoom(room, false)
	return nil
}

// setRoom starts or ends the room's subscription, waiting for a delivery of
// the room in progress.
func (b *Broker) setRoom(room string, on bool) {
	s := b.lockStream(room)
	defer s.mu.Unlock()
	if s.subscribed == on {
		return
	}
	s.deliverMu.Lock()
	s.subscribed = on
	s.gen++
	s.deliverMu.Unlock()
}

// SubscribeUser implements Broker.
func (b *Broker) SubscribeUser(ctx context.Context, user string) error {
	b.setUser(user, true)
	return nil
}

// UnsubscribeUser implements Broker. Once it returned, nothing is delivered
// to the user, not even what was queued before.
func (b *Broker) UnsubscribeUser(ctx context.Context, user string) error {
	b.setUser(user, false)
	return nil
}

// setUser starts or ends the user's subscription, waiting for a delivery to
// the user in progress.
func (b *Broker) setUser(user string, on bool) {
	w := b.workerFor(user)
	w.userMu.Lock()
	defer w.userMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case on && b.users[user] == 0:
		b.userGen++
		b.users[user] = b.userGen
	case !on:
		delete(b.users, user)
	}
}

// Ready implements Broker: memory is always ready.
func (b *Broker) Ready(ctx context.Context) error { return nil }

// Close implements Broker: it stops the delivery goroutines, dropping the
// deliveries still queued, and waits for them to exit or for ctx. It may be
// called more than once.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	stopCtx := b.stopCtx
	b.mu.Unlock()
	if stopCtx != nil {
		stopCtx()
	}
	b.stopWorkers()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close: %w", ctx.Err())
	}
}
