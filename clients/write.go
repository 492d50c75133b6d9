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

// keepFrames is the capacity of frame list an idle session keeps (its queue
// and the writer's spare, so that a writer started on demand allocates
// none); a burst's larger lists are let go when the writer exits.
const keepFrames = 8

// batchPool holds the buffers batches are joined in. A writer takes one
// for a round and puts it back, so an idle session holds none.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// writeLoop writes queued frames until the queue is empty, then exits; or
// until the session is closed, then it sends the close frame. It is
// started by whoever claimed the writer (claimWriterLocked). A write that
// misses its deadline drops the connection.
func (s *Session) writeLoop() {
	defer s.tasks.Done()
	if s.busy() {
		time.Sleep(s.srv.cfg.WriteDelay) // let more frames join the first one
	}
	var frames [][]byte
	for {
		var closed bool
		var code int
		var reason string
		frames, closed, code, reason = s.take(frames)
		switch {
		case closed:
			s.nc.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
			s.conn.Close(websocket.StatusCode(code), reason)
			return
		case len(frames) == 0:
			return
		}
		if err := s.write(frames); err != nil {
			s.Close(int(websocket.StatusAbnormalClosure), reasonWriteFailed)
			s.conn.CloseNow()
			return
		}
	}
}

// busyWindow is how recent a session's last write must be for its writer to
// wait WriteDelay: a connection receiving a steady stream gets its frames in
// fewer writes, one that receives a frame after a quiet spell (a chat at
// human pace) gets it at once.
const busyWindow = 20 * time.Millisecond

// busy reports whether the writer just started should wait WriteDelay.
func (s *Session) busy() bool {
	d := s.srv.cfg.WriteDelay
	if d <= 0 {
		return false
	}
	s.mu.Lock()
	last := s.lastWrite
	s.mu.Unlock()
	return last != 0 && s.srv.since()-last < int64(max(busyWindow, 2*d))
}

// take returns the queued frames, handing the emptied list of the previous
// round (done) back to the queue; or reports that the session is closed.
// With nothing queued it releases the writer: the caller must exit, and
// the next Enqueue starts a new one.
func (s *Session) take(done [][]byte) (frames [][]byte, closed bool, code int, reason string) {
	clear(done)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, true, s.closeCode, s.closeReason
	}
	if done == nil { // a new writer's first round
		done, s.spare = s.spare, nil
	}
	if len(s.queue) == 0 {
		s.writing = false
		s.lastWrite = s.srv.since()
		if cap(s.queue) > keepFrames { // a burst grew it
			s.queue = nil
		}
		if cap(done) <= keepFrames {
			s.spare = done[:0]
		}
		// Writes from the library's read side (pong answers) must not
		// inherit the deadline of the last write.
		s.nc.SetWriteDeadline(time.Time{})
		return nil, false, 0, ""
	}
	frames = s.queue
	s.queue, s.queued = done[:0], 0
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
