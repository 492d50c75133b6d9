package clients_test

import (
	"context"
	"net/http"
	"net/netip"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/clients"
)

// dialStatus dials with the given header and returns the HTTP status of
// the answer (101 for an upgrade); a connection it opens stays open until
// the test ends.
func (s *server) dialStatus(header http.Header) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := s.ts.Client()
	defer client.CloseIdleConnections() // of a refused dial
	conn, resp, err := websocket.Dial(ctx, s.url+"?name=u", &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
	if err == nil {
		s.t.Cleanup(func() { conn.CloseNow() })
		return resp.StatusCode
	}
	if resp == nil {
		s.t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

// TestTrustedProxies checks the per-IP limit behind a load balancer: from a
// trusted proxy, connections forwarded for different clients count as
// different IPs, and the same client twice as one; from a peer that is not
// trusted, the headers are ignored.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	xff := func(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }
	fwd := func(v string) http.Header { return http.Header{"Forwarded": {v}} }

	t.Run("trusted", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, clients.Config{
			MaxConnectionsPerIP: 1,
			TrustedProxies:      []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		}, options{})
		for _, tt := range []struct {
			name   string
			header http.Header
			want   int
		}{
			{"first client", xff("203.0.113.1"), http.StatusSwitchingProtocols},
			{"second client", xff("203.0.113.2"), http.StatusSwitchingProtocols},
			{"first client again", xff("198.51.100.9, 203.0.113.1"), http.StatusTooManyRequests},
			{"v6 client by Forwarded", fwd(`for="[2001:db8::1]:4711"`), http.StatusSwitchingProtocols},
			{"v6 client again", xff("2001:db8::1"), http.StatusTooManyRequests},
			{"the proxy itself", nil, http.StatusSwitchingProtocols},
			{"garbage is the proxy", xff("garbage"), http.StatusTooManyRequests},
		} {
			if got := srv.dialStatus(tt.header); got != tt.want {
				t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
			}
		}
	})

	t.Run("untrusted", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, clients.Config{
			MaxConnectionsPerIP: 1,
			TrustedProxies:      []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		}, options{})
		if got := srv.dialStatus(xff("203.0.113.1")); got != http.StatusSwitchingProtocols {
			t.Fatalf("first: status %d, want 101", got)
		}
		if got := srv.dialStatus(xff("203.0.113.2")); got != http.StatusTooManyRequests {
			t.Errorf("second, claiming another address: status %d, want 429", got)
		}
	})
}
