package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// benchConns are a run's subscriber connections and their read loops. The
// run owns them: close ends every loop and waits for it.
type benchConns struct {
	subs    []*benchSub
	readers sync.WaitGroup
	st      *benchStats
}

func (c *benchConns) close() {
	c.st.closing.Store(true)
	for _, s := range c.subs {
		s.conn.CloseNow()
	}
	c.readers.Wait()
}

// benchRun runs one bench: connect, join, then publish and count (fanout)
// or hold and measure (idle), then leave.
func benchRun(ctx context.Context, cfg benchConfig, out io.Writer) (*benchResult, error) {
	res := newBenchResult(cfg)
	res.Nofile = raiseNofile()
	base, err := sampleProcs(cfg.PIDs)
	if err != nil {
		return nil, usageErr("bench: --pid: %v", err)
	}
	var tokens *tokenAuth
	if cfg.TokenSecret != "" {
		tokens = &tokenAuth{secret: []byte(cfg.TokenSecret)}
	}
	t := newBenchTarget(cfg.Target)
	st := &benchStats{rooms: uint64(cfg.Rooms)}
	ps := newPubStats(cfg.Rooms)
	var connected atomic.Int64
	var ph phase
	ph.set("connecting")
	var lastRecv int64
	prog := startProgress(out, func() string {
		recv := st.received.Load()
		rate := recv - lastRecv
		lastRecv = recv
		return fmt.Sprintf("%-10s connected %d  joined %d  published %d (errors %d, timeouts %d)  received %d (%d/s)  dropped %d",
			ph.String(), connected.Load(), st.joined.Load(), ps.ok.Load(), ps.errs.Load(), ps.timeouts.Load(), recv, rate, st.dropped.Load())
	})
	defer prog.Stop()

	start := time.Now()
	conns, dialErr := connectAll(ctx, cfg, t, tokens, st, &connected)
	res.ConnectSeconds = time.Since(start).Seconds()
	res.Connected, res.ConnectErrors = int64(len(conns.subs)), int64(cfg.Conns-len(conns.subs))
	if dialErr != nil {
		if h := dialHint(dialErr, cfg.Conns); h != "" {
			res.Hints = append(res.Hints, h)
		}
	}
	defer conns.close()
	if len(conns.subs) == 0 {
		return nil, fmt.Errorf("bench: no connection: %w", dialErr)
	}

	join := cfg.Mode == "fanout" || cfg.IdleJoin
	ph.set("joining")
	members := joinAll(ctx, cfg, t, st, conns, join, res)
	if cfg.Mode == "idle" {
		ph.set("holding")
		err = benchIdle(ctx, cfg, base, res)
	} else {
		ph.set("publishing")
		err = benchFanout(ctx, cfg, t, tokens, st, ps, members, base, res)
	}
	if err != nil {
		return nil, err
	}
	ph.set("leaving")
	conns.close()
	res.Dropped = st.dropped.Load()
	res.Errors = st.errs.snapshot()
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	return res, nil
}

// connectAll dials cfg.Conns connections, cfg.DialConc at a time, round-
// robin over the nodes and rooms. It returns those that connected and the
// first dial error.
func connectAll(ctx context.Context, cfg benchConfig, t benchTarget, tokens *tokenAuth, st *benchStats, connected *atomic.Int64) (*benchConns, error) {
	subs := make([]*benchSub, cfg.Conns)
	sem := make(chan struct{}, cfg.DialConc)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range cfg.Conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialSub(ctx, t, cfg.URLs[i%len(cfg.URLs)], benchUser(i), tokens)
			if err != nil {
				once.Do(func() { first = err })
				st.errs.note("connect", err)
				return
			}
			subs[i] = &benchSub{conn: c, room: i % cfg.Rooms}
			connected.Add(1)
		})
	}
	wg.Wait()
	conns := &benchConns{st: st}
	for _, s := range subs {
		if s != nil {
			conns.subs = append(conns.subs, s)
		}
	}
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("connect: %w", ctx.Err())
	}
	return conns, first
}

