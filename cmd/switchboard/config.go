package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// config is everything the server reads from flags and the environment.
type config struct {
	Addr            string
	NodeID          string
	LogLevel        string
	LogFormat       string
	RateLimit       int
	RateLimitBytes  int
	MaxFrame        int
	QueueBytes      int
	HistorySize     int
	HistoryMaxBytes int
	PprofAddr       string
	MetricsAddr     string
	WriteDelay      time.Duration
	WriteDelayMax   time.Duration
	HistoryTTL      time.Duration
	RedisURL        string
	RedisCluster    bool
	RedisDurable    bool
	PresenceTTL     time.Duration
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration
	DrainRate       int

	JWTSecret         string
	APIKey            string
	AllowedOrigins    []string
	MaxConnections    int
	MaxConnectionsIP  int
	MaxRoomsPerClient int
	TrustedProxies    []netip.Prefix

	WebhookURL    string
	WebhookSecret string
	WebhookEvents []string // empty: all
	WebhookFlush  time.Duration

	// HTTP bounds every HTTP connection; not a flag (tests shorten it).
	HTTP httpLimits
}

// maxDrainDelay bounds --drain-delay: a load balancer notices a failing
// /readyz within seconds, and a stop grace period must outlast the delay.
const maxDrainDelay = 5 * time.Minute

// envPrefix is the prefix of every environment variable; each flag --foo-bar
// has the twin SWITCHBOARD_FOO_BAR. A flag given on the command line wins.
const envPrefix = "SWITCHBOARD_"

