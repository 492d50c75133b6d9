package memorybroker

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// idempotency makes an operation happen at most once per key within ttl, for
// the memory broker. A second caller with a key in flight waits for the first
// and then gets its result.
type idempotency struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]*idemEntry
	added   int // entries added since the last sweep
}

// idemEntry is what a key keeps: the first call's position, not its frame,
// so that an entry costs a few dozen bytes however large the message.
type idemEntry struct {
	done    chan struct{} // closed when the first call finished
	pub     hub.Position
	kept    bool // the first call succeeded and asked to be remembered
	expires time.Time
}

// do runs fn once per key. fn reports whether its result should be
// remembered; a result not remembered (an error, an offline user) lets the
// next call with the key run fn again. do reports duplicate = true when it
// returns a remembered result instead of running fn.
func (m *idempotency) do(ctx context.Context, key string, fn func() (hub.Position, bool, error)) (hub.Position, bool, error) {
	if key == "" {
		p, _, err := fn()
		return p, false, err
	}
	for {
		e, owner := m.claim(key)
		if owner {
			p, keep, err := fn()
			m.finish(key, e, p, keep && err == nil)
			return p, false, err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return hub.Position{}, false, ctx.Err()
		}
		if e.kept {
			return e.pub, true, nil
		}
	}
}

func (m *idempotency) claim(key string) (*idemEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if e := m.entries[key]; e != nil && (e.expires.IsZero() || now.Before(e.expires)) {
		return e, false
	}
	if m.entries == nil {
		m.entries = make(map[string]*idemEntry)
	}
	m.sweepLocked(now)
	e := &idemEntry{done: make(chan struct{})}
	m.entries[key] = e
	return e, true
}

func (m *idempotency) finish(key string, e *idemEntry, p hub.Position, keep bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.pub, e.kept = p, keep
	if keep {
		e.expires = time.Now().Add(m.ttl)
	} else {
		delete(m.entries, key)
	}
	close(e.done)
}

// sweepLocked drops expired entries once every 1024 additions, keeping the
// map bounded by what was added within one ttl.
func (m *idempotency) sweepLocked(now time.Time) {
	if m.added++; m.added < 1024 {
		return
	}
	m.added = 0
	for k, e := range m.entries {
		if !e.expires.IsZero() && now.After(e.expires) {
			delete(m.entries, k)
		}
	}
}
