package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// writeBatch caps the events added to the Backlog at once.
const writeBatch = 128

// backlogTimeout bounds each Backlog call but Take.
const backlogTimeout = 5 * time.Second

// write adds the queued events to the Backlog, a batch at a time, until
// Close; then it adds what is still queued and returns.
func (d *Dispatcher) write(ctx context.Context) {
	for {
		select {
		case q := <-d.queue:
			d.add(ctx, d.batch(q))
		case <-d.stop:
			for {
				select {
				case q := <-d.queue:
					d.add(ctx, d.batch(q))
				default:
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// batch returns first and up to writeBatch-1 more queued events.
func (d *Dispatcher) batch(first queued) []queued {
	qs := []queued{first}
	for len(qs) < writeBatch {
		select {
		case q := <-d.queue:
			qs = append(qs, q)
		default:
			return qs
		}
	}
	return qs
}

// add encodes qs and adds them to the Backlog, counting what it drops.
func (d *Dispatcher) add(ctx context.Context, qs []queued) {
	entries := make([]Entry, 0, len(qs))
	for _, q := range qs {
		e, err := d.entry(q)
		if err != nil {
			d.log.Error().Err(err).Str("type", q.ev.Type).Msg("webhook event dropped")
			d.stats.dropped.Add(1)
			continue
		}
		entries = append(entries, e)
	}
	ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	refused, err := d.backlog.Add(ctx, entries)
	switch {
	case err != nil:
		d.dropped(len(entries), "backlog unreachable: "+err.Error())
	case refused > 0:
		d.dropped(refused, "backlog full")
	}
}

// read takes entries from the Backlog while fewer than Config.Concurrency
// are being delivered, and delivers each on a goroutine, until readCtx
// ends. The deliveries run until ctx ends.
func (d *Dispatcher) read(readCtx, ctx context.Context) {
	slots := make(chan struct{}, d.cfg.Concurrency)
	for {
		n := acquire(readCtx, slots)
		if n == 0 {
			return
		}
		entries, err := d.backlog.Take(readCtx, n)
		for range n - len(entries) {
			<-slots
		}
		if err != nil {
			if readCtx.Err() != nil {
				return
			}
			if c := d.errLog.due(1); c > 0 {
				d.log.Warn().Err(err).Int("errors", c).Msg("webhook backlog: take failed")
			}
			sleep(readCtx, time.Second)
			continue
		}
		for _, e := range entries {
			d.track(e.Ref, true)
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer func() { <-slots }()
				defer d.track(e.Ref, false)
				d.deliver(ctx, e)
			}()
		}
	}
}

// acquire waits for a free slot and takes every free one; it returns how
// many, 0 when ctx ended first.
func acquire(ctx context.Context, slots chan struct{}) int {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
}

// track records (or forgets) ref as being delivered, for hold.
func (d *Dispatcher) track(ref string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if on {
		d.inflight[ref] = true
	} else {
		delete(d.inflight, ref)
	}
}

// hold holds the entries being delivered every Config.HoldInterval.
func (d *Dispatcher) hold(ctx context.Context) {
	t := time.NewTicker(d.cfg.HoldInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		refs := make([]string, 0, len(d.inflight))
		for ref := range d.inflight {
			refs = append(refs, ref)
		}
		d.mu.Unlock()
		if len(refs) == 0 {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, backlogTimeout)
		if err := d.backlog.Hold(hctx, refs); err != nil && ctx.Err() == nil {
			d.log.Warn().Err(err).Int("events", len(refs)).Msg("webhook backlog: hold failed")
		}
		cancel()
	}
}

// deliver POSTs e until it is delivered or given up, or ctx ends (the
// entry then stays in the Backlog).
func (d *Dispatcher) deliver(ctx context.Context, e Entry) {
	for attempt := 1; ; attempt++ {
		status, err := d.post(ctx, e)
		if err == nil && status/100 == 2 {
			d.stats.delivered.Add(1)
			d.done(ctx, e)
			return
		}
		if ctx.Err() != nil {
			return
		}
		why := fmt.Sprintf("answered %d", status)
		if err != nil {
			why = err.Error()
		}
		if err == nil && permanent(status) {
			d.giveUp(ctx, e, attempt, why)
			return
		}
		wait := d.backoff(attempt)
		if attempt >= d.cfg.MaxAttempts || time.Since(e.Time)+wait > d.cfg.MaxAge {
			d.giveUp(ctx, e, attempt, why)
			return
		}
		d.stats.retried.Add(1)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// permanent reports whether an answer's status gives the event up: a 4xx
// but 408 (timeout) and 429 (too many requests). 3xx and 5xx are retried.
func permanent(status int) bool {
	return status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// backoff returns the delay after the attempt-th failure: Backoff doubled
// per attempt, capped at MaxBackoff, times a random 0.5 to 1.5.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	b := d.cfg.Backoff
	for i := 1; i < attempt && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	return time.Duration(float64(b) * (0.5 + rand.Float64()))
}

// giveUp counts e as failed, removes it from the Backlog and logs it
// (rate-limited).
func (d *Dispatcher) giveUp(ctx context.Context, e Entry, attempts int, why string) {
	d.stats.failed.Add(1)
	d.done(ctx, e)
	if c := d.failLog.due(1); c > 0 {
		d.log.Warn().Str("id", e.ID).Str("type", e.Type).Int("attempts", attempts).Str("error", why).
			Int("given_up", c).Msg("webhook events given up")
	}
}

// done removes e from the Backlog, even while stopping: it was delivered or
// given up.
func (d *Dispatcher) done(ctx context.Context, e Entry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backlogTimeout)
	defer cancel()
	if err := d.backlog.Done(ctx, e); err != nil {
		d.log.Warn().Err(err).Str("id", e.ID).Msg("webhook backlog: done failed; the event will be sent again")
	}
	select {
	case d.progress <- struct{}{}:
	default: // Close's flush has a signal pending already
	}
}

// post sends e once, signed now, and returns the answer's status.
func (d *Dispatcher) post(ctx context.Context, e Entry) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(e.Body))
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Webhook/1")
	req.Header.Set(HeaderEventID, e.ID)
	req.Header.Set(HeaderEventType, e.Type)
	req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, time.Now(), e.Body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
