package clients

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Session is one client connection. Its read loop runs on a goroutine of
// its own and is the only caller of the hub on its behalf. A writer
// goroutine exists only while frames are waiting: Enqueue starts one when
// the queue goes non-empty and it exits once the queue is drained, so an
// idle session is one goroutine and no buffers. Pings come from the
// Server's keepalive. Enqueue and Close are safe for concurrent use and
// never block, so the hub may call them while fanning out.
type Session struct {
	srv     *Server
	conn    *websocket.Conn
	nc      net.Conn // the socket under conn: its write deadline bounds every write
	id      string
	ident   Identity
	remote  string
	started time.Time

	mu      sync.Mutex
	queue   *[][]byte // frames not yet written, oldest first; nil when none (see framePool)
	queued  int       // bytes in queue
	writing bool      // a writer is claimed (it runs or waits for its delay); once closed, it stays true
	// lastWrite is when the last writer finished (monotonic nanoseconds
	// since the server started): a writer claimed soon after starts after
	// WriteDelay, one claimed after a quiet spell writes at once.
	lastWrite   int64
	pinging     bool // a ping waits for its pong
	closed      bool
	closeCode   int
	closeReason string

	// oldest is when the oldest frame in queue was enqueued (as lastWrite),
	// 0 when the queue is empty or ObserveLatency is not set. roundStart,
	// the writer's alone, is oldest for the round it writes, 0 once
	// observed.
	oldest     int64
	roundStart int64

	slot   int            // index in srv.live; guarded by srv.mu
	tasks  sync.WaitGroup // the writer and ping goroutines; Add only under mu while open
	limit  limiter
	expiry *time.Timer // closes the session when its credentials expire; nil without expiry
}

var _ hub.Session = (*Session)(nil)

func newSession(srv *Server, conn *websocket.Conn, nc net.Conn, id Identity, remote string) *Session {
	return &Session{
		srv:     srv,
		conn:    conn,
		nc:      nc,
		id:      randomHex(8),
		ident:   id,
		remote:  remote,
		started: time.Now(),
		slot:    -1,
		limit:   newLimiter(srv.cfg.RateLimit, srv.cfg.RateLimitBytes, srv.cfg.MaxFrame),
	}
}

// logEvent adds the session's fields to a log event. (A child logger per
// session would hold a buffer for the two lines it writes.)
func (s *Session) logEvent(e *zerolog.Event) *zerolog.Event {
	return e.Str("session", s.id).Str("user", s.ident.User)
}

// ID implements hub.Session.
func (s *Session) ID() string { return s.id }

// User implements hub.Session.
func (s *Session) User() string { return s.ident.User }

// Enqueue implements hub.Session: it queues frame, or closes the session with
// 1013 when the queue would exceed its byte bound. It claims a writer only
// when none is running (frames queued while one writes are its next
// batch) and starts it at once, or, for a session written to moments ago,
// after WriteDelay (see delayedWriters).
func (s *Session) Enqueue(frame []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var start, delayed bool
	if s.queued+len(frame) > s.srv.cfg.QueueBytes {
		start = s.closeLocked(protocol.CloseTryAgainLater, "too slow: outbound queue overflowed")
	} else {
		if s.queue == nil {
			s.queue = framePool.Get().(*[][]byte)
			if s.srv.cfg.ObserveLatency != nil {
				s.oldest = s.srv.since()
			}
		}
		*s.queue = append(*s.queue, frame)
		s.queued += len(frame)
		if s.claimWriterLocked() {
			delayed = s.busyLocked()
			start = !delayed
		}
	}
	s.mu.Unlock()
	switch {
	case start:
		go s.writeLoop()
	case delayed:
		s.srv.delayed.add(s)
	}
}

// Close implements hub.Session. The first call's code and reason win.
func (s *Session) Close(code int, reason string) {
	s.mu.Lock()
	start := s.closeLocked(code, reason)
	s.mu.Unlock()
	if start {
		go s.writeLoop()
	}
}

// closeLocked marks the session closed and drops its queue; the writer
// then sends the close frame. It reports whether the caller must start
// that writer.
func (s *Session) closeLocked(code int, reason string) bool {
	if s.closed {
		return false
	}
	s.closed, s.closeCode, s.closeReason = true, code, reason
	if s.queue != nil {
		clear(*s.queue)
		*s.queue = (*s.queue)[:0]
		framePool.Put(s.queue)
	}
	s.queue, s.queued = nil, 0
	return s.claimWriterLocked()
}

// claimWriterLocked reports whether the caller must start a writer, none
// running, and counts it in s.tasks. At most one writer runs at a time.
func (s *Session) claimWriterLocked() bool {
	if s.writing {
		return false
	}
	s.writing = true
	s.tasks.Add(1)
	return true
}

