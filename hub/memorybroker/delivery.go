package memorybroker

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/switchboard-chat/switchboard/hub"
)

// Delivery. Publish, BroadcastRoom and SendUser do not call the Handler:
// they put a delivery on the bounded queue of one of a fixed set of
// delivery goroutines and return, so a publisher never waits for a room's
// fan-out. A room always goes to the same goroutine (by a hash of its name),
// and its deliveries are queued under the room's stream lock in the order
// the seqs are assigned, so a room's publications and events reach the
// Handler in order; a user's events likewise go by the user's name. When a
// queue is full the caller waits for room on it (backpressure, bounded by
// the queue's size); nothing is ever dropped but at Close.
//
// A delivery carries the subscription it was queued under (a generation
// counter of the room or user). The goroutine delivers it only if that
// subscription still holds, and holds the room's (or the user shard's)
// delivery lock while it calls the Handler: Unsubscribe takes that lock, so
// once it returned nothing of the room or user is delivered, not even what
// was queued before.

// deliveryKind says what a delivery carries.
type deliveryKind uint8

const (
	deliverPublication deliveryKind = iota
	deliverRoomEvent
	deliverUserEvent
	deliverFlush // a marker: close done once everything before it was delivered
)

// delivery is one entry of a worker's queue.
type delivery struct {
	kind   deliveryKind
	gen    uint64     // of the subscription it was queued under
	stream *memStream // the room's, for a publication or room event
	name   string     // room or user
	pub    hub.Publication
	event  hub.Event
	done   chan struct{} // deliverFlush
}

// worker is one delivery goroutine's queue, and the lock its user events
// are delivered under.
type worker struct {
	queue  chan delivery
	userMu sync.Mutex // held while delivering a user event and while (un)subscribing a user of this worker
}

// workerFor returns the worker of a room or user name.
func (b *Broker) workerFor(name string) *worker {
	return &b.workers[maphash.String(b.seed, name)%uint64(len(b.workers))]
}

// startWorkers starts the delivery goroutines, which deliver to h until
// Close is called or ctx is done.
func (b *Broker) startWorkers(ctx context.Context, h hub.Handler) {
	b.h = h
	b.stopCtx = context.AfterFunc(ctx, b.stopWorkers)
	for i := range b.workers {
		w := &b.workers[i]
		b.wg.Go(func() { b.work(w) })
	}
}

// stopWorkers tells the delivery goroutines to stop, dropping what is
// queued. It may be called more than once.
func (b *Broker) stopWorkers() {
	b.stopOnce.Do(func() { close(b.stop) })
}

// work delivers w's queue in order until the broker stops.
func (b *Broker) work(w *worker) {
	for {
		select {
		case d := <-w.queue:
			b.deliver(w, d)
		case <-b.stop:
			return
		}
	}
}

// enqueue puts d on w's queue, waiting while the queue is full. It drops d
// once the broker stopped. It does not give up on a context: the
// publication is in history by then, and dropping its delivery would leave
// a gap for the room's members; the wait is bounded because the Handler
// never blocks.
func (b *Broker) enqueue(w *worker, d delivery) {
	select {
	case w.queue <- d:
		return
	default:
	}
	select {
	case w.queue <- d:
	case <-b.stop:
	}
}

// deliver hands d to the Handler if the subscription it was queued under
// still holds.
func (b *Broker) deliver(w *worker, d delivery) {
	switch d.kind {
	case deliverFlush:
		close(d.done)
	case deliverPublication, deliverRoomEvent:
		s := d.stream
		s.deliverMu.Lock()
		defer s.deliverMu.Unlock()
		if s.gen != d.gen {
			return
		}
		if d.kind == deliverPublication {
			b.h.HandlePublication(d.name, d.pub)
		} else {
			b.h.HandleRoomEvent(d.name, d.event)
		}
	case deliverUserEvent:
		w.userMu.Lock()
		defer w.userMu.Unlock()
		b.mu.Lock()
		live := b.users[d.name] == d.gen
		b.mu.Unlock()
		if live {
			b.h.HandleUserEvent(d.name, d.event)
		}
	}
}

// Flush waits until everything queued for delivery before the call was
// delivered (or dropped, its room or user no longer subscribed), or until
// ctx is done. A test uses it to see what a publish delivered; the hub does
// not need it. After Close it returns at once.
func (b *Broker) Flush(ctx context.Context) error {
	dones := make([]chan struct{}, len(b.workers))
	for i := range b.workers {
		dones[i] = make(chan struct{})
		select {
		case b.workers[i].queue <- delivery{kind: deliverFlush, done: dones[i]}:
		case <-b.stop:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
	for _, done := range dones {
		select {
		case <-done:
		case <-b.stop:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
	return nil
}
