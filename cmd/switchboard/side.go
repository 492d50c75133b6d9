package main

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// sideListener is an HTTP listener of its own beside the public one, for
// endpoints an operator keeps private: Go's profiling endpoints and, when
// --metrics-addr is set, /metrics.
type sideListener struct {
	flag    string // the flag that set addr, named in errors
	addr    string
	handler http.Handler
	message string // logged once it listens
	warn    bool   // log message as a warning
}

// sideListeners returns the side listeners cfg asks for.
func sideListeners(cfg config, m *metrics, log zerolog.Logger) []sideListener {
	var sides []sideListener
	if cfg.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		sides = append(sides, sideListener{"pprof-addr", cfg.PprofAddr, mux,
			"profiling endpoints served at /debug/pprof/: keep this address private", true})
	}
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.handler(log))
		sides = append(sides, sideListener{"metrics-addr", cfg.MetricsAddr, mux, "metrics served at /metrics", false})
	}
	return sides
}

// serveAside serves side on a listener of its own until ctx is done. It
// returns once the listener is open; stopped is closed when it has shut
// down.
func serveAside(ctx context.Context, side sideListener, log zerolog.Logger) (stopped <-chan struct{}, err error) {
	ln, err := listen(side.addr, side.flag)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: side.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Warn().Err(err).Str("flag", side.flag).Msg("side listener")
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	e := log.Info()
	if side.warn {
		e = log.Warn()
	}
	e.Str("addr", ln.Addr().String()).Msg(side.message)
	return done, nil
}
