// Command switchboard runs the Switchboard realtime messaging server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/hub/redisbroker"
	"github.com/switchboard-chat/switchboard/hub/webhook"
	"github.com/switchboard-chat/switchboard/protocol"
)

func main() {
	zerolog.DurationFieldUnit = time.Millisecond // zerolog's default; every Dur field is named *_ms
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// signalContext returns a context that the first SIGTERM or SIGINT cancels,
// and a function that releases it. SIGTERM, how supervisors (Docker,
// Kubernetes, systemd) stop a process, cancels it with a drainRequest: the
// server drains before it stops. SIGINT, a person's Ctrl-C, cancels it
// with errInterrupted: the server stops at once. A second signal of either
// kind cuts a drain's delay short; after it, signals have their default
// effect again, so a third ends the process on the spot.
func signalContext() (context.Context, context.CancelFunc) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(context.Background())
	hurry, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer signal.Stop(sigs)
		var sig os.Signal
		select {
		case sig = <-sigs:
		case <-done:
			return
		}
		if sig == syscall.SIGTERM {
			cancel(drainRequest{hurry: hurry})
		} else {
			cancel(errInterrupted)
		}
		select {
		case <-sigs:
			close(hurry)
		case <-done:
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// errInterrupted is the cause of the context main cancels on SIGINT.
var errInterrupted = errors.New("interrupted")

// drainRequest, as the cause that cancels run's context
// (context.WithCancelCause), asks the server to drain before it stops;
// main sends one on SIGTERM. Any other cause (SIGINT, a test's plain
// cancel) stops the server at once. Closing hurry, when not nil, ends the
// drain delay early and makes the stop a fast one.
type drainRequest struct{ hurry <-chan struct{} }

func (drainRequest) Error() string { return "drain requested" }

// run starts the server and serves until ctx is cancelled, then shuts down
// gracefully: after a drain when ctx's cause is a drainRequest, at once
// otherwise.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], getenv, stdout)
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		return runHealthcheck(ctx, args[1:], getenv, stdout)
	}
	if len(args) > 0 && args[0] == "bench" {
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr)
}

// serve runs the server configured by cfg until ctx is cancelled, then
// shuts down gracefully. /readyz fails from then on. When ctx's cause is a
// drainRequest, the node first keeps serving for cfg.DrainDelay (refusing
// new WebSocket connections), then closes its sessions with 1012, paced;
// otherwise it closes them at once with 1001.
func serve(ctx context.Context, cfg config, stderr io.Writer) error {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	ln, err := listen(cfg.Addr, "addr")
	if err != nil {
		return err
	}
	cfg.NodeID = nodeID(ctx, cfg, ln.Addr(), log)
	log = log.With().Str("node", cfg.NodeID).Logger()

	var h *hub.Hub
	nodeInfo := func() []byte { // the node's registry entry: its counters
		b, _ := json.Marshal(h.Stats())
		return b
	}
	broker, presence, err := newBroker(cfg, nodeInfo, log)
	if err != nil {
		ln.Close()
		return err
	}
	hooks, err := newWebhooks(cfg, broker, log)
	if err != nil {
		ln.Close()
		broker.Close(context.Background())
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	hubCfg := hub.Config{
		Logger:             log,
		MaxRoomsPerSession: cfg.MaxRoomsPerClient,
		MaxReplayBytes:     cfg.QueueBytes / 2,
	}
	if hooks != nil {
		hubCfg.OnWebhookEvent = hooks.Enqueue
		// Like the broker, webhooks outlive ctx: shutdown stops them.
		hooks.Start(context.WithoutCancel(ctx))
	}
	h = hub.New(broker, presence, hubCfg)
	// The broker keeps delivering until shutdown closes it, after the
	// sessions: not until ctx, which ends when shutdown begins.
	if err := h.Start(context.WithoutCancel(ctx)); err != nil {
		closeWebhooks(context.Background(), hooks, log)
		ln.Close()
		broker.Close(context.Background())
		return fmt.Errorf("start hub: %w", err)
	}
	m := newMetrics()
	wsCfg := clientsConfig(cfg, log)
	wsCfg.ObserveLatency = m.observeFanout
	if wsCfg.Authenticate == nil {
		log.Warn().Msg("auth is off: anyone can connect under any ?name= (set SWITCHBOARD_JWT_SECRET to require tokens)")
	}
	ws := clients.NewServer(h, wsCfg)
	if cfg.APIKey == "" {
		log.Info().Msg("server API disabled (set SWITCHBOARD_API_KEY to enable /api)")
	}

	var draining atomic.Bool
	redisB, _ := broker.(*redisbroker.Broker)
	m.watch(&nodeCollector{hub: h, clients: ws, redis: redisB, webhooks: hooks, draining: &draining, drainProgress: h.DrainProgress})
	var mainMetrics http.Handler // /metrics on the main listener, unless it has its own
	if cfg.MetricsAddr == "" {
		mainMetrics = m.handler(log)
	}
	srv := newHTTPServer(routes(h, broker, ws, &draining, mainMetrics, cfg, log), cfg.HTTP, log)
	for _, side := range sideListeners(cfg, m, log) {
		sctx, stopSide := context.WithCancel(context.Background())
		stopped, err := serveAside(sctx, side, log)
		if err != nil {
			stopSide()
			ln.Close()
			closeWebhooks(context.Background(), hooks, log)
			broker.Close(context.Background())
			return err
		}
		defer func() { stopSide(); <-stopped }()
	}
	logListening(log, cfg, ln.Addr())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err = <-serveErr:
		log.Error().Err(err).Msg("serve")
	case <-ctx.Done():
		log.Info().Str("cause", context.Cause(ctx).Error()).Msg("shutting down")
	}
	draining.Store(true)
	how := closeNow
	if req := (drainRequest{}); errors.As(context.Cause(ctx), &req) {
		how = awaitDrain(req, cfg, log)
	}
	return shutdown(srv, h, hooks, broker, how, cfg.ShutdownTimeout, log)
}