// joinAll starts every read loop; with join, each first joins its room,
// and joinAll waits (up to --join-timeout) for every answer. It returns
// how many subscribers joined each room.
func joinAll(ctx context.Context, cfg benchConfig, t benchTarget, st *benchStats, conns *benchConns, join bool, res *benchResult) []int64 {
	var answered sync.WaitGroup
	joined := make([]atomic.Bool, len(conns.subs))
	if join {
		answered.Add(len(conns.subs))
	}
	start := time.Now()
	for i, s := range conns.subs {
		conns.readers.Go(func() {
			s.readLoop(t, st, join, func() {
				joined[i].Store(true)
				answered.Done()
			})
		})
	}
	members := make([]int64, cfg.Rooms)
	if !join {
		return members
	}
	done := make(chan struct{})
	go func() { // exits once every read loop answered or ended
		answered.Wait()
		close(done)
	}()
	timer := time.NewTimer(cfg.JoinTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		st.errs.note("join", fmt.Errorf("not every join answered within %v", cfg.JoinTimeout))
	case <-ctx.Done():
	}
	res.Joined, res.JoinErrors = st.joined.Load(), st.joinErrs.Load()
	if last := st.lastJoin.Load(); last > 0 {
		res.JoinSeconds = time.Unix(0, last).Sub(start).Seconds()
	}
	for i, s := range conns.subs {
		if joined[i].Load() {
			members[s.room]++
		}
	}
	return members
}

// benchIdle holds the connections for --hold, then measures memory.
func benchIdle(ctx context.Context, cfg benchConfig, base procSample, res *benchResult) error {
	cpu0, err := sampleProcs(cfg.PIDs)
	if err != nil {
		return fmt.Errorf("bench: --pid: %w", err)
	}
	self := selfCPU()
	timer := time.NewTimer(cfg.Hold)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return fmt.Errorf("bench: hold: %w", ctx.Err())
	}
	res.BenchCPU = (selfCPU() - self).Seconds()
	return res.setServer(cfg, base, cpu0)
}

// benchFanout publishes, waits for the deliveries, and fills res.
func benchFanout(ctx context.Context, cfg benchConfig, t benchTarget, tokens *tokenAuth, st *benchStats, ps *pubStats, members []int64, base procSample, res *benchResult) error {
	cpu0, err := sampleProcs(cfg.PIDs)
	if err != nil {
		return fmt.Errorf("bench: --pid: %w", err)
	}
	self := selfCPU()
	start := time.Now()
	if cfg.Publisher == "ws" {
		if err := publishWS(ctx, cfg, t, tokens, ps, &st.errs); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	} else {
		publishAPI(ctx, cfg, t, ps, &st.errs)
	}
	var expected int64
	for r := range ps.okPerRoom {
		expected += ps.okPerRoom[r].Load() * members[r]
	}
	drain(ctx, st, expected, cfg.Drain)
	res.BenchCPU = (selfCPU() - self).Seconds()
	res.Published, res.PublishOK = ps.sent.Load(), ps.ok.Load()
	res.PublishErrors, res.PublishTimeouts = ps.errs.Load(), ps.timeouts.Load()
	res.PublishBehind = time.Duration(ps.behind.Load()).Seconds()
	res.Expected, res.Received = expected, st.received.Load()
	res.Lost = max(expected-res.Received, 0)
	res.Duplicates, res.Late, res.Misrouted = st.dups.Load(), st.late.Load(), st.misrouted.Load()
	if last := st.lastRecv.Load(); last > 0 {
		res.Seconds = time.Unix(0, last).Sub(start).Seconds()
		res.DeliveriesPerSecond = float64(res.Received) / res.Seconds
	}
	res.setLatency(&st.lat)
	if res.PublishErrors+res.PublishTimeouts > 0 {
		res.Hints = append(res.Hints, "some publishes failed: messages they may have delivered count as received, so lost is a lower bound")
	}
	return res.setServer(cfg, base, cpu0)
}

// drain waits until expected deliveries arrived, for at most d.
func drain(ctx context.Context, st *benchStats, expected int64, d time.Duration) {
	deadline := time.Now().Add(d)
	for st.received.Load() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// setServer samples the --pid processes at the end of the window that
// started at cpu0; base is the sample before connecting.
func (r *benchResult) setServer(cfg benchConfig, base, cpu0 procSample) error {
	if len(cfg.PIDs) == 0 {
		return nil
	}
	end, err := sampleProcs(cfg.PIDs)
	if err != nil {
		return fmt.Errorf("bench: --pid: %w", err)
	}
	s := &serverFigures{PIDs: cfg.PIDs, CPUSeconds: (end.CPU - cpu0.CPU).Seconds(), RSSBaseKiB: base.RSSKiB, RSSKiB: end.RSSKiB}
	if s.CPUSeconds > 0 {
		s.DeliveriesPerCPUSecond = float64(r.Received) / s.CPUSeconds
	}
	if r.Connected > 0 {
		s.KiBPerConnection = float64(end.RSSKiB-base.RSSKiB) / float64(r.Connected)
	}
	r.Server = s
	return nil
}
