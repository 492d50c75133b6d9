// Command switchboard runs the Switchboard realtime messaging server.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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
	"github.com/switchboard-chat/switchboard/protocol"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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

// run starts the server and serves until ctx is cancelled, then shuts down
// gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "bench" {
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr)
}

// serve runs the server configured by cfg until ctx is cancelled, then
// shuts down gracefully.
func serve(ctx context.Context, cfg config, stderr io.Writer) error {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}
	log = log.With().Str("node", cfg.NodeID).Logger()

	var h *hub.Hub
	nodeInfo := func() []byte { // the node's registry entry: its counters
		b, _ := json.Marshal(h.Stats())
		return b
	}
	broker, presence, err := newBroker(cfg, nodeInfo, log)
	if err != nil {
		return err
	}
	h = hub.New(broker, presence, hub.Config{
		Logger:             log,
		MaxRoomsPerSession: cfg.MaxRoomsPerClient,
		MaxReplayBytes:     cfg.QueueBytes / 2,
	})
	// The broker keeps delivering until shutdown closes it, after the
	// sessions: not until ctx, which ends when shutdown begins.
	if err := h.Start(context.WithoutCancel(ctx)); err != nil {
		broker.Close(context.Background())
		return fmt.Errorf("start hub: %w", err)
	}
	wsCfg := clientsConfig(cfg, log)
	if wsCfg.Authenticate == nil {
		log.Warn().Msg("auth is off: anyone can connect under any ?name= (set SWITCHBOARD_JWT_SECRET to require tokens)")
	}
	ws := clients.NewServer(h, wsCfg)
	if cfg.APIKey == "" {
		log.Info().Msg("server API disabled (set SWITCHBOARD_API_KEY to enable /api)")
	}

	var draining atomic.Bool
	srv := newHTTPServer(routes(h, broker, ws, &draining, cfg, log), cfg.HTTP, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		broker.Close(context.Background())
		return fmt.Errorf("%w: listen: %v", errUsage, err)
	}
	log.Info().Str("addr", ln.Addr().String()).Str("broker", brokerName(cfg)).Msg("listening")
	if cfg.PprofAddr != "" {
		pctx, stopPprof := context.WithCancel(context.Background())
		stopped, err := startPprof(pctx, cfg.PprofAddr, log)
		if err != nil {
			stopPprof()
			ln.Close()
			broker.Close(context.Background())
			return err
		}
		defer func() { stopPprof(); <-stopped }()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err = <-serveErr:
		log.Error().Err(err).Msg("serve")
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	}
	draining.Store(true)
	return shutdown(srv, h, broker, cfg.ShutdownTimeout, log)
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

// shutdown stops new connections, closes every session with 1001 and waits
// for them, then closes the broker, all within timeout.
func shutdown(srv *http.Server, h *hub.Hub, broker hub.Broker, timeout time.Duration, log zerolog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
	if err := h.Close(ctx, protocol.CloseGoingAway, "server shutting down"); err != nil {
		log.Warn().Err(err).Msg("sessions did not all close in time")
	}
	if err := broker.Close(ctx); err != nil {
		log.Warn().Err(err).Msg("close broker")
	}
	log.Info().Msg("stopped")
	return nil
}

// newBroker returns the in-memory broker, or the Redis one when a Redis URL
// is configured.
func newBroker(cfg config, nodeInfo func() []byte, log zerolog.Logger) (hub.Broker, hub.Presence, error) {
	if cfg.RedisCluster && cfg.RedisURL == "" {
		return nil, nil, fmt.Errorf("%w: redis-cluster needs redis-url", errUsage)
	}
	if cfg.RedisURL != "" {
		redis.SetLogger(redisLogger{log})
		b, err := redisbroker.New(redisbroker.Config{
			URL:             cfg.RedisURL,
			Cluster:         cfg.RedisCluster,
			NodeID:          cfg.NodeID,
			HistorySize:     cfg.HistorySize,
			HistoryMaxBytes: cfg.HistoryMaxBytes,
			HistoryTTL:      cfg.HistoryTTL,
			PresenceTTL:     cfg.PresenceTTL,
			NodeInfo:        nodeInfo,
		}, log)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: redis-url: %v", errUsage, err)
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

func brokerName(cfg config) string {
	if cfg.RedisURL != "" {
		return "redis"
	}
	return "memory"
}

func newLogger(cfg config, stderr io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || cfg.LogLevel == "" {
		return zerolog.Logger{}, fmt.Errorf("%w: log-level must be debug, info, warn or error", errUsage)
	}
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := stderr.(*os.File); ok && isTerminal(f) {
			format = "console"
		}
	}
	w := stderr
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%x", host, b)
}
