package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/rs/zerolog"
)

// listen opens a TCP listener on addr, set by --flag. Its errors are
// runtime errors (exit code 1), not usage errors: the address is well
// formed (config.validate checked it) but cannot be used now. Each says
// what to do.
func listen(addr, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	fix := fmt.Sprintf("set --%s or %s", flag, envName(flag))
	host, port, _ := net.SplitHostPort(addr)
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("port %s is in use: %s to a free port", port, fix)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("cannot listen on %s: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE): %s to a port above 1023", addr, fix)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("cannot listen on %s: this machine has no address %s: %s to one of its addresses, or to :%s for all of them", addr, host, fix, port)
	case errors.As(err, &dnsErr):
		return nil, fmt.Errorf("cannot listen on %s: host %q not found: %s to an address of this machine, or to :%s for all of them", addr, host, fix, port)
	}
	return nil, fmt.Errorf("cannot listen on %s: %v: %s", addr, err, fix)
}

// listenURL is the URL a browser on this machine opens to reach a server
// that asked for addr and listens on bound: addr's host, or localhost when
// addr names every interface, and bound's port (the real one when addr
// asked for port 0).
func listenURL(addr string, bound net.Addr) string {
	host, _, _ := net.SplitHostPort(addr)
	_, port, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// logListening logs the line that tells a person where to go and what
// mode the server runs in, e.g. "open http://localhost:8080 to chat
// (memory: one node)", with the same facts as fields for machines.
func logListening(log zerolog.Logger, cfg config, bound net.Addr) {
	url := listenURL(cfg.Addr, bound)
	mode := "memory: one node, nothing kept across restarts"
	if cfg.RedisURL != "" {
		mode = redisMode(cfg.RedisURL, cfg.RedisCluster)
	}
	log.Info().Str("addr", bound.String()).Str("url", url).Str("broker", brokerName(cfg)).
		Msgf("listening: open %s to chat (%s)", url, mode)
}
