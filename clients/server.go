package clients

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Config configures a Server. Its zero value works.
type Config struct {
	// NodeID names this node in welcome frames.
	NodeID string
	// MaxFrame is the largest client frame accepted, in bytes; a larger one
	// closes the connection with 1009. Default 65536.
	MaxFrame int64
	// QueueBytes bounds each session's outbound queue; a session whose queue
	// would grow past it is closed with 1013. Default 1 MiB.
	QueueBytes int
	// RateLimit is the sustained number of frames per second a connection
	// may send, with bursts of twice that. 0 means no limit.
	RateLimit rate.Limit
	// RateLimitBytes is the sustained number of bytes per second a
	// connection may send, with bursts of MaxFrame; frames beyond it are
	// dropped with a rate_limited error, like frames beyond RateLimit. 0
	// means no limit.
	RateLimitBytes int
	// TrustedProxies are the networks of the load balancers in front of the
	// server. Only for a peer inside one of them are X-Forwarded-For and
	// Forwarded honoured: the client's address is then the rightmost one
	// that is not itself a trusted proxy. It is used for the per-IP limit
	// and in logs. Default: none, the socket peer is the client.
	TrustedProxies []netip.Prefix
	// PingInterval is how often a WebSocket ping checks that the peer is
	// alive; a ping unanswered within PingInterval drops it. Default 25s.
	PingInterval time.Duration
	// WriteTimeout bounds every write to a client. Default 5s.
	WriteTimeout time.Duration
	// WriteDelay, when not 0, is how long at most the writer of a
	// connection written to moments ago (within 20 ms, or twice the
	// delay) waits, once claimed by a first frame, for more to join it in
	// one write: fewer write syscalls per frame under load, at the cost of
	// up to that much latency. The writers claimed within one delay start
	// together, on one timer per Server. Default 0: a frame is written at
	// once.
	WriteDelay time.Duration
	// WriteDelayMax, when above WriteDelay, lets the delay grow while the
	// node's CPUs are busy (more than 65 % of the process's GOMAXPROCS, or
	// of the CPUs it may run on, in use), by a quarter every 250 ms up to
	// WriteDelayMax, and shrink back to WriteDelay once they are below
	// 50 %: a saturated node spends its CPU on fewer, larger writes instead
	// of queueing. Default 0: the delay is WriteDelay.
	WriteDelayMax time.Duration
	// Authenticate, when set, decides the identity of an upgrade request.
	// Default: anonymous, the user name taken from ?name=.
	Authenticate func(r *http.Request) (Identity, error)
	// Refresh, when set, verifies the token of a refresh frame. A
	// connection whose Identity.Expires passes without a refresh is closed
	// with 4001. Default: refresh frames are refused.
	Refresh func(token string) (Identity, error)
	// MaxConnections caps this server's connections (503 beyond it), and
	// MaxConnectionsPerIP the connections from one remote IP (429 beyond
	// it). 0 means no limit.
	MaxConnections      int
	MaxConnectionsPerIP int
	// CheckOrigin, when set, vets the request's Origin before the upgrade.
	// Default: every origin is allowed.
	CheckOrigin func(r *http.Request) error
	// ObserveLatency, when set, is called once per socket write of queued
	// frames with the time from the enqueue of the oldest frame it carries
	// to the end of that write: the fan-out latency a client sees, queueing
	// and WriteDelay included. (A batch beyond 64 KiB, written in several
	// writes, is observed at its first.) It is called from the sessions'
	// writers, concurrently, and must be fast. Default: none, and no clock
	// is read for it.
	ObserveLatency func(time.Duration)
	// Logger receives one line per connection and errors.
	Logger zerolog.Logger
}

// Identity is who a connection belongs to.
type Identity struct {
	User string
	// Name is an optional display name.
	Name string
	// Expires, when not zero, is when the connection's credentials expire.
	Expires time.Time
	// CanJoin, when set, reports whether the user may join a room.
	CanJoin func(room string) bool
	// CanDM, when set, reports whether the user may send a direct message
	// to another user. Default: to anyone.
	CanDM func(user string) bool
	// CanModerate, when set, reports whether the user operates a room: may
	// mute, ban and freeze in it and delete any of its messages, and is
	// not held by its mutes and freeze (see hub.Operator). Default: no
	// room.
	CanModerate func(room string) bool
}

// HTTPError is an error an Authenticate or CheckOrigin function returns to
// refuse an upgrade with a status and a protocol error code.
type HTTPError struct {
	Status  int
	Code    string
	Message string
}

func (e *HTTPError) Error() string { return e.Message }

