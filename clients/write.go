package clients

import (
	"bytes"
	"context"
	"time"

	"github.com/coder/websocket"
)

// Batching: when more than batchAfter frames are waiting, they are joined
// with '\n' into messages of at most maxBatch bytes (a single larger frame is
// sent alone). A few frames are sent one per message, so a person reading a
// wscat session sees one frame per line; batching is for clients under load.
const (
	batchAfter = 4
	maxBatch   = 64 << 10
)

// Buffers the write path keeps between rounds. A burst grows them (the
// batch to maxBatch, the frame lists to the burst's length); beyond these
// sizes they are let go after the round, so an idle session holds no large
// buffer.
const (
	keepBatch  = 4 << 10 // bytes of batch buffer
	keepFrames = 64      // frames of a frame list
	frameSlot  = 24      // bytes of one entry of a frame list
	keepBytes  = keepBatch + keepFrames*frameSlot
)

// writeBuffers are the write loop's own buffers, reused from round to
// round.
type writeBuffers struct {
	batch  bytes.Buffer
	frames [][]byte
}

// release empties the buffers after a round, dropping them when a burst
// made them large.
func (b *writeBuffers) release() {
	clear(b.frames)
	b.frames = b.frames[:0]
	if cap(b.frames) > keepFrames {
		b.frames = nil
	}
	b.batch.Reset()
	if b.batch.Cap() > keepBatch {
		b.batch = bytes.Buffer{}
	}
}

// retained is the bytes the buffers hold on to.
func (b *writeBuffers) retained() int {
	return b.batch.Cap() + cap(b.frames)*frameSlot
}

// writeLoop writes queued frames until the session is closed, then sends the
// close frame. A write that misses its deadline drops the connection.
func (s *Session) writeLoop() {
	for range s.wake {
		var code int
		var reason string
		var closed bool
		s.out.frames, code, reason, closed = s.take(s.out.frames)
		if closed {
			s.conn.Close(websocket.StatusCode(code), reason)
			return
		}
		if err := s.write(&s.out.batch, s.out.frames); err != nil {
			s.Close(int(websocket.StatusAbnormalClosure), "write failed")
			s.conn.CloseNow()
			return
		}
		s.out.release()
	}
}

// take moves the queued frames into frames, or reports that the session is
// closed.
func (s *Session) take(frames [][]byte) ([][]byte, int, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return frames, s.closeCode, s.closeReason, true
	}
	frames = append(frames, s.queue...)
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
	if cap(s.queue) > keepFrames { // a burst grew it
		s.queue = nil
	}
	return frames, 0, "", false
}

// write sends frames, batching them when there are many.
func (s *Session) write(batch *bytes.Buffer, frames [][]byte) error {
	if len(frames) <= batchAfter {
		for _, f := range frames {
			if err := s.writeMessage(f); err != nil {
				return err
			}
		}
		return nil
	}
	for len(frames) > 0 {
		n, size := 1, len(frames[0])
		for n < len(frames) && size+1+len(frames[n]) <= maxBatch {
			size += 1 + len(frames[n])
			n++
		}
		msg := frames[0] // a frame alone is not copied
		if n > 1 {
			batch.Reset()
			for i, f := range frames[:n] {
				if i > 0 {
					batch.WriteByte('\n')
				}
				batch.Write(f)
			}
			msg = batch.Bytes()
		}
		if err := s.writeMessage(msg); err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
}

func (s *Session) writeMessage(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.WriteTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, msg)
}

// keepalive pings the peer every PingInterval and drops it when a pong does
// not come back within the next interval.
func (s *Session) keepalive(ctx context.Context) {
	t := time.NewTicker(s.srv.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pingCtx, cancel := context.WithTimeout(ctx, s.srv.cfg.PingInterval)
		err := s.conn.Ping(pingCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.Close(int(websocket.StatusGoingAway), "ping timeout")
			s.conn.CloseNow()
			return
		}
	}
}
