package clients

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// pingSlices is how many batches the keepalive splits the sessions into:
// every PingInterval/pingSlices it pings the next 1/pingSlices of them, so
// the pings of a node are spread over the interval rather than sent at
// once.
const pingSlices = 8

// register adds s to the sessions the keepalive pings, starting the
// keepalive when s is the first.
func (srv *Server) register(s *Session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	s.slot = len(srv.live)
	srv.live = append(srv.live, s)
	if !srv.keeping {
		srv.keeping = true
		go srv.keepalive()
	}
}

// unregister removes s from the sessions the keepalive pings; the keepalive
// exits once there are none.
func (srv *Server) unregister(s *Session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if s.slot < 0 {
		return
	}
	last := srv.live[len(srv.live)-1]
	srv.live[s.slot], last.slot = last, s.slot
	srv.live[len(srv.live)-1] = nil
	srv.live, s.slot = srv.live[:len(srv.live)-1], -1
	if len(srv.live) == 0 {
		srv.live = nil
		select {
		case srv.idle <- struct{}{}:
		default:
		}
	}
}

// keepalive is the node's one keepalive goroutine: it runs while the
// server has sessions and pings each about once per PingInterval, a slice
// of them at a time. It exits when the last session has gone (so server
// shutdown, which closes every session, ends it).
func (srv *Server) keepalive() {
	t := time.NewTicker(srv.cfg.PingInterval / pingSlices)
	defer t.Stop()
	var due []*Session
	next := 0
	for {
		select {
		case <-t.C:
		case <-srv.idle:
		}
		srv.mu.Lock()
		n := len(srv.live)
		if n == 0 {
			srv.keeping = false
			srv.mu.Unlock()
			return
		}
		for range (n + pingSlices - 1) / pingSlices {
			if next >= n {
				next = 0
			}
			due = append(due, srv.live[next])
			next++
		}
		srv.mu.Unlock()
		for _, s := range due {
			s.ping()
		}
		clear(due)
		due = due[:0]
	}
}

// ping pings the peer, unless a ping is already in flight, and drops it
// when the pong does not come back within PingInterval. The wait is on a
// goroutine of the session's that lives for the round trip.
func (s *Session) ping() {
	s.mu.Lock()
	if s.closed || s.pinging {
		s.mu.Unlock()
		return
	}
	s.pinging = true
	s.tasks.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.tasks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.PingInterval)
		err := s.conn.Ping(ctx)
		cancel()
		s.mu.Lock()
		s.pinging = false
		closed := s.closed
		s.mu.Unlock()
		if err != nil && !closed {
			s.Close(int(websocket.StatusGoingAway), reasonPingTimeout)
			s.conn.CloseNow()
		}
	}()
}
