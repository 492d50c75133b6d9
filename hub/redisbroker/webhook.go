package redisbroker

import (
	"context"
	_ "embed"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub/webhook"
)

var (
	//go:embed lua/webhook.lua
	webhookLua    string
	webhookScript = redis.NewScript(webhookLua)
)

// webhookGroup is the consumer group every node reads the webhook stream
// in; each node is a consumer, named by its node id.
const webhookGroup = "switchboard"

// webhookBlock is how long a Take waits for a new entry.
const webhookBlock = time.Second

// WebhookConfig configures a WebhookBacklog. Its zero value works.
type WebhookConfig struct {
	// MaxEvents caps the events not yet delivered, cluster-wide. Default
	// webhook.DefaultMaxEvents.
	MaxEvents int
	// MaxBytes caps their summed body sizes. Default
	// webhook.DefaultMaxBytes.
	MaxBytes int
	// ClaimIdle is how long an entry taken by a node stays with it without
	// being held (see webhook.Backlog.Hold) before another node claims it:
	// the node stopped. It must be well above the Dispatcher's
	// HoldInterval. Default 1m.
	ClaimIdle time.Duration
}

// WebhookBacklog is the webhook.Backlog of a cluster: a Redis Stream, with
// a consumer group in which each node is a consumer. XREADGROUP hands each
// new event to one node; the node acknowledges and deletes it once
// delivered or given up; a node's entries left pending for ClaimIdle (it
// stopped or crashed) are claimed by another node with XAUTOCLAIM. The
// stream is one key: on a Redis Cluster, tagged {webhooks}, so in one slot.
type WebhookBacklog struct {
	b        *Broker
	cfg      WebhookConfig
	key      string // the stream
	bytesKey string // the summed body sizes

	mu        sync.Mutex
	grouped   bool      // the group is known to exist
	cursor    string    // where the claim scan goes on; "0-0" to start
	lastClaim time.Time // when the claim scan last finished
}

var _ webhook.Backlog = (*WebhookBacklog)(nil)

// WebhookBacklog returns the cluster's webhook backlog, through b's Redis
// connection: b must not be closed before the Dispatcher using it.
func (b *Broker) WebhookBacklog(cfg WebhookConfig) *WebhookBacklog {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = webhook.DefaultMaxEvents
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = webhook.DefaultMaxBytes
	}
	if cfg.ClaimIdle <= 0 {
		cfg.ClaimIdle = time.Minute
	}
	key := b.cfg.KeyPrefix + "webhooks"
	if b.cfg.Cluster {
		key = b.cfg.KeyPrefix + "{webhooks}"
	}
	return &WebhookBacklog{b: b, cfg: cfg, key: key, bytesKey: key + ":bytes", cursor: "0-0"}
}

func (w *WebhookBacklog) run(ctx context.Context, args ...any) *redis.Cmd {
	ctx, cancel := w.b.opContext(ctx)
	defer cancel()
	return webhookScript.Run(ctx, w.b.client, []string{w.key, w.bytesKey}, args...)
}

// Add implements webhook.Backlog.
func (w *WebhookBacklog) Add(ctx context.Context, entries []webhook.Entry) (int, error) {
	args := make([]any, 0, 3+4*len(entries))
	args = append(args, "add", w.cfg.MaxEvents, w.cfg.MaxBytes)
	for _, e := range entries {
		args = append(args, e.ID, e.Type, e.Time.UnixMilli(), e.Body)
	}
	refused, err := w.run(ctx, args...).Int()
	if err != nil {
		return 0, wrap("webhook add", err)
	}
	return refused, nil
}

// Take implements webhook.Backlog: entries claimed from a stopped node
// first (scanned again every ClaimIdle/2), then new ones.
func (w *WebhookBacklog) Take(ctx context.Context, n int) ([]webhook.Entry, error) {
	if err := w.ensureGroup(ctx); err != nil {
		return nil, err
	}
	claimed, err := w.claim(ctx, n)
	if err != nil || len(claimed) > 0 {
		return claimed, err
	}
	streams, err := w.b.client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: webhookGroup, Consumer: w.b.cfg.NodeID, Streams: []string{w.key, ">"},
		Count: int64(n), Block: webhookBlock,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		w.forgetGroup(err)
		return nil, wrap("webhook take", err)
	}
	var out []webhook.Entry
	for _, s := range streams {
		out = append(out, w.entries(ctx, s.Messages)...)
	}
	return out, nil
}

