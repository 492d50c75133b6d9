package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
)

// Config configures a Dispatcher. URL and Secret are required; the other
// fields' zero values are their defaults.
type Config struct {
	// URL receives the POSTs: http or https.
	URL string
	// Secret signs them (see Sign); at least MinSecretLen bytes.
	Secret []byte
	// Events are the event types delivered; empty means all.
	Events []string
	// Node is this node's name, the "node" of the events it emits.
	Node string
	// Timeout bounds each POST, from connecting to reading the answer's
	// status. Default 10s.
	Timeout time.Duration
	// MaxAttempts is how many POSTs a node makes of one event before it
	// gives up. Default 10.
	MaxAttempts int
	// MaxAge gives up an event this long after it happened, whatever the
	// attempts (a node that claims another's event starts counting
	// attempts again, not age). Default 1h.
	MaxAge time.Duration
	// Backoff is the delay before the first retry; each retry doubles it,
	// up to MaxBackoff, and every delay is drawn at random between half
	// and one and a half of it (jitter). Default 1s.
	Backoff time.Duration
	// MaxBackoff caps a retry's delay before jitter. Default 5m.
	MaxBackoff time.Duration
	// Concurrency is how many events the node delivers at once. Default 16.
	Concurrency int
	// QueueSize bounds the events Enqueue holds until they are added to
	// the Backlog. Default 1024.
	QueueSize int
	// FlushTimeout bounds how long Close keeps delivering the entries of a
	// volatile Backlog (see VolatileBacklog), which are lost once the
	// process stops; Close's ctx bounds it too. Default 5s; a negative
	// value stops at once.
	FlushTimeout time.Duration
	// HoldInterval is how often the entries being delivered are held (see
	// Backlog.Hold): well below a shared Backlog's claim time. Default 10s.
	HoldInterval time.Duration
	// Client sends the POSTs. Default: a client that follows no redirects
	// (a redirect is a failed attempt).
	Client *http.Client
	// Logger receives the dispatcher's logs; drops and give-ups are logged
	// at most once per 10s each, with their count. Default: none.
	Logger zerolog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Timeout, 10*time.Second)
	def(&c.MaxAge, time.Hour)
	def(&c.Backoff, time.Second)
	def(&c.MaxBackoff, 5*time.Minute)
	def(&c.HoldInterval, 10*time.Second)
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 5 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return c
}

// Validate reports what is wrong with c's URL, Secret and Events.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("url %q is not an http or https URL", c.URL)
	case len(c.Secret) < MinSecretLen:
		return fmt.Errorf("secret must be at least %d bytes", MinSecretLen)
	}
	known := make(map[string]bool)
	for _, t := range hub.WebhookTypes() {
		known[t] = true
	}
	for _, t := range c.Events {
		if !known[t] {
			return fmt.Errorf("unknown event type %q", t)
		}
	}
	return nil
}

// Dispatcher delivers events: Enqueue queues them, a writer adds them to
// the Backlog, a reader takes entries from it and delivers each on a
// goroutine of its own, up to Config.Concurrency at once. Its methods are
// safe for concurrent use; Start and Close are called once each.
type Dispatcher struct {
	cfg      Config
	backlog  Backlog
	volatile bool // the backlog's entries die with the process: Close flushes them
	log      zerolog.Logger
	events   map[string]bool // nil: all

	queue    chan queued
	closed   atomic.Bool
	stop     chan struct{}      // closed by Close: the writer flushes and exits
	written  chan struct{}      // closed when the writer has exited
	stopRead context.CancelFunc // stops the reader taking entries
	cancel   context.CancelFunc // stops everything
	wg       sync.WaitGroup     // reader, holder, deliveries

	mu       sync.Mutex
	inflight map[string]bool // refs being delivered
	progress chan struct{}   // signalled when an entry is done, for Close's flush

	stats                    counters
	dropLog, failLog, errLog rateLog // each line at most once per rateLogEvery
}

// queued is an event waiting to be added to the Backlog.
type queued struct {
	id string
	ev hub.WebhookEvent
}