// closePlan is how shutdown closes the sessions.
type closePlan struct {
	code   int
	reason string
	pace   hub.Pace
}

// closeNow closes every session at once, with 1001.
var closeNow = closePlan{protocol.CloseGoingAway, "server shutting down", hub.Pace{}}

// awaitDrain keeps the node serving, with /readyz failing and new WebSocket
// connections refused (draining is set), for cfg.DrainDelay: long enough
// for a load balancer to stop routing to it. It returns the plan for the
// sessions: closed with 1012 at cfg.DrainRate a second, raised so that
// closing takes at most half of cfg.ShutdownTimeout; or closeNow when
// req.hurry ends the delay early.
func awaitDrain(req drainRequest, cfg config, log zerolog.Logger) closePlan {
	if cfg.DrainDelay > 0 {
		log.Info().Dur("delay_ms", cfg.DrainDelay).Msg("draining: /readyz fails and new connections are refused until the delay is over")
		delay := time.NewTimer(cfg.DrainDelay)
		defer delay.Stop()
		select {
		case <-delay.C:
		case <-req.hurry:
			log.Info().Msg("second signal: stopping at once")
			return closeNow
		}
	}
	pace := hub.Pace{Rate: cfg.DrainRate, Within: cfg.ShutdownTimeout / 2}
	return closePlan{protocol.CloseRestart, "service restart", pace}
}

// clientsConfig is the WebSocket server's configuration: cfg's limits, and
// token auth when a JWT secret is set.
func clientsConfig(cfg config, log zerolog.Logger) clients.Config {
	c := clients.Config{
		NodeID:              cfg.NodeID,
		MaxFrame:            int64(cfg.MaxFrame),
		QueueBytes:          cfg.QueueBytes,
		RateLimit:           rate.Limit(cfg.RateLimit),
		RateLimitBytes:      cfg.RateLimitBytes,
		WriteDelay:          cfg.WriteDelay,
		WriteDelayMax:       cfg.WriteDelayMax,
		TrustedProxies:      cfg.TrustedProxies,
		CheckOrigin:         originChecker(cfg.AllowedOrigins),
		MaxConnections:      cfg.MaxConnections,
		MaxConnectionsPerIP: cfg.MaxConnectionsIP,
		Logger:              log,
	}
	if cfg.JWTSecret != "" {
		auth := tokenAuth{secret: []byte(cfg.JWTSecret)}
		c.Authenticate = auth.identify
		c.Refresh = auth.verify
	}
	return c
}

// shutdown closes the listener and waits for in-flight HTTP requests, closes
// every session as how says and waits for them (their webhook events
// queued), stops the webhooks (hooks, nil when off; without Redis they
// deliver what they hold first, see closeWebhooks), then closes the
// broker, all within timeout.
func shutdown(srv *http.Server, h *hub.Hub, hooks *webhook.Dispatcher, broker hub.Broker, how closePlan, timeout time.Duration, log zerolog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
	if err := h.Drain(ctx, how.code, how.reason, how.pace); err != nil {
		log.Warn().Err(err).Msg("sessions did not all close in time")
	}
	closeWebhooks(ctx, hooks, log)
	if err := broker.Close(ctx); err != nil {
		log.Warn().Err(err).Msg("close broker")
	}
	log.Info().Msg("stopped")
	return nil
}

// newBroker returns the in-memory broker, or the Redis one when a Redis URL
// is configured.
func newBroker(cfg config, nodeInfo func() []byte, log zerolog.Logger) (hub.Broker, hub.Presence, error) {
	if cfg.RedisURL != "" {
		redis.SetLogger(redisLogger{log})
		rcfg := redisConfig(cfg)
		rcfg.NodeInfo = nodeInfo
		b, err := redisbroker.New(rcfg, log)
		if err != nil {
			return nil, nil, usageErr("%v", err)
		}
		return b, b, nil
	}
	b := memorybroker.New(memorybroker.Config{
		HistorySize:     cfg.HistorySize,
		HistoryMaxBytes: cfg.HistoryMaxBytes,
		HistoryTTL:      cfg.HistoryTTL,
	})
	return b, memorybroker.NewPresence(b), nil
}

// redisConfig is the Redis broker's configuration from cfg, without
// NodeInfo.
func redisConfig(cfg config) redisbroker.Config {
	return redisbroker.Config{
		URL:             cfg.RedisURL,
		Cluster:         cfg.RedisCluster,
		Durable:         cfg.RedisDurable,
		NodeID:          cfg.NodeID,
		HistorySize:     cfg.HistorySize,
		HistoryMaxBytes: cfg.HistoryMaxBytes,
		HistoryTTL:      cfg.HistoryTTL,
		PresenceTTL:     cfg.PresenceTTL,
	}
}

func brokerName(cfg config) string {
	if cfg.RedisURL != "" {
		return "redis"
	}
	return "memory"
}

// newLogger returns the server's logger, writing to stderr: JSON lines, or
// zerolog's console format (the default on a terminal), coloured only on a
// terminal. Durations are logged in milliseconds, in fields named *_ms.
func newLogger(cfg config, stderr io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || cfg.LogLevel == "" {
		return zerolog.Logger{}, usageErr("--log-level must be debug, info, warn or error")
	}
	f, ok := stderr.(*os.File)
	terminal := ok && isTerminal(f)
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if terminal {
			format = "console"
		}
	}
	w := stderr
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !terminal}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
