package main

import (
	stdlog "log"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// httpLimits bound what one HTTP client can hold of the server: a
// connection that sends its header slowly, sits idle between requests,
// trickles a body or reads a response slowly is cut off.
//
// http.Server's ReadTimeout and WriteTimeout are deliberately not used:
// net/http sets them as deadlines on the connection before the handler
// runs, and a hijacked WebSocket connection keeps them (coder/websocket
// never clears them), so every WebSocket would die after ReadTimeout. The
// body and response of an ordinary request are bounded per request instead
// (boundRequest); a WebSocket has its own keepalive and write deadlines.
type httpLimits struct {
	// ReadHeader bounds reading a request's line and header.
	ReadHeader time.Duration
	// Idle closes a keep-alive connection that sends no new request.
	Idle time.Duration
	// Request bounds reading the body and writing the response of every
	// request but a WebSocket upgrade.
	Request time.Duration
	// MaxHeaderBytes caps the request line and header (431 beyond it):
	// room for a JWT in ?token= or Authorization, far below net/http's
	// 1 MiB default.
	MaxHeaderBytes int
}

// defaultHTTPLimits are the limits of the server run starts.
var defaultHTTPLimits = httpLimits{
	ReadHeader:     10 * time.Second,
	Idle:           60 * time.Second,
	Request:        30 * time.Second,
	MaxHeaderBytes: 64 << 10,
}

// newHTTPServer returns the server for handler with the limits applied.
// net/http's own error lines (a handler's panic, accept errors) go to log.
func newHTTPServer(handler http.Handler, l httpLimits, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: l.ReadHeader,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          stdlog.New(log.With().Str("component", "http").Logger(), "", 0),
	}
}

// boundRequest gives a request d to deliver its body and to take its
// response. It must not wrap the WebSocket endpoint: the deadlines would
// outlive the upgrade on the hijacked connection.
func boundRequest(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(d)
		// Errors mean the connection cannot take deadlines (e.g. a test
		// recorder): serve without them.
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline)
		next.ServeHTTP(w, r)
	})
}
