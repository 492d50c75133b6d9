package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/redisbroker"
	"github.com/switchboard-chat/switchboard/hub/webhook"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Metrics. The packages below cmd keep cheap counters of their own (a few
// atomic adds per publication, per frame read or per connection, never per
// recipient) and know nothing of Prometheus: nodeCollector reads them at
// scrape time. The one histogram, the fan-out latency, is observed by the
// sessions' writers through clients.Config.ObserveLatency. docs/operations.md
// lists every metric.

// fanoutBuckets are the fan-out latency histogram's buckets, in seconds:
// 1 ms to 10 s.
var fanoutBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics is the node's registry (not the process-wide default one): the
// Go runtime and process collectors, the fan-out latency histogram, and the
// node's counters once watch is called.
type metrics struct {
	reg    *prometheus.Registry
	fanout prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchboard_fanout_latency_seconds",
			Help: "Time from a frame's enqueue on a session to the end of the socket write that carries it, " +
				"observed once per write for the oldest frame it carries.",
			Buckets: fanoutBuckets,
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.fanout,
	)
	return m
}

// observeFanout is clients.Config.ObserveLatency.
func (m *metrics) observeFanout(d time.Duration) { m.fanout.Observe(d.Seconds()) }

// watch registers the node's counters.
func (m *metrics) watch(n *nodeCollector) { m.reg.MustRegister(n) }

// handler serves the registry in the Prometheus text format. Errors of a
// collector are logged and the rest is served.
func (m *metrics) handler(log zerolog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	})
}

// promLogger hands promhttp's errors to the node's log.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn().Msg(fmt.Sprint(v...)) }

// nodeCollector exports the node's state and counters, read at each scrape.
type nodeCollector struct {
	hub      *hub.Hub
	clients  *clients.Server
	redis    *redisbroker.Broker // nil with the memory broker: no switchboard_redis_… metrics
	webhooks *webhook.Dispatcher // nil when webhooks are off: no switchboard_webhook_… metrics
	draining *atomic.Bool
	// drainProgress, when set, reports how far a drain is: the sessions it
	// closed so far, of the sessions there were when it began (0, 0 before
	// a drain). It is exported as switchboard_drain_sessions_closed and
	// switchboard_drain_sessions_at_start; nil exports neither.
	drainProgress func() (closed, atStart int)
}

// desc returns the description of a switchboard_ metric.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("switchboard_"+name, help, labels, nil)
}

// Descriptions of the node's metrics.
var (
	connectionsDesc = desc("connections", "WebSocket connections open on this node.")
	roomsDesc       = desc("rooms", "Rooms with at least one member on this node.")
	usersDesc       = desc("users", "Users with at least one connection on this node.")
	readyDesc       = desc("ready", "1 when the node takes traffic (/readyz answers 200): not draining and its broker reachable; else 0.")
	drainingDesc    = desc("draining", "1 once the node is draining (shutting down); else 0.")
	drainClosedDesc = desc("drain_sessions_closed", "Sessions the drain has closed so far.")
	drainStartDesc  = desc("drain_sessions_at_start", "Sessions open when the drain began.")
	writeDelayDesc  = desc("write_delay_seconds",
		"How long a busy connection's writer waits now for more frames to share its write: --write-delay, up to --write-delay-max while the node's CPUs are busy.")

	framesInDesc = desc("frames_received_total",
		"Client frames handled, by type; a frame that did not decode counts as type=\"invalid\". Rate-limited frames are not handled.", "type")
	framesOutDesc = desc("frames_sent_total",
		"Frames queued for connections, by type; a fan-out to n connections counts n.", "type")
	publishedDesc = desc("messages_published_total",
		"Messages published through this node (WebSocket send and server API) that the broker accepted; idempotent repeats not counted.")
	deliveredDesc = desc("messages_delivered_total",
		"Message frames handed to this node's connections: live, replayed on recovery, or held while joining.")
	rateLimitedDesc = desc("rate_limited_frames_total", "Client frames dropped by the rate limits.")
	disconnectsDesc = desc("disconnects_total", "Connections that ended, by reason.", "reason")
	recoveriesDesc  = desc("recoveries_total", "Joins that asked to recover (since and epoch), by outcome.", "outcome")

	redisErrorsDesc     = desc("redis_errors_total", "Redis commands that failed: unreachable, timed out or refused.")
	redisReconnectsDesc = desc("redis_pubsub_reconnects_total", "Times the node's Redis pub/sub connection was opened again.")
	redisGapsDesc       = desc("redis_gap_repairs_total", "Gaps in a room's pub/sub delivery repaired from history.")
	redisResyncsDesc    = desc("redis_resyncs_total",
		"Rooms resynced from history: after each subscription is confirmed (a room's first local join, a pub/sub reconnect) or a full receive buffer.")
	redisRepairedDesc   = desc("redis_repaired_publications_total", "Publications pub/sub did not deliver that were read from history.")
	redisLostDesc       = desc("redis_lost_publications_total", "Publications pub/sub did not deliver that history no longer had: clients saw a gap.")
	redisBackloggedDesc = desc("redis_receive_backlogs_total", "Times the pub/sub receive buffer was found full (messages may be dropped, then resynced).")
	redisOverflowDesc   = desc("redis_repair_buffer_overflows_total", "Times a room under repair received more than it may hold meanwhile, and was resynced instead.")
	redisMalformedDesc  = desc("redis_malformed_messages_total", "Pub/sub messages that could not be decoded.")

	webhookEventsDesc = desc("webhook_events_total",
		"Webhook events by outcome: delivered (answered 2xx), failed (given up), dropped (never stored: the queue or backlog was full, or Redis unreachable; or, without Redis, undelivered when the node stopped), retried (failed attempts, retried).", "outcome")
	webhookBacklogDesc = desc("webhook_backlog", "Webhook events stored and not yet delivered or given up: the cluster's, with Redis.")
)