// serve runs the connection: welcome, then the loops, then cleanup. It
// returns when the connection is closed and the session has left the hub.
// It calls release, when not nil, just before it leaves the hub: leaving
// the hub is its last step, so whoever waits for the hub to empty (hub.Close)
// waits for everything the session does.
func (s *Session) serve(ctx context.Context, release func()) {
	if release == nil {
		release = func() {}
	}
	s.conn.SetReadLimit(s.srv.cfg.MaxFrame)
	if err := s.srv.hub.Connect(ctx, s); err != nil {
		code := protocol.CloseTryAgainLater
		if errors.Is(err, hub.ErrClosing) {
			code = protocol.CloseGoingAway
		}
		s.conn.Close(websocket.StatusCode(code), "server unavailable")
		release()
		return
	}
	s.logEvent(s.srv.log.Info()).Str("remote", s.remote).Msg("connected")
	s.send(protocol.Encode(protocol.Welcome{
		Type: protocol.TypeWelcome, Session: s.id, User: s.ident.User, Name: s.ident.Name,
		Node: s.srv.cfg.NodeID, Protocol: protocol.Version,
	}))
	s.srv.register(s)

	if !s.ident.Expires.IsZero() {
		s.expiry = time.AfterFunc(time.Until(s.ident.Expires), s.expire)
		defer s.expiry.Stop()
	}

	// ctx has no Done channel, so the library arms no timer per read: the
	// loop ends when the connection is closed.
	err := s.readLoop(ctx)
	s.mu.Lock()
	byServer := s.closed
	start := s.closeLocked(protocol.CloseNormal, "")
	s.mu.Unlock()
	if start {
		go s.writeLoop()
	}
	s.tasks.Wait()
	s.srv.unregister(s)
	s.logClose(err, byServer)
	release()
	s.srv.hub.Disconnect(s)
}

// expire closes a session whose token ran out without a refresh.
func (s *Session) expire() {
	s.Close(protocol.CloseTokenExpired, "token expired")
}

// refresh replaces the session's credentials with a new token's, which
// must name the same user, and moves its expiry (a token without one stops
// it). Rooms the new token does not allow are left first, each told with a
// left frame of reason forbidden; when one cannot be left, the refresh
// fails and the old credentials stay.
func (s *Session) refresh(ctx context.Context, req protocol.Request) error {
	if s.srv.cfg.Refresh == nil || s.expiry == nil {
		return protocol.Errorf(protocol.CodeBadRequest, "refresh needs auth, which is off on this server")
	}
	id, err := s.srv.cfg.Refresh(req.Token)
	if err != nil {
		var he *HTTPError
		if errors.As(err, &he) {
			return protocol.Errorf(he.Code, he.Message)
		}
		return err
	}
	if id.User != s.ident.User {
		return protocol.Errorf(protocol.CodeForbidden, "the new token is for another user")
	}
	if err := s.leaveForbidden(ctx, id.CanJoin); err != nil {
		return err
	}
	s.ident.Expires, s.ident.CanJoin, s.ident.CanDM = id.Expires, id.CanJoin, id.CanDM
	s.ident.CanModerate = id.CanModerate
	var exp int64
	if id.Expires.IsZero() {
		s.expiry.Stop()
	} else {
		s.expiry.Reset(time.Until(id.Expires))
		exp = id.Expires.Unix()
	}
	s.send(protocol.Encode(protocol.Refreshed{Type: protocol.TypeRefreshed, ID: req.ID, Exp: exp}))
	return nil
}

// leaveForbidden leaves the rooms canJoin rejects.
func (s *Session) leaveForbidden(ctx context.Context, canJoin func(room string) bool) error {
	if canJoin == nil {
		return nil
	}
	for _, room := range s.srv.hub.Rooms(s) {
		if canJoin(room) {
			continue
		}
		err := s.srv.hub.Leave(ctx, s, room)
		if errors.Is(err, hub.ErrNotMember) {
			continue // left meanwhile
		}
		if err != nil {
			return fmt.Errorf("leave forbidden room: %w", err)
		}
		s.send(protocol.Encode(protocol.Left{Type: protocol.TypeLeft, Room: room, Reason: protocol.ReasonForbidden}))
	}
	return nil
}

// logClose writes the disconnect line: the code the server sent when it
// closed first, else the peer's (1006 when the peer vanished).
func (s *Session) logClose(readErr error, byServer bool) {
	s.mu.Lock()
	code, reason := s.closeCode, s.closeReason
	s.mu.Unlock()
	switch {
	case byServer:
	case errors.Is(readErr, websocket.ErrMessageTooBig):
		code, reason = protocol.CloseTooBig, "frame too big"
	case websocket.CloseStatus(readErr) != -1:
		code, reason = int(websocket.CloseStatus(readErr)), "closed by client"
	default:
		code, reason = int(websocket.StatusAbnormalClosure), "connection lost"
	}
	s.srv.countDisconnect(code, reason, byServer)
	s.logEvent(s.srv.log.Info()).Str("remote", s.remote).Dur("duration_ms", time.Since(s.started)).
		Int("code", code).Str("reason", reason).Msg("disconnected")
}