// parseConfig reads flags from args and their twins from getenv. --help
// prints the usage to stdout and returns flag.ErrHelp; a bad value is a
// one-line usage error (see parseFlags).
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	c := config{HTTP: defaultHTTPLimits}
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's name, shown in welcome frames and logs; unique in a cluster (default: the hostname; with Redis, hostname-PORT when a live node already has the hostname)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "", "log format: console or json (default: console on a terminal, json otherwise)")
	fs.IntVar(&c.RateLimit, "rate-limit", 20, "client frames per second per connection, sustained (burst twice that); 0 disables")
	fs.IntVar(&c.RateLimitBytes, "rate-limit-bytes", 256<<10, "client bytes per second per connection, sustained (burst one max-frame); 0 disables")
	fs.IntVar(&c.MaxFrame, "max-frame", 65536, "largest client frame in bytes")
	fs.IntVar(&c.QueueBytes, "queue-bytes", 1<<20, "outbound queue bound per connection in bytes")
	fs.IntVar(&c.HistorySize, "history-size", 100, "messages kept per room")
	fs.IntVar(&c.HistoryMaxBytes, "history-max-bytes", 1<<20, "bytes of messages kept per room (the oldest are dropped first); at least max-frame")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", 24*time.Hour, "how long a room's history lives after its last message")
	fs.DurationVar(&c.WriteDelay, "write-delay", 10*time.Millisecond, "under load, how long at most a connection's writer waits for more frames to share one write (only a connection written to within the last 20ms, or twice this, waits: a frame after a quiet spell goes out at once); 0 never waits; at most 50ms")
	fs.DurationVar(&c.WriteDelayMax, "write-delay-max", 50*time.Millisecond, "while the node's CPUs are busy (over 65% used), the write delay grows up to this, and shrinks back to --write-delay below 50%: fewer, larger writes instead of queueing; equal to --write-delay (or 0) keeps the delay fixed; at most 200ms")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's profiling endpoints (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty disables")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address alone, without auth (e.g. 127.0.0.1:9091), instead of on the main listener behind the API key; empty serves it on the main one")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL (redis://host:6379/0) for a cluster; empty runs single-node in memory")
	fs.BoolVar(&c.RedisDurable, "redis-durable", false, "Redis never loses an acknowledged write (AOF with appendfsync always, no failover to a lagging replica): room history outlives Redis restarts; without it a Redis restart starts every room's history anew, so that no seq is ever reused")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", false, "Redis Cluster (7.0+) with sharded pub/sub; --redis-url then names seed nodes: redis://host1:7000?addr=host2:7001&addr=host3:7002")
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", 30*time.Second, "with Redis: how long a crashed node's users stay in presence (nodes refresh every third of it)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long shutdown waits for connections to close")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 5*time.Second, "on SIGTERM, how long the node keeps serving with /readyz failing and new connections refused (503), so that the load balancer stops routing to it, before it closes its sessions with 1012; 0 closes at once; at most 5m")
	fs.IntVar(&c.DrainRate, "drain-rate", 1000, "on SIGTERM, most sessions closed per second (raised so that closing takes at most half of shutdown-timeout)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret (at least 32 bytes); when set, every connection needs a JWT")
	fs.StringVar(&c.APIKey, "api-key", "", "key of the server HTTP API under /api (Authorization: Bearer KEY); empty disables the API")
	fs.Func("allowed-origins", "comma-separated browser origins allowed to connect, as host globs (*.example.com); the server's own host and localhost are always allowed", func(v string) error {
		c.AllowedOrigins = splitList(v)
		return nil
	})
	fs.IntVar(&c.MaxConnections, "max-connections", 10000, "most WebSocket connections this node accepts; 0 means no limit")
	fs.IntVar(&c.MaxConnectionsIP, "max-connections-per-ip", 100, "most WebSocket connections from one IP address; 0 means no limit")
	fs.IntVar(&c.MaxRoomsPerClient, "max-rooms", 100, "most rooms one connection may join")
	fs.Func("trusted-proxies", "comma-separated CIDRs of load balancers whose X-Forwarded-For and Forwarded headers are honoured (a bare IP is one address); empty trusts none", func(v string) error {
		p, err := parsePrefixes(v)
		c.TrustedProxies = p
		return err
	})
	fs.StringVar(&c.WebhookURL, "webhook-url", "", "POST webhook events (docs/webhooks.md) to this http or https URL; empty disables webhooks")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "HMAC-SHA256 key that signs every webhook POST (at least 32 bytes); required with webhook-url")
	fs.Func("webhook-events", "comma-separated webhook event types to send (default all): "+strings.Join(hub.WebhookTypes(), ", "), func(v string) error {
		c.WebhookEvents = splitList(v)
		return nil
	})
	fs.DurationVar(&c.WebhookFlush, "webhook-flush-timeout", 5*time.Second, "without Redis, how long a stopping node keeps delivering its undelivered webhook events (within shutdown-timeout) before dropping the rest; 0 drops them at once")
	fs.Usage = func() { usage(fs) }

	if err := parseFlags(fs, args, stdout); err != nil {
		return c, err
	}
	if err := applyEnv(fs, getenv); err != nil {
		return c, err
	}
	if err := c.validate(); err != nil {
		return c, usageErr("%v", err)
	}
	return c, nil
}

