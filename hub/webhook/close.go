package webhook

import (
	"context"
	"fmt"
	"time"
)

// Close stops the Dispatcher and waits for every goroutine it started.
// Enqueue drops events from the start of Close on; those queued before are
// added to the Backlog first. Then:
//
//   - With a volatile Backlog (see VolatileBacklog), whose entries die with
//     the process, Close keeps delivering, retries with backoff included,
//     until the Backlog is empty, for at most Config.FlushTimeout and never
//     beyond ctx: no POST and no retry delay outlasts that deadline. The
//     events still undelivered then are lost: Close counts them as dropped
//     (Stats.Dropped) and logs how many, in one line.
//   - With a shared Backlog, Close does not wait for the receiver: it takes
//     no more entries and stops the deliveries in flight, whose entries
//     another node claims after its claim time.
//
// Close returns an error when ctx ended before the queued events were
// added to the Backlog: those are dropped.
func (d *Dispatcher) Close(ctx context.Context) error {
	if d.closed.Swap(true) || d.cancel == nil {
		return nil // closed already, or never started
	}
	if !d.volatile {
		d.stopRead()
	}
	close(d.stop)
	var err error
	select {
	case <-d.written:
	case <-ctx.Done():
		err = fmt.Errorf("close webhook dispatcher: %w", ctx.Err())
	}
	start := time.Now()
	if d.volatile && err == nil {
		d.flush(ctx)
	}
	d.stopRead()
	d.cancel()
	<-d.written
	d.wg.Wait()
	d.dropQueued()
	if d.volatile {
		d.dropUndelivered(time.Since(start))
	}
	return err
}

// flush waits until the Backlog is empty (each entry delivered or given
// up), Config.FlushTimeout passed or ctx ended, while the reader and the
// deliveries go on.
func (d *Dispatcher) flush(ctx context.Context) {
	if d.cfg.FlushTimeout < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.FlushTimeout)
	defer cancel()
	for {
		n, err := d.backlog.Len(ctx)
		if err != nil || n == 0 {
			return
		}
		select {
		case <-d.progress:
		case <-ctx.Done():
			return
		}
	}
}

// dropQueued counts as dropped the events that an Enqueue racing with
// Close queued after the writer's last look.
func (d *Dispatcher) dropQueued() {
	n := 0
	for {
		select {
		case <-d.queue:
			n++
		default:
			if n > 0 {
				d.dropped(n, "dispatcher closed")
			}
			return
		}
	}
}

// dropUndelivered counts the entries left in a volatile Backlog as
// dropped, since they die with the process, and logs how many in one line
// (not rate-limited: it is the last).
func (d *Dispatcher) dropUndelivered(flushed time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	n, err := d.backlog.Len(ctx)
	if err != nil || n == 0 {
		return
	}
	d.stats.dropped.Add(uint64(n))
	d.log.Warn().Int("dropped", n).Dur("flushed_ms", flushed).
		Str("reason", "not delivered when the stop's flush ended; the backlog is in memory").
		Msg("webhook events lost at shutdown")
}
