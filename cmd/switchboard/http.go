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
// http.Server's ReadTimeout and WriteTimeout are deliberately not used.
// net/http applies them as deadlines on the connection before the handler
// runs, and documents that a hijacked connection "may have read or write
// deadlines already set" that the caller must clear (Go 1.26 clears them on
// an HTTP/1 Hijack, but the contract does not promise it, and
// coder/websocket never touches them): a WebSocket must not depend on that.
// The body and response of every other request are bounded per request
// instead (boundRequest); a WebSocket has its own keepalive and write
// deadlines in clients.
type httpLimits struct {
	// ReadHeader bounds reading a request's line and header.
	ReadHeader time.Duration
	// Idle closes a keep-alive connection that sends no new request.
	Idle time.Duration
	// Request bounds reading the body of every request but a WebSocket
	// upgrade; its response must be written within twice Request.
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

// boundRequest gives a request d to deliver its body, and d more to take
// its response (so that a body that timed out still gets its 408). net/http
// clears both deadlines before the connection's next request. It must not
// wrap the WebSocket endpoint: the deadlines would outlive the upgrade on
// the hijacked connection.
func boundRequest(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// Errors mean the writer cannot take deadlines (e.g. a test
		// recorder): serve without them.
		_ = rc.SetReadDeadline(now.Add(d))
		_ = rc.SetWriteDeadline(now.Add(2 * d))
		next.ServeHTTP(w, r)
	})
}
