package clients

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Coalescing: the frames queued while a write is in flight go out together
// in the next write, joined with '\n' into messages of at most maxBatch
// bytes (a single larger frame is sent alone). A lone waiting frame goes
// out alone, so when traffic is slow a person reading a wscat session sees
// one frame per message; under load a write carries everything that piled
// up during the previous one, which is what keeps the write syscalls per
// frame down without adding any delay.
const maxBatch = 64 << 10

// framePool holds the lists queues are built in. A session takes one when
// its queue goes non-empty and its writer puts it back once written, so an
// idle session holds none and a burst's list serves the next burst.
var framePool = sync.Pool{New: func() any { l := make([][]byte, 0, 16); return &l }}

// maxPooledFrames caps the lists put back in framePool: a list that grew
// beyond it in a rare burst is let go.
const maxPooledFrames = 4096

// batchPool holds the buffers batches are joined in. A writer takes one
// for a round and puts it back, so an idle session holds none.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// writeLoop writes queued frames until the queue is empty, then exits; or
// until the session is closed, then it sends the close frame. It is
// started by whoever claimed the writer (claimWriterLocked), at once or,
// for a busy session, by the Server's delayedWriters. A write that misses
// its deadline drops the connection.
func (s *Session) writeLoop() {
	defer s.tasks.Done()
	for {
		frames, closed, code, reason := s.take()
		switch {
		case closed:
			s.nc.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
			s.conn.Close(websocket.StatusCode(code), reason)
			return
		case frames == nil:
			return
		}
		err := s.write(*frames)
		clear(*frames)
		if *frames = (*frames)[:0]; cap(*frames) <= maxPooledFrames {
			framePool.Put(frames)
		}
		if err != nil {
			s.Close(int(websocket.StatusAbnormalClosure), reasonWriteFailed)
			s.conn.CloseNow()
			return
		}
	}
}

// busyWindow is how recent a session's last write must be for its writer to
// wait for the write delay (or twice the delay, when that is longer): a
// connection receiving a steady stream gets its frames in fewer writes,
// one that receives a frame after a quiet spell (a chat at human pace)
// gets it at once.
const busyWindow = 20 * time.Millisecond

// busyLocked reports whether a writer claimed now should wait for the
// Server's delayedWriters. s.mu is held.
func (s *Session) busyLocked() bool {
	d := s.srv.delayed.current()
	return d > 0 && s.lastWrite != 0 && s.srv.since()-s.lastWrite < int64(max(busyWindow, 2*d))
}

// take returns the queued frames, or reports that the session is closed.
// With nothing queued it releases the writer: the caller must exit, and
// the next Enqueue starts a new one.
func (s *Session) take() (frames *[][]byte, closed bool, code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, true, s.closeCode, s.closeReason
	}
	if s.queue == nil {
		s.writing = false
		s.lastWrite = s.srv.since()
		// Writes from the library's read side (pong answers) must not
		// inherit the deadline of the last write.
		s.nc.SetWriteDeadline(time.Time{})
		return nil, false, 0, ""
	}
	frames, s.queue, s.queued = s.queue, nil, 0
	s.roundStart, s.oldest = s.oldest, 0
	return frames, false, 0, ""
}

// write sends frames: a lone frame as it is, several joined with '\n' in
// messages of at most maxBatch bytes.
func (s *Session) write(frames [][]byte) error {
	if len(frames) == 1 {
		return s.writeMessage(frames[0])
	}
	buf := batchPool.Get().(*[]byte)
	defer batchPool.Put(buf)
	for len(frames) > 0 {
		n, size := 1, len(frames[0])
		for n < len(frames) && size+1+len(frames[n]) <= maxBatch {
			size += 1 + len(frames[n])
			n++
		}
		msg := frames[0] // a frame alone is not copied
		if n > 1 {
			b := (*buf)[:0]
			for i, f := range frames[:n] {
				if i > 0 {
					b = append(b, '\n')
				}
				b = append(b, f...)
			}
			*buf, msg = b, b
		}
		if err := s.writeMessage(msg); err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
}

// writeMessage writes one message within WriteTimeout. The deadline is the
// socket's own: the library gets a context without a Done channel, so it
// arms no timer or context per write. The first write of a writer's round
// observes the round's latency (Config.ObserveLatency).
func (s *Session) writeMessage(msg []byte) error {
	s.nc.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	if err := s.conn.Write(context.Background(), websocket.MessageText, msg); err != nil {
		return err
	}
	s.observeLatency()
	return nil
}
