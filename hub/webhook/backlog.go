package webhook

import (
	"context"
	"sync"
	"time"
)

// Entry is one event in a Backlog.
type Entry struct {
	// Ref is the Backlog's handle of the entry (a stream entry id); set by
	// Take.
	Ref string
	// ID and Type are the event's, as in Body.
	ID   string
	Type string
	// Time is when the event happened: an entry older than Config.MaxAge
	// is given up.
	Time time.Time
	// Body is the JSON body POSTed.
	Body []byte
}

// Backlog holds the events not yet delivered, and hands each to one
// deliverer: the Dispatcher of this node or, for a shared Backlog, of one
// node of the cluster. Implementations are bounded and safe for concurrent
// use; every method that waits takes ctx.
type Backlog interface {
	// Add stores entries and returns how many of them it refused because
	// it is full (they are dropped).
	Add(ctx context.Context, entries []Entry) (refused int, err error)
	// Take returns up to n entries for this node to deliver: entries whose
	// deliverer stopped (a shared Backlog claims them), or new ones. It
	// waits about a second for one, then returns none.
	Take(ctx context.Context, n int) ([]Entry, error)
	// Hold tells the Backlog that this node is still delivering the
	// entries of refs, so that nobody claims them. The Dispatcher calls it
	// every Config.HoldInterval.
	Hold(ctx context.Context, refs []string) error
	// Done removes a taken entry for good: delivered, or given up.
	Done(ctx context.Context, e Entry) error
	// Len returns the number of entries added and not yet Done, on every
	// node that shares the Backlog.
	Len(ctx context.Context) (int, error)
}

// VolatileBacklog is a Backlog that may lose its entries when the process
// stops, an optional capability found by type assertion: when Volatile
// reports true (MemoryBacklog), Dispatcher.Close keeps delivering its
// entries before it returns (see Config.FlushTimeout). A shared Backlog
// keeps them for the other nodes, and a node stops without waiting.
type VolatileBacklog interface {
	Backlog
	// Volatile reports whether the entries are lost when the process
	// stops.
	Volatile() bool
}

// volatile reports whether b's entries are lost when the process stops.
func volatile(b Backlog) bool {
	v, ok := b.(VolatileBacklog)
	return ok && v.Volatile()
}

// Default bounds of a backlog.
const (
	// DefaultMaxEvents is the most events a backlog holds by default.
	DefaultMaxEvents = 10000
	// DefaultMaxBytes is the most bytes of event bodies a backlog holds by
	// default, 64 MiB: a message event carries up to one client frame.
	DefaultMaxBytes = 64 << 20
)

// takeWait is how long Take waits for an entry.
const takeWait = time.Second

// MemoryBacklog is the Backlog of a single node: a bounded queue in the
// process. Its entries are lost when the process stops, so it is a
// VolatileBacklog: a Dispatcher's Close delivers them first, for a while.
type MemoryBacklog struct {
	ch       chan Entry
	maxBytes int

	mu    sync.Mutex
	bytes int // of the entries added and not Done
	count int // entries added and not Done
}

var _ VolatileBacklog = (*MemoryBacklog)(nil)

// NewMemoryBacklog returns an empty MemoryBacklog holding up to maxEvents
// events (DefaultMaxEvents when 0) and maxBytes bytes of bodies
// (DefaultMaxBytes when 0), counting the entries being delivered.
func NewMemoryBacklog(maxEvents, maxBytes int) *MemoryBacklog {
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEvents
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &MemoryBacklog{ch: make(chan Entry, maxEvents), maxBytes: maxBytes}
}

// Add implements Backlog.
func (b *MemoryBacklog) Add(ctx context.Context, entries []Entry) (int, error) {
	refused := 0
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range entries {
		if b.count >= cap(b.ch) || b.bytes+len(e.Body) > b.maxBytes {
			refused++
			continue
		}
		e.Ref = e.ID
		b.ch <- e // never blocks: count < cap(ch), and count ≥ len(ch)
		b.count++
		b.bytes += len(e.Body)
	}
	return refused, nil
}

// Take implements Backlog.
func (b *MemoryBacklog) Take(ctx context.Context, n int) ([]Entry, error) {
	wait := time.NewTimer(takeWait)
	defer wait.Stop()
	var out []Entry
	select {
	case e := <-b.ch:
		out = append(out, e)
	case <-wait.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(out) < n {
		select {
		case e := <-b.ch:
			out = append(out, e)
		default:
			return out, nil
		}
	}
	return out, nil
}

// Hold implements Backlog: nobody else takes a MemoryBacklog's entries.
func (b *MemoryBacklog) Hold(ctx context.Context, refs []string) error { return nil }

// Done implements Backlog.
func (b *MemoryBacklog) Done(ctx context.Context, e Entry) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count--
	b.bytes -= len(e.Body)
	return nil
}

// Volatile implements VolatileBacklog: true.
func (b *MemoryBacklog) Volatile() bool { return true }

// Len implements Backlog.
func (b *MemoryBacklog) Len(ctx context.Context) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count, nil
}