// Server accepts WebSocket connections at its ServeHTTP and serves each as a
// Session of the hub, on a goroutine of the session's that ends when the
// connection does (hub.Close ends them all). While it has sessions, one
// keepalive goroutine pings them; it exits with the last one.
type Server struct {
	hub   *hub.Hub
	cfg   Config
	log   zerolog.Logger
	start time.Time // for since

	mu      sync.Mutex
	total   int            // open connections
	perIP   map[string]int // open connections per remote IP
	live    []*Session     // sessions the keepalive pings
	keeping bool           // the keepalive goroutine runs
	idle    chan struct{}  // capacity 1: live became empty

	delayed *delayedWriters // busy sessions' writers, started after the write delay

	count counters // for metrics: see Counters
}

// since returns the monotonic nanoseconds since the server was made: never
// 0 once a session exists.
func (srv *Server) since() int64 { return int64(time.Since(srv.start)) + 1 }

// NewServer returns a Server for h.
func NewServer(h *hub.Hub, cfg Config) *Server {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 65536
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 1 << 20
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 25 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.Authenticate == nil {
		cfg.Authenticate = Anonymous
	}
	return &Server{
		hub: h, cfg: cfg, log: cfg.Logger, start: time.Now(), perIP: make(map[string]int), idle: make(chan struct{}, 1),
		delayed: newDelayedWriters(cfg.WriteDelay, cfg.WriteDelayMax),
	}
}

// Anonymous identifies a request by its ?name= parameter, or a generated
// guest name when there is none.
func Anonymous(r *http.Request) (Identity, error) {
	name := r.URL.Query().Get("name")
	if name == "" {
		return Identity{User: "guest-" + randomHex(2)}, nil
	}
	if !protocol.ValidUser(name) {
		return Identity{}, &HTTPError{http.StatusBadRequest, protocol.CodeBadRequest,
			"name must be 1-32 characters of A-Z a-z 0-9 _ . -"}
	}
	return Identity{User: name}, nil
}

// ServeHTTP upgrades the request and returns, leaving the connection to a
// goroutine that serves it until it closes. (Returning lets net/http drop
// the request and its buffers, which would otherwise live as long as the
// connection.)
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if srv.cfg.CheckOrigin != nil {
		if err := srv.cfg.CheckOrigin(r); err != nil {
			WriteError(w, err)
			return
		}
	}
	id, err := srv.cfg.Authenticate(r)
	if err != nil {
		WriteError(w, err)
		return
	}
	ip := remoteIP(r, srv.cfg.TrustedProxies)
	if err := srv.admit(ip); err != nil {
		WriteError(w, err)
		return
	}
	// Logs name the peer with its port, or the client a proxy forwarded.
	remote := r.RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err != nil || host != ip {
		remote = ip
	}
	// Origin was vetted above, with JSON errors; the library's own check
	// would answer in plain text.
	hw := &hijacker{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		srv.leave(ip)
		return // Accept has written the HTTP error
	}
	s := newSession(srv, conn, hw.conn, id, remote)
	ctx := context.WithoutCancel(r.Context())
	go s.serve(ctx, func() { srv.leave(ip) })
}

// Buffers of a connection's socket, sized for small frames: a larger read
// goes straight into the message, and a larger write takes two syscalls
// (the buffer's worth with the frame header, then the rest) rather than
// one. net/http's are 4 KiB each.
const (
	readBuffer  = 512
	writeBuffer = 1 << 10
)

// hijacker hands the WebSocket library the hijacked socket with buffers of
// readBuffer and writeBuffer bytes instead of net/http's, and keeps the
// socket, whose write deadline bounds the session's writes.
type hijacker struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, readBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		// The client sent before it had the 101 (net/http's background
		// read may also hold a byte of it). The library takes what our
		// reader has buffered and reads the rest from conn: buffer these
		// bytes.
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(n, readBuffer))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("hijack: buffer early bytes: %w", err)
		}
	}
	h.conn = conn
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, writeBuffer)), nil
}

// admit takes a connection slot for ip, or refuses when a limit is reached.
func (srv *Server) admit(ip string) error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if max := srv.cfg.MaxConnections; max > 0 && srv.total >= max {
		return &HTTPError{http.StatusServiceUnavailable, protocol.CodeTooMany, "server is at its connection limit: try another node or later"}
	}
	if max := srv.cfg.MaxConnectionsPerIP; max > 0 && srv.perIP[ip] >= max {
		return &HTTPError{http.StatusTooManyRequests, protocol.CodeTooMany, "too many connections from your address"}
	}
	srv.total++
	srv.perIP[ip]++
	return nil
}

func (srv *Server) leave(ip string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.total--
	if srv.perIP[ip]--; srv.perIP[ip] == 0 {
		delete(srv.perIP, ip)
	}
}

// WriteError writes err as an HTTP error with a JSON body
// {"error":{"code":…,"message":…}}. An *HTTPError gives status and code;
// any other error is a 500.
func WriteError(w http.ResponseWriter, err error) {
	e := &HTTPError{http.StatusInternalServerError, protocol.CodeInternal, "internal error"}
	errors.As(err, &e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