// applyEnv sets every flag not given on the command line from its
// environment twin, through the flag's own parser. A bad value is a
// one-line usage error naming the variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(envName(f.Name))
		if given[f.Name] || v == "" || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usageErr("%v (see switchboard --help)", badValue(envName(f.Name), v, f.Value, e))
		}
	})
	return err
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *config) validate() error {
	switch {
	case c.RateLimit < 0:
		return errors.New("--rate-limit must be 0 or more")
	case c.RateLimitBytes < 0:
		return errors.New("--rate-limit-bytes must be 0 or more")
	case c.MaxFrame < 256:
		return errors.New("--max-frame must be at least 256")
	case c.QueueBytes < c.MaxFrame:
		return errors.New("--queue-bytes must be at least --max-frame")
	case c.HistorySize < 1 || c.HistorySize > 100000:
		return errors.New("--history-size must be 1-100000")
	case c.WriteDelay < 0 || c.WriteDelay > 50*time.Millisecond:
		return errors.New("--write-delay must be 0-50ms")
	case c.WriteDelayMax != 0 && (c.WriteDelayMax < c.WriteDelay || c.WriteDelayMax > 200*time.Millisecond):
		return errors.New("--write-delay-max must be 0, or from --write-delay to 200ms")
	case c.HistoryMaxBytes < c.MaxFrame:
		return errors.New("--history-max-bytes must be at least --max-frame")
	case c.HistoryTTL < time.Second:
		return errors.New("--history-ttl must be at least 1s")
	case c.PresenceTTL < time.Second:
		return errors.New("--presence-ttl must be at least 1s")
	case c.ShutdownTimeout <= 0:
		return errors.New("--shutdown-timeout must be positive")
	case c.DrainDelay < 0 || c.DrainDelay > maxDrainDelay:
		return errors.New("--drain-delay must be 0-5m")
	case c.DrainRate < 1:
		return errors.New("--drain-rate must be at least 1")
	case c.LogFormat != "" && c.LogFormat != "console" && c.LogFormat != "json":
		return errors.New("--log-format must be console or json")
	case c.JWTSecret != "" && len(c.JWTSecret) < minSecretLen:
		return fmt.Errorf("--jwt-secret must be at least %d bytes", minSecretLen)
	case c.MaxConnections < 0 || c.MaxConnectionsIP < 0:
		return errors.New("--max-connections and --max-connections-per-ip must be 0 or more")
	case c.MaxRoomsPerClient < 1:
		return errors.New("--max-rooms must be at least 1")
	case c.RedisCluster && c.RedisURL == "":
		return errors.New("--redis-cluster needs --redis-url")
	case c.WebhookFlush < 0:
		return errors.New("--webhook-flush-timeout must be 0 or more")
	case c.WebhookURL == "" && (c.WebhookSecret != "" || len(c.WebhookEvents) > 0):
		return errors.New("--webhook-secret and --webhook-events need --webhook-url")
	case c.WebhookURL != "":
		if err := c.webhookConfig().Validate(); err != nil {
			return fmt.Errorf("--webhook-url: %v", err)
		}
	}
	return c.validateEndpoints()
}

// validateEndpoints checks the forms of the listen addresses and the Redis
// URL; whether they can be used shows when the server starts.
func (c *config) validateEndpoints() error {
	for _, a := range []struct{ flag, addr string }{{"addr", c.Addr}, {"pprof-addr", c.PprofAddr}, {"metrics-addr", c.MetricsAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); a.addr != "" && err != nil {
			return fmt.Errorf("--%s %q: want host:port or :port, like :8080 or 127.0.0.1:9000", a.flag, a.addr)
		}
	}
	if err := checkRedisURL(c.RedisURL, c.RedisCluster); err != nil {
		return fmt.Errorf("--redis-url: %v", err)
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parsePrefixes parses a comma-separated list of CIDRs; a bare IP address
// stands for itself alone (/32 or /128). Empty items are skipped.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range splitList(v) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR (10.0.0.0/8) or an IP address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: switchboard [flags]\n       switchboard token --user NAME [--rooms 'team-*,lobby'] [--dm 'bob,support-*'] [--ttl 1h]\n       switchboard bench [--url ws://127.0.0.1:8080] [--conns 1000] [--rate 200] [--pid PID] (see switchboard bench --help)\n       switchboard healthcheck [--url http://127.0.0.1:8080/readyz]\n\n")
	fmt.Fprintf(w, "Switchboard is a realtime WebSocket messaging server. The token command prints a JWT\nsigned with $%s, for trying auth. The healthcheck command exits 0 when /readyz answers 200\n(for container healthchecks).\n", envName("jwt-secret"))
	fmt.Fprintf(w, "Every flag has an environment twin; a flag on the command line wins.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s, $%s\n    \t%s%s\n", f.Name, envName(f.Name), f.Usage, def)
	})
}

// isTerminal reports whether f is a character device, such as a terminal.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
