package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// benchResult is what one bench run measured: the table's rows, and the
// --json object.
type benchResult struct {
	Target    string  `json:"target"`
	Mode      string  `json:"mode"`
	Publisher string  `json:"publisher,omitempty"`
	URLs      string  `json:"urls"`
	Conns     int     `json:"conns"`
	Rooms     int     `json:"rooms"`
	Messages  int     `json:"messages,omitempty"`
	Rate      float64 `json:"rate,omitempty"`
	Size      int     `json:"size,omitempty"`

	Connected      int64   `json:"connected"`
	ConnectErrors  int64   `json:"connect_errors"`
	ConnectSeconds float64 `json:"connect_seconds"`
	Joined         int64   `json:"joined"`
	JoinErrors     int64   `json:"join_errors"`
	JoinSeconds    float64 `json:"join_seconds"`
	Dropped        int64   `json:"dropped"`

	Published       int64   `json:"published"`
	PublishOK       int64   `json:"publish_ok"`
	PublishErrors   int64   `json:"publish_errors"`
	PublishTimeouts int64   `json:"publish_timeouts"`
	PublishBehind   float64 `json:"publish_behind_seconds"`

	Expected            int64      `json:"expected"`
	Received            int64      `json:"received"`
	Lost                int64      `json:"lost"`
	Duplicates          int64      `json:"duplicates"`
	Late                int64      `json:"late"`
	Misrouted           int64      `json:"misrouted"`
	Seconds             float64    `json:"seconds"`
	DeliveriesPerSecond float64    `json:"deliveries_per_second"`
	Latency             *latencyMs `json:"latency_ms,omitempty"`

	Server   *serverFigures    `json:"server,omitempty"`
	BenchCPU float64           `json:"bench_cpu_seconds"`
	Nofile   uint64            `json:"nofile_limit"`
	Errors   map[string]string `json:"errors,omitempty"`
	Hints    []string          `json:"hints,omitempty"`
}

// latencyMs are delivery latencies, publish to frame read, in ms.
type latencyMs struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// serverFigures are the --pid processes' figures over the measured
// window (fanout: first publish to end of drain; idle: the hold).
type serverFigures struct {
	PIDs                   []int   `json:"pids"`
	CPUSeconds             float64 `json:"cpu_seconds"`
	DeliveriesPerCPUSecond float64 `json:"deliveries_per_cpu_second,omitempty"`
	RSSBaseKiB             int64   `json:"rss_base_kib"`
	RSSKiB                 int64   `json:"rss_kib"`
	KiBPerConnection       float64 `json:"kib_per_connection"`
}

func newBenchResult(cfg benchConfig) *benchResult {
	r := &benchResult{Target: cfg.Target, Mode: cfg.Mode, URLs: joinURLs(cfg.URLs), Conns: cfg.Conns, Rooms: cfg.Rooms}
	if cfg.Mode == "fanout" {
		r.Publisher, r.Messages, r.Rate, r.Size = cfg.Publisher, cfg.Messages, cfg.Rate, cfg.Size
	}
	return r
}

func (r *benchResult) setLatency(h *histogram) {
	if h.n.Load() == 0 {
		return
	}
	ms := func(q float64) float64 { return float64(h.quantile(q)) / float64(time.Millisecond) }
	r.Latency = &latencyMs{P50: ms(0.50), P95: ms(0.95), P99: ms(0.99), Max: float64(h.max.Load()) / 1000}
}

func (r *benchResult) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// writeTable prints the result as aligned "name  value" rows.
func (r *benchResult) writeTable(w io.Writer) {
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "%-28s "+format+"\n", append([]any{name}, args...)...)
	}
	row("target", "%s (%s)", r.Target, r.URLs)
	row("mode", "%s, %d connections, %d rooms", r.Mode, r.Conns, r.Rooms)
	row("connected", "%d in %.2f s (%d errors)", r.Connected, r.ConnectSeconds, r.ConnectErrors)
	if r.Joined+r.JoinErrors > 0 {
		row("joined", "%d in %.3f s (%d errors)", r.Joined, r.JoinSeconds, r.JoinErrors)
	}
	row("connections dropped", "%d", r.Dropped)
	if r.Mode == "fanout" {
		row("publisher", "%s, %d messages at %g/s, %d bytes", r.Publisher, r.Messages, r.Rate, r.Size)
		row("published", "%d ok, %d errors, %d timeouts (at most %.3f s behind schedule)",
			r.PublishOK, r.PublishErrors, r.PublishTimeouts, r.PublishBehind)
		row("deliveries", "%d expected, %d received, %d lost, %d duplicates", r.Expected, r.Received, r.Lost, r.Duplicates)
		if r.Late+r.Misrouted > 0 {
			row("deliveries unaccounted", "%d late (behind the window), %d to the wrong room", r.Late, r.Misrouted)
		}
		row("deliveries/s", "%.0f over %.2f s", r.DeliveriesPerSecond, r.Seconds)
		if l := r.Latency; l != nil {
			row("latency ms", "p50 %.1f  p95 %.1f  p99 %.1f  max %.1f", l.P50, l.P95, l.P99, l.Max)
		}
	}
	if s := r.Server; s != nil {
		row("server pids", "%v", s.PIDs)
		row("server cpu s", "%.2f", s.CPUSeconds)
		if r.Mode == "fanout" {
			row("deliveries per server cpu-s", "%.0f", s.DeliveriesPerCPUSecond)
		}
		row("server rss KiB", "%d (before connecting %d)", s.RSSKiB, s.RSSBaseKiB)
		row("KiB per connection", "%.1f", s.KiBPerConnection)
	}
	row("bench cpu s", "%.2f", r.BenchCPU)
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		row("first error: "+k, "%s", r.Errors[k])
	}
	for _, h := range r.Hints {
		row("hint", "%s", h)
	}
}

// progress prints line() to w once a second until stop is called.
type progress struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startProgress(w io.Writer, line func() string) *progress {
	p := &progress{stop: make(chan struct{})}
	if w == io.Discard {
		return p
	}
	start := time.Now()
	p.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case now := <-tick.C:
				fmt.Fprintf(w, "bench %3.0fs %s\n", now.Sub(start).Seconds(), line())
			}
		}
	})
	return p
}

// Stop ends the progress lines and waits for the printer to exit.
func (p *progress) Stop() {
	close(p.stop)
	p.wg.Wait()
}

// phase names the step a run is in, for the progress line.
type phase struct {
	mu   sync.Mutex
	name string
}

func (p *phase) set(name string) {
	p.mu.Lock()
	p.name = name
	p.mu.Unlock()
}

func (p *phase) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.name
}