// ensureGroup creates the consumer group (and the stream) unless it is
// known to exist.
func (w *WebhookBacklog) ensureGroup(ctx context.Context) error {
	w.mu.Lock()
	grouped := w.grouped
	w.mu.Unlock()
	if grouped {
		return nil
	}
	ctx, cancel := w.b.opContext(ctx)
	defer cancel()
	err := w.b.client.XGroupCreateMkStream(ctx, w.key, webhookGroup, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return wrap("webhook group", err)
	}
	w.mu.Lock()
	w.grouped = true
	w.mu.Unlock()
	return nil
}

// forgetGroup makes the next Take create the group again when err says it
// is gone (Redis lost its data).
func (w *WebhookBacklog) forgetGroup(err error) {
	if redis.HasErrorPrefix(err, "NOGROUP") {
		w.mu.Lock()
		w.grouped = false
		w.mu.Unlock()
	}
}

// claim takes up to n entries left pending by a node for ClaimIdle, going
// on with the scan where the last call stopped; once a scan is through, the
// next starts ClaimIdle/2 later.
func (w *WebhookBacklog) claim(ctx context.Context, n int) ([]webhook.Entry, error) {
	w.mu.Lock()
	cursor := w.cursor
	due := cursor != "0-0" || time.Since(w.lastClaim) >= w.cfg.ClaimIdle/2
	w.mu.Unlock()
	if !due {
		return nil, nil
	}
	cctx, cancel := w.b.opContext(ctx)
	msgs, next, err := w.b.client.XAutoClaim(cctx, &redis.XAutoClaimArgs{
		Stream: w.key, Group: webhookGroup, Consumer: w.b.cfg.NodeID,
		MinIdle: w.cfg.ClaimIdle, Start: cursor, Count: int64(n),
	}).Result()
	cancel()
	if err != nil {
		w.forgetGroup(err)
		return nil, wrap("webhook claim", err)
	}
	w.mu.Lock()
	w.cursor = next
	if next == "0-0" {
		w.lastClaim = time.Now()
	}
	w.mu.Unlock()
	if len(msgs) > 0 {
		w.b.log.Info().Int("events", len(msgs)).Msg("webhook events claimed from a node that stopped delivering them")
	}
	return w.entries(ctx, msgs), nil
}

// entries decodes stream entries; one that does not decode is removed.
func (w *WebhookBacklog) entries(ctx context.Context, msgs []redis.XMessage) []webhook.Entry {
	out := make([]webhook.Entry, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		typ, _ := m.Values["type"].(string)
		body, _ := m.Values["body"].(string)
		tsStr, _ := m.Values["ts"].(string)
		ts, err := strconv.ParseInt(tsStr, 10, 64)
		if id == "" || body == "" || err != nil {
			w.b.log.Warn().Str("entry", m.ID).Msg("webhook backlog: malformed entry removed")
			w.Done(ctx, webhook.Entry{Ref: m.ID})
			continue
		}
		out = append(out, webhook.Entry{Ref: m.ID, ID: id, Type: typ, Time: time.UnixMilli(ts), Body: []byte(body)})
	}
	return out
}

// Hold implements webhook.Backlog: it resets the idle time of the entries
// still pending for this node. An entry another node claimed meanwhile
// (this one was stalled for ClaimIdle) stays with it.
func (w *WebhookBacklog) Hold(ctx context.Context, refs []string) error {
	args := make([]any, 0, 3+len(refs))
	args = append(args, "hold", webhookGroup, w.b.cfg.NodeID)
	for _, r := range refs {
		args = append(args, r)
	}
	lost, err := w.run(ctx, args...).StringSlice()
	if err != nil {
		return wrap("webhook hold", err)
	}
	if len(lost) > 0 {
		w.b.log.Warn().Int("events", len(lost)).Msg("webhook events being delivered were claimed by another node: they may arrive twice")
	}
	return nil
}

// Done implements webhook.Backlog.
func (w *WebhookBacklog) Done(ctx context.Context, e webhook.Entry) error {
	if err := w.run(ctx, "done", webhookGroup, e.Ref, len(e.Body)).Err(); err != nil {
		return wrap("webhook done", err)
	}
	return nil
}

// Len implements webhook.Backlog: the stream's length, the events not yet
// delivered or given up on every node.
func (w *WebhookBacklog) Len(ctx context.Context) (int, error) {
	ctx, cancel := w.b.opContext(ctx)
	defer cancel()
	n, err := w.b.client.XLen(ctx, w.key).Result()
	if err != nil {
		return 0, wrap("webhook len", err)
	}
	return int(n), nil
}
