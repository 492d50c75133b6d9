package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// benchStats are the counters every subscriber's read loop adds to.
type benchStats struct {
	rooms uint64

	received  atomic.Int64 // first deliveries of a (room, n)
	dups      atomic.Int64 // repeated deliveries
	late      atomic.Int64 // deliveries behind the duplicate window
	misrouted atomic.Int64 // deliveries of another room's message
	lastRecv  atomic.Int64 // Unix ns of the last first delivery
	lat       histogram

	joined   atomic.Int64
	joinErrs atomic.Int64
	lastJoin atomic.Int64 // Unix ns of the last joined answer
	dropped  atomic.Int64 // connections that ended before the run did
	closing  atomic.Bool  // set before the orchestrator closes connections

	errs benchErrors
}

// benchErrors keeps the first error of each kind for the report.
type benchErrors struct {
	mu    sync.Mutex
	first map[string]string
}

func (e *benchErrors) note(kind string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first == nil {
		e.first = map[string]string{}
	}
	if _, ok := e.first[kind]; !ok {
		e.first[kind] = err.Error()
	}
}

func (e *benchErrors) snapshot() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string, len(e.first))
	for k, v := range e.first {
		out[k] = v
	}
	return out
}

// benchSub is one subscriber connection. Its read loop owns seen and the
// join state; the orchestrator owns conn and closes it to end the loop.
type benchSub struct {
	conn *websocket.Conn
	room int
	seen seen
}

// readBufs holds message buffers while a read loop handles a message, so
// that idle connections hold none.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxPooledBuf is the largest buffer put back into readBufs.
const maxPooledBuf = 1 << 20

// dialTimeout bounds one connection's dial and greeting.
const dialTimeout = 10 * time.Second

// dialSub opens a connection for user to node base and completes the
// greeting; with tokens it authenticates with a fresh token for user.
func dialSub(ctx context.Context, t benchTarget, base *url.URL, user string, tokens *tokenAuth) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var token string
	if tokens != nil {
		var err error
		if token, err = tokens.mint(user, "", nil, nil, time.Hour); err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
	}
	c, resp, err := websocket.Dial(ctx, t.wsURL(base, user, token), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	c.SetReadLimit(16 << 20) // batched frames
	if err := t.handshake(ctx, c); err != nil {
		c.CloseNow()
		return nil, err
	}
	return c, nil
}

// dialHint says what to change when dials fail with err.
func dialHint(err error, conns int) string {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EMFILE) || strings.Contains(msg, "too many open files"):
		return fmt.Sprintf("this process is out of file descriptors: run it under `ulimit -n %d` or more", conns+1000)
	case strings.Contains(msg, "HTTP 429") || strings.Contains(msg, "HTTP 503"):
		return fmt.Sprintf("the server refused connections: start it with --max-connections-per-ip 0 --max-connections %d", conns+100)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the server may be out of file descriptors: it needs `ulimit -n %d` or more", conns+1000)
	}
	return ""
}

// readLoop reads until the connection is closed. With join, it first sends
// the join frame; joinDone is called once, when the join is answered or the
// loop ends without an answer.
func (s *benchSub) readLoop(t benchTarget, st *benchStats, join bool, joinDone func()) {
	joined := !join
	defer func() {
		if !joined {
			joinDone()
		}
	}()
	if join {
		wctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		err := s.conn.Write(wctx, websocket.MessageText, t.joinFrame(benchRoom(s.room)))
		cancel()
		if err != nil {
			st.joinErrs.Add(1)
			st.errs.note("join", fmt.Errorf("send join: %w", err))
			return
		}
	}
	for {
		// No ctx deadline: the orchestrator ends the loop by closing the
		// connection, and a ctx with Done would cost a timer per message.
		_, r, err := s.conn.Reader(context.Background())
		if err != nil {
			s.ended(st, err)
			return
		}
		bp := readBufs.Get().(*[]byte)
		msg, err := readAll(r, *bp)
		now := time.Now()
		if err == nil {
			joined = s.handle(t, st, msg, now, joined, joinDone)
		}
		if cap(msg) <= maxPooledBuf {
			*bp = msg[:0]
			readBufs.Put(bp)
		}
		if err != nil {
			s.ended(st, err)
			return
		}
	}
}

// ended records why a read loop ended, unless the orchestrator closed it.
func (s *benchSub) ended(st *benchStats, err error) {
	if st.closing.Load() {
		return
	}
	st.dropped.Add(1)
	st.errs.note("connection ended", err)
}

// handle processes every frame of one message and returns the join state.
func (s *benchSub) handle(t benchTarget, st *benchStats, msg []byte, now time.Time, joined bool, joinDone func()) bool {
	for len(msg) > 0 {
		var line []byte
		line, msg = nextLine(msg)
		if n, sent, ok := scanDelivery(line); ok {
			s.deliver(st, n, sent, now)
			continue
		}
		if !joined {
			done, err := t.joinReply(line)
			switch {
			case err != nil:
				st.joinErrs.Add(1)
				st.errs.note("join", err)
				joined = true // answered: no second joinDone
				joinDone()
			case done:
				st.joined.Add(1)
				st.lastJoin.Store(now.UnixNano())
				joined = true
				joinDone()
			}
		}
		if p := t.pong(line); p != nil {
			ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
			s.conn.Write(ctx, websocket.MessageText, p)
			cancel()
		}
	}
	return joined
}

// deliver counts message n, sent at Unix ns sent, read at now.
func (s *benchSub) deliver(st *benchStats, n uint64, sent int64, now time.Time) {
	if n%st.rooms != uint64(s.room) {
		st.misrouted.Add(1)
		return
	}
	fresh, late := s.seen.mark(n / st.rooms)
	switch {
	case fresh:
		st.received.Add(1)
		st.lastRecv.Store(now.UnixNano())
		st.lat.record(time.Duration(now.UnixNano() - sent))
	case late:
		st.late.Add(1)
	default:
		st.dups.Add(1)
	}
}

// readAll reads a whole message into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
