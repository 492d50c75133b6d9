package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bench limits: the tool refuses runs beyond them, so that a typo cannot
// open a million sockets or publish for a day.
const (
	benchMaxConns    = 50000
	benchMaxDuration = 10 * time.Minute // publishing (messages/rate) or idle hold
	benchMaxRooms    = 10000
	benchMaxSize     = 60000 // bytes of payload, under the server's default max frame
)

// benchConfig is everything `switchboard bench` reads from its flags.
type benchConfig struct {
	URLs        []*url.URL // node base URLs, scheme http or https (ws and wss are mapped)
	Target      string     // "switchboard" or "centrifugo"
	Mode        string     // "fanout" or "idle"
	Conns       int
	Rooms       int
	Messages    int
	Rate        float64
	Size        int
	Publisher   string // "api" or "ws"
	APIKey      string
	TokenSecret string
	Workers     int
	DialConc    int
	PubTimeout  time.Duration
	JoinTimeout time.Duration
	Drain       time.Duration
	Hold        time.Duration
	IdleJoin    bool
	PIDs        []int
	JSON        bool
	AllowRemote bool
	Progress    bool
}

// runBench implements `switchboard bench`: it loads a running server (or
// Centrifugo) and reports what it measured on stdout.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseBenchConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, benchDeadline(cfg))
	defer cancel()
	var progress io.Writer = io.Discard
	if cfg.Progress {
		progress = stderr
	}
	res, err := benchRun(ctx, cfg, progress)
	if err != nil {
		return err
	}
	if cfg.JSON {
		return res.writeJSON(stdout)
	}
	res.writeTable(stdout)
	return nil
}

// benchDeadline bounds the whole run: connecting, joining, the measured
// phase and leaving. Everything stops by itself when it passes.
func benchDeadline(cfg benchConfig) time.Duration {
	d := cfg.JoinTimeout + cfg.Drain + cfg.PubTimeout + 2*time.Minute
	if cfg.Mode == "idle" {
		return d + cfg.Hold
	}
	return d + time.Duration(float64(cfg.Messages)/cfg.Rate*float64(time.Second))
}

// parseBenchConfig reads the bench flags; every error is a usage error.
// --help prints the usage to stdout.
func parseBenchConfig(args []string, getenv func(string) string, stdout io.Writer) (benchConfig, error) {
	var c benchConfig
	fs := flag.NewFlagSet("switchboard bench", flag.ContinueOnError)
	urls := fs.String("url", "ws://127.0.0.1:8080", "comma-separated node URLs (ws://, wss://, http:// or https://, host and port only); connections go round-robin over them")
	fs.StringVar(&c.Target, "target", "switchboard", "server under test: switchboard (protocol v1) or centrifugo (v6 JSON protocol, channels bench:<room>)")
	fs.StringVar(&c.Mode, "mode", "fanout", "fanout: subscribers receive published messages; idle: connect, hold, measure memory, leave")
	fs.IntVar(&c.Conns, "conns", 1000, fmt.Sprintf("subscriber connections (at most %d)", benchMaxConns))
	fs.IntVar(&c.Rooms, "rooms", 1, "rooms bench-0 … bench-K-1; subscribers spread over them round-robin")
	fs.IntVar(&c.Messages, "messages", 2000, "messages to publish (fanout), spread round-robin over the rooms")
	fs.Float64Var(&c.Rate, "rate", 200, "messages published per second (fanout)")
	fs.IntVar(&c.Size, "size", 100, "bytes of each message's data (at least the sequence number and timestamp it carries)")
	fs.StringVar(&c.Publisher, "publisher", "api", "api: POST /api/rooms/{room}/messages (Centrifugo: POST /api/publish); ws: one WebSocket connection that joins every room and sends (Switchboard only; start the server with --rate-limit 0)")
	fs.StringVar(&c.APIKey, "api-key", "", "server API key (default $"+envName("api-key")+")")
	fs.StringVar(&c.TokenSecret, "token-secret", "", "JWT secret of a server with auth on: each connection gets a token for user bench-<i>; empty connects anonymously as ?name=bench-<i>")
	fs.IntVar(&c.Workers, "workers", 32, "concurrent keep-alive HTTP publish requests (publisher api)")
	fs.IntVar(&c.DialConc, "dial-concurrency", 64, "WebSocket dials in flight at once")
	fs.DurationVar(&c.PubTimeout, "publish-timeout", 5*time.Second, "how long one publish may take before it counts as timed out")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", time.Minute, "how long all joins may take")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "after the last publish, how long to wait for outstanding deliveries")
	fs.DurationVar(&c.Hold, "hold", 5*time.Second, "idle mode: how long connections sit before memory is measured")
	fs.BoolVar(&c.IdleJoin, "join", false, "idle mode: also join each connection to its room")
	pids := fs.String("pid", "", "comma-separated server PIDs (e.g. switchboard and redis-server) whose CPU time and RSS are measured from /proc")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object instead of a table")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
	fs.BoolVar(&c.Progress, "progress", true, "print a progress line per second to stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard bench [--url ws://127.0.0.1:8080,…] [--conns 1000] [--rooms 1] [--messages 2000] [--rate 200] [--pid PID,…]\n"+
			"       switchboard bench --mode idle --conns 10000 --pid PID\n\n"+
			"Loads a running server over loopback and reports deliveries per second, latency\n"+
			"(publish to frame read), lost and duplicate deliveries, and with --pid the server's\n"+
			"CPU seconds and RSS. The server needs --max-connections-per-ip 0, --max-connections\n"+
			"above --conns, an --api-key for the api publisher, and `ulimit -n` above --conns.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return c, err
	}
	if c.APIKey == "" {
		c.APIKey = getenv(envName("api-key"))
	}
	var err error
	if c.URLs, err = parseBenchURLs(*urls, c.AllowRemote); err != nil {
		return c, usageErr("bench: --url: %v", err)
	}
	if c.PIDs, err = parsePIDs(*pids); err != nil {
		return c, usageErr("bench: --pid: %v", err)
	}
	if err := c.validate(); err != nil {
		return c, usageErr("bench: %v", err)
	}
	return c, nil
}

