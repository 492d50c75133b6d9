package clients

import (
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The server counts what its connections do with a few atomic counters,
// per frame read or per connection; the frames the hub fans out are the
// hub's to count (hub.Counters), once per fan-out. The fan-out latency is
// measured per socket write and handed to Config.ObserveLatency.

// InvalidFrame is the type under which Counters.FramesIn counts a client
// frame that did not decode (bad JSON, an unknown type, a missing field, a
// binary frame), so that the labels stay bounded.
const InvalidFrame = "invalid"

// inTypes are the client frame types, then InvalidFrame.
var inTypes = [...]string{
	protocol.TypePing, protocol.TypeJoin, protocol.TypeLeave, protocol.TypeSend, protocol.TypeTyping,
	protocol.TypeDM, protocol.TypePresence, protocol.TypeHistory, protocol.TypeRefresh,
	protocol.TypeEdit, protocol.TypeDelete, protocol.TypeRead, protocol.TypeMute, protocol.TypeUnmute, protocol.TypeBan,
	protocol.TypeUnban, protocol.TypeFreeze, protocol.TypeUnfreeze, InvalidFrame,
}

// Reasons a connection ended, the label values of Counters.Disconnects.
// The first ones are the server's decisions; the last ones the client's.
const (
	DisconnectQueueOverflow = "queue_overflow"  // 1013: the client read too slowly
	DisconnectRateLimit     = "rate_limit"      // 1008: sustained rate-limit abuse
	DisconnectAuthExpired   = "auth_expired"    // 4001: the token expired unrefreshed
	DisconnectKicked        = "kicked"          // 4003: the server API kicked the user
	DisconnectWriteFailed   = "write_failed"    // a write failed or missed its deadline
	DisconnectPingTimeout   = "ping_timeout"    // no pong within PingInterval
	DisconnectShutdown      = "shutdown"        // 1001: the server shut down
	DisconnectRestart       = "restart"         // 1012: the node drained for a restart
	DisconnectBadFrame      = "bad_frame"       // 1003, 1007, 1009: binary, invalid UTF-8, too big
	DisconnectClientClosed  = "client_closed"   // the client sent a close frame
	DisconnectLost          = "connection_lost" // the connection vanished without a close
	DisconnectOther         = "other"           // any other close the server sent
)

// disconnectReasons are the reasons, in a fixed order.
var disconnectReasons = [...]string{
	DisconnectQueueOverflow, DisconnectRateLimit, DisconnectAuthExpired, DisconnectKicked,
	DisconnectWriteFailed, DisconnectPingTimeout, DisconnectShutdown, DisconnectRestart,
	DisconnectBadFrame, DisconnectClientClosed, DisconnectLost, DisconnectOther,
}

// Close reasons the server sends that tell apart closes of the same code.
const (
	reasonWriteFailed = "write failed"
	reasonPingTimeout = "ping timeout"
)

// counters are the server's counters since NewServer.
type counters struct {
	framesIn    [len(inTypes)]atomic.Uint64
	framesOut   hub.FrameCounter
	rateLimited atomic.Uint64
	disconnects [len(disconnectReasons)]atomic.Uint64
}

// Counters are the server's cumulative counts since NewServer. Every map
// has every label value, zeros included.
type Counters struct {
	// FramesIn counts the client frames handled, by type (InvalidFrame
	// for one that did not decode). Frames dropped by the rate limit are
	// not handled: they count in RateLimited only.
	FramesIn map[string]uint64
	// FramesOut counts the frames the server itself queued for its
	// connections, by type (see hub.FrameCounter): welcome, pong, ack,
	// left, presence, history, refreshed and error. What the hub sends
	// (messages, joined, member events…) is in hub.Counters.FramesOut.
	FramesOut map[string]uint64
	// RateLimited counts the client frames the rate limits dropped.
	RateLimited uint64
	// Disconnects counts the connections that ended, by reason
	// (DisconnectQueueOverflow and the others).
	Disconnects map[string]uint64
}

// Counters returns a snapshot of the server's counters.
func (srv *Server) Counters() Counters {
	c := Counters{
		FramesIn:    make(map[string]uint64, len(inTypes)),
		FramesOut:   srv.count.framesOut.Counts(),
		RateLimited: srv.count.rateLimited.Load(),
		Disconnects: make(map[string]uint64, len(disconnectReasons)),
	}
	for i, typ := range inTypes {
		c.FramesIn[typ] = srv.count.framesIn[i].Load()
	}
	for i, r := range disconnectReasons {
		c.Disconnects[r] = srv.count.disconnects[i].Load()
	}
	return c
}

// countIn counts a client frame that was read and decoded into req, or
// failed to decode with err.
func (srv *Server) countIn(req protocol.Request, err error) {
	i := len(inTypes) - 1
	if err == nil {
		for j, typ := range inTypes[:len(inTypes)-1] {
			if typ == req.Type {
				i = j
				break
			}
		}
	}
	srv.count.framesIn[i].Add(1)
}

// countDisconnect counts a connection's end: the close code and reason the
// server sent when it closed first (byServer), else the peer's code.
func (srv *Server) countDisconnect(code int, reason string, byServer bool) {
	r := disconnectReason(code, reason, byServer)
	for i, x := range disconnectReasons {
		if x == r {
			srv.count.disconnects[i].Add(1)
			return
		}
	}
}

func disconnectReason(code int, reason string, byServer bool) string {
	switch {
	case code == protocol.CloseTooBig, code == protocol.CloseInvalidUTF8, code == protocol.CloseUnsupported:
		return DisconnectBadFrame
	case !byServer && code == int(websocket.StatusAbnormalClosure):
		return DisconnectLost
	case !byServer:
		return DisconnectClientClosed
	}
	switch code {
	case protocol.CloseTryAgainLater:
		return DisconnectQueueOverflow
	case protocol.ClosePolicy:
		return DisconnectRateLimit
	case protocol.CloseTokenExpired:
		return DisconnectAuthExpired
	case protocol.CloseKicked:
		return DisconnectKicked
	case protocol.CloseRestart:
		return DisconnectRestart
	case int(websocket.StatusAbnormalClosure):
		if reason == reasonWriteFailed {
			return DisconnectWriteFailed
		}
	case protocol.CloseGoingAway:
		if reason == reasonPingTimeout {
			return DisconnectPingTimeout
		}
		return DisconnectShutdown
	}
	return DisconnectOther
}

// send queues a frame the server built, and counts it.
func (s *Session) send(frame []byte) {
	s.srv.count.framesOut.AddFrame(frame, 1)
	s.Enqueue(frame)
}

// observeLatency reports, after the first write of a writer's round, the
// time since the enqueue of the oldest frame the round carries. Only the
// writer goroutine calls it.
func (s *Session) observeLatency() {
	if s.roundStart == 0 {
		return
	}
	s.srv.cfg.ObserveLatency(time.Duration(s.srv.since() - s.roundStart))
	s.roundStart = 0
}