// clientOnly are the frame types only clients send: no frames_sent_total
// series for them.
var clientOnly = map[string]bool{
	protocol.TypeJoin: true, protocol.TypeLeave: true, protocol.TypeSend: true,
	protocol.TypePing: true, protocol.TypeRefresh: true,
}

var nodeDescs = []*prometheus.Desc{
	connectionsDesc, roomsDesc, usersDesc, readyDesc, drainingDesc, drainClosedDesc, drainStartDesc, writeDelayDesc,
	framesInDesc, framesOutDesc, publishedDesc, deliveredDesc, rateLimitedDesc, disconnectsDesc, recoveriesDesc,
	redisErrorsDesc, redisReconnectsDesc, redisGapsDesc, redisResyncsDesc, redisRepairedDesc, redisLostDesc,
	redisBackloggedDesc, redisOverflowDesc, redisMalformedDesc, webhookEventsDesc, webhookBacklogDesc,
}

// Describe implements prometheus.Collector.
func (n *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range nodeDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (n *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := n.hub.Stats()
	gauge(connectionsDesc, float64(st.Sessions))
	gauge(roomsDesc, float64(st.Rooms))
	gauge(usersDesc, float64(st.Users))
	gauge(readyDesc, boolValue(n.ready()))
	gauge(drainingDesc, boolValue(n.draining.Load()))
	gauge(writeDelayDesc, n.clients.WriteDelay().Seconds())
	if n.drainProgress != nil {
		closed, atStart := n.drainProgress()
		gauge(drainClosedDesc, float64(closed))
		gauge(drainStartDesc, float64(atStart))
	}

	hc, cc := n.hub.Counters(), n.clients.Counters()
	for typ, v := range cc.FramesIn {
		counter(framesInDesc, v, typ)
	}
	for typ, v := range hc.FramesOut {
		if !clientOnly[typ] {
			counter(framesOutDesc, v+cc.FramesOut[typ], typ)
		}
	}
	counter(publishedDesc, hc.Published)
	counter(deliveredDesc, hc.Delivered)
	counter(rateLimitedDesc, cc.RateLimited)
	for reason, v := range cc.Disconnects {
		counter(disconnectsDesc, v, reason)
	}
	for outcome, v := range hc.Recoveries {
		counter(recoveriesDesc, v, outcome)
	}
	if n.redis != nil {
		n.collectRedis(counter)
	}
	if n.webhooks != nil {
		n.collectWebhooks(counter, gauge)
	}
}

func (n *nodeCollector) collectWebhooks(counter func(d *prometheus.Desc, v uint64, labels ...string), gauge func(d *prometheus.Desc, v float64)) {
	st := n.webhooks.Stats()
	counter(webhookEventsDesc, st.Delivered, "delivered")
	counter(webhookEventsDesc, st.Failed, "failed")
	counter(webhookEventsDesc, st.Dropped, "dropped")
	counter(webhookEventsDesc, st.Retried, "retried")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if l, err := n.webhooks.Backlog(ctx); err == nil {
		gauge(webhookBacklogDesc, float64(l))
	}
}

func (n *nodeCollector) collectRedis(counter func(d *prometheus.Desc, v uint64, labels ...string)) {
	rs := n.redis.Stats()
	counter(redisErrorsDesc, rs.Errors)
	counter(redisReconnectsDesc, rs.PubSubReconnects)
	counter(redisGapsDesc, rs.GapRepairs)
	counter(redisResyncsDesc, rs.Resyncs)
	counter(redisRepairedDesc, rs.Repaired)
	counter(redisLostDesc, rs.Lost)
	counter(redisBackloggedDesc, rs.Backlogged)
	counter(redisOverflowDesc, rs.Overflowed)
	counter(redisMalformedDesc, rs.Malformed)
}

// ready reports what /readyz would: not draining and the broker reachable.
func (n *nodeCollector) ready() bool {
	if n.draining.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return n.hub.Ready(ctx) == nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
