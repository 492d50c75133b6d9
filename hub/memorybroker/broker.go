package memorybroker

import (
	"context"
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
}

// Broker is the single-node Broker: publications and events are
// delivered synchronously to the hub.Handler, history is a ring per room.
type Broker struct {
	cfg  Config
	idem idempotency

	mu      sync.Mutex
	h       hub.Handler
	streams map[string]*memStream
	users   map[string]bool
	ops     int // publishes and history reads since the last sweep
}

var _ hub.Broker = (*Broker)(nil)

// memStream is one room's history and subscription state. mu is held while a
// publication is delivered, so that deliveries of a room are in seq order.
type memStream struct {
	mu         sync.Mutex
	subscribed bool
	seq        uint64
	epoch      string
	ring       []hub.Publication // oldest first, at most HistorySize
	bytes      int               // summed frame sizes of ring, at most HistoryMaxBytes but for the newest
	last       time.Time         // last publish
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
	return &Broker{
		cfg:     cfg,
		idem:    idempotency{ttl: cfg.IdempotencyTTL},
		streams: make(map[string]*memStream),
		users:   make(map[string]bool),
	}
}

// Start implements Broker.
func (b *Broker) Start(ctx context.Context, h hub.Handler) error {
	b.mu.Lock()
	b.h = h
	b.mu.Unlock()
	return nil
}

// stream returns the room's stream, creating it, or starting a new epoch when
// its history expired.
func (b *Broker) stream(room string) *memStream {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[room]
	if s == nil {
		s = &memStream{epoch: hub.NewEpoch(), last: time.Now()}
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
		s.seq, s.epoch, s.ring, s.bytes = 0, hub.NewEpoch(), nil, 0
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
		s.seq++
		s.last = now
		p = hub.Publication{Seq: s.seq, Epoch: s.epoch, Frame: r.Message.Frame(s.seq)}
		b.appendLocked(s, p)
		if s.subscribed {
			b.handler().HandlePublication(room, p)
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

func (b *Broker) handler() hub.Handler {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.h
}

// emptyIdle is how long a stream with no message and no subscriber (a room
// whose history or position was only read) is kept.
const emptyIdle = time.Minute

// maybeSweep drops, every 1024 publishes and history reads, the streams
// nobody subscribes to whose history expired or that never had a message
// and sat idle, so that memory does not grow with every room name ever used.
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
			if !s.subscribed && (idle > b.cfg.HistoryTTL || s.seq == 0 && idle > emptyIdle) {
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
		b.handler().HandleRoomEvent(room, e)
	}
	return nil
}

// SendUser implements Broker.
func (b *Broker) SendUser(ctx context.Context, user string, e hub.Event, idempotencyKey string) (bool, bool, error) {
	delivered := false
	_, dup, err := b.idem.do(ctx, idempotencyKey, func() (hub.Position, bool, error) {
		b.mu.Lock()
		online, h := b.users[user], b.h
		b.mu.Unlock()
		if online {
			h.HandleUserEvent(user, e)
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

// UnsubscribeRoom implements Broker.
func (b *Broker) UnsubscribeRoom(ctx context.Context, room string) error {
	b.setRoom(room, false)
	return nil
}

func (b *Broker) setRoom(room string, on bool) {
	s := b.lockStream(room)
	s.subscribed = on
	s.mu.Unlock()
}

// SubscribeUser implements Broker.
func (b *Broker) SubscribeUser(ctx context.Context, user string) error {
	b.mu.Lock()
	b.users[user] = true
	b.mu.Unlock()
	return nil
}

// UnsubscribeUser implements Broker.
func (b *Broker) UnsubscribeUser(ctx context.Context, user string) error {
	b.mu.Lock()
	delete(b.users, user)
	b.mu.Unlock()
	return nil
}

// Ready implements Broker: memory is always ready.
func (b *Broker) Ready(ctx context.Context) error { return nil }

// Close implements Broker.
func (b *Broker) Close(ctx context.Context) error { return nil }