// New returns a Dispatcher for cfg storing events in backlog. Call Start
// to deliver.
func New(cfg Config, backlog Backlog) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	cfg = cfg.withDefaults()
	d := &Dispatcher{
		cfg:      cfg,
		backlog:  backlog,
		volatile: volatile(backlog),
		log:      cfg.Logger.With().Str("component", "webhook").Logger(),
		queue:    make(chan queued, cfg.QueueSize),
		stop:     make(chan struct{}),
		written:  make(chan struct{}),
		inflight: make(map[string]bool),
		progress: make(chan struct{}, 1),
	}
	if len(cfg.Events) > 0 {
		d.events = make(map[string]bool)
		for _, t := range cfg.Events {
			d.events[t] = true
		}
	}
	return d, nil
}

// Enqueue queues an event for delivery without blocking: it is dropped
// (and counted) when the queue is full or the Dispatcher closed, and
// ignored when its type is not one of Config.Events. It is
// hub.Config.OnWebhookEvent.
func (d *Dispatcher) Enqueue(e hub.WebhookEvent) {
	if d.events != nil && !d.events[e.Type] {
		return
	}
	if d.closed.Load() {
		d.dropped(1, "dispatcher closed")
		return
	}
	select {
	case d.queue <- queued{id: newID(), ev: e}:
	default:
		d.dropped(1, "queue full")
	}
}

// newID returns a new random event id: 32 hex digits.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// envelope is an event's JSON body.
type envelope struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	TS   int64  `json:"ts"`
	Node string `json:"node"`
	Data any    `json:"data"`
}

// entry encodes a queued event.
func (d *Dispatcher) entry(q queued) (Entry, error) {
	body, err := json.Marshal(envelope{ID: q.id, Type: q.ev.Type, TS: q.ev.Time.UnixMilli(), Node: d.cfg.Node, Data: q.ev.Data})
	if err != nil {
		return Entry{}, fmt.Errorf("encode event: %w", err)
	}
	return Entry{ID: q.id, Type: q.ev.Type, Time: q.ev.Time, Body: body}, nil
}

// Start starts the writer, the reader and the holder. They stop on Close,
// or when ctx is cancelled.
func (d *Dispatcher) Start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	readCtx, stopRead := context.WithCancel(ctx)
	d.stopRead = stopRead
	go func() { defer close(d.written); d.write(ctx) }()
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.read(readCtx, ctx) }()
	go func() { defer d.wg.Done(); d.hold(ctx) }()
}

// Stats are a Dispatcher's counters, since New.
type Stats struct {
	// Delivered events were answered 2xx.
	Delivered uint64
	// Failed events were given up: answered 4xx (but 408 and 429), or out
	// of attempts or age.
	Failed uint64
	// Dropped events never made it into the Backlog (the queue or the
	// Backlog was full, or the Backlog unreachable), or were still in a
	// volatile Backlog when Close's flush ended.
	Dropped uint64
	// Retried counts the attempts that failed and were retried.
	Retried uint64
}

type counters struct{ delivered, failed, dropped, retried atomic.Uint64 }

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		Delivered: d.stats.delivered.Load(),
		Failed:    d.stats.failed.Load(),
		Dropped:   d.stats.dropped.Load(),
		Retried:   d.stats.retried.Load(),
	}
}

// Backlog returns the number of events in the Backlog not yet delivered:
// the cluster's, for a shared one.
func (d *Dispatcher) Backlog(ctx context.Context) (int, error) {
	return d.backlog.Len(ctx)
}

// dropped counts n events dropped, and logs it (rate-limited).
func (d *Dispatcher) dropped(n int, why string) {
	d.stats.dropped.Add(uint64(n))
	if c := d.dropLog.due(n); c > 0 {
		d.log.Warn().Int("dropped", c).Str("reason", why).Msg("webhook events dropped")
	}
}

// rateLog lets a line through at most once per rateLogEvery, with the
// count of what happened since the last one.
type rateLog struct {
	mu    sync.Mutex
	last  time.Time
	count int
}

const rateLogEvery = 10 * time.Second

// due adds n and returns the count to log now, or 0.
func (r *rateLog) due(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count += n
	if time.Since(r.last) < rateLogEvery {
		return 0
	}
	c := r.count
	r.last, r.count = time.Now(), 0
	return c
}