func (c *benchConfig) validate() error {
	switch {
	case c.Target != "switchboard" && c.Target != "centrifugo":
		return errors.New("--target must be switchboard or centrifugo")
	case c.Mode != "fanout" && c.Mode != "idle":
		return errors.New("--mode must be fanout or idle")
	case c.Conns < 1 || c.Conns > benchMaxConns:
		return fmt.Errorf("--conns must be 1-%d", benchMaxConns)
	case c.Rooms < 1 || c.Rooms > benchMaxRooms:
		return fmt.Errorf("--rooms must be 1-%d", benchMaxRooms)
	case c.DialConc < 1 || c.Workers < 1:
		return errors.New("--dial-concurrency and --workers must be at least 1")
	case c.PubTimeout <= 0 || c.JoinTimeout <= 0 || c.Drain < 0:
		return errors.New("--publish-timeout and --join-timeout must be positive, --drain not negative")
	case c.Hold < 0 || c.Hold > benchMaxDuration:
		return fmt.Errorf("--hold must be 0-%v", benchMaxDuration)
	case c.Mode == "idle":
		return nil
	case c.Messages < 1 || c.Rate <= 0:
		return errors.New("--messages and --rate must be positive")
	case time.Duration(float64(c.Messages)/c.Rate*float64(time.Second)) > benchMaxDuration:
		return fmt.Errorf("--messages/--rate must be at most %v of publishing", benchMaxDuration)
	case c.Size < minPayloadSize || c.Size > benchMaxSize:
		return fmt.Errorf("--size must be %d-%d bytes", minPayloadSize, benchMaxSize)
	case c.Publisher != "api" && c.Publisher != "ws":
		return errors.New("--publisher must be api or ws")
	case c.Publisher == "ws" && c.Target != "switchboard":
		return errors.New("--publisher ws works with --target switchboard only")
	case c.Publisher == "ws" && c.Rooms > 100:
		return errors.New("--publisher ws joins every room: at most 100 (the server's --max-rooms)")
	case c.Publisher == "api" && c.APIKey == "":
		return fmt.Errorf("--publisher api needs --api-key or $%s", envName("api-key"))
	case c.TokenSecret != "" && len(c.TokenSecret) < minSecretLen:
		return fmt.Errorf("--token-secret must be at least %d bytes", minSecretLen)
	}
	return nil
}

// parseBenchURLs parses the node list and maps ws:// to http:// (wss:// to
// https://). A non-loopback host is refused unless allowRemote.
func parseBenchURLs(v string, allowRemote bool) ([]*url.URL, error) {
	items := splitList(v)
	if len(items) == 0 {
		return nil, errors.New("no URL")
	}
	out := make([]*url.URL, 0, len(items))
	for _, s := range items {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
		switch u.Scheme {
		case "ws", "http":
			u.Scheme = "http"
		case "wss", "https":
			u.Scheme = "https"
		default:
			return nil, fmt.Errorf("%q: scheme must be ws, wss, http or https", s)
		}
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("%q: give scheme, host and port only", s)
		}
		u.Path = ""
		if !allowRemote && !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("%q is not a loopback address (pass --allow-remote to load another machine)", s)
		}
		out = append(out, u)
	}
	return out, nil
}

// isLoopbackHost reports whether host is localhost or a loopback IP
// literal; names are not resolved.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parsePIDs(v string) ([]int, error) {
	var out []int
	for _, s := range splitList(v) {
		pid, err := strconv.Atoi(s)
		if err != nil || pid < 1 {
			return nil, fmt.Errorf("%q is not a process id", s)
		}
		out = append(out, pid)
	}
	return out, nil
}

// benchRoom is the name of room i.
func benchRoom(i int) string { return "bench-" + strconv.Itoa(i) }

// benchUser is the user name of connection i.
func benchUser(i int) string { return "bench-" + strconv.Itoa(i) }

// joinURLs renders the node list for reports.
func joinURLs(us []*url.URL) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}
