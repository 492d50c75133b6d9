package clients

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestWriteBuffersShrink checks that a session that has written a burst (a
// history answer of half its queue among many small frames, batched) holds
// no buffer once it is idle again: its writer has exited and its queue's
// list went back to the pool.
func TestWriteBuffersShrink(t *testing.T) {
	t.Parallel()
	b := memorybroker.New(memorybroker.Config{})
	h := hub.New(b, memorybroker.NewPresence(b), hub.Config{})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) }) // stops its delivery goroutines
	srv := NewServer(h, Config{})
	started, ended := make(chan *Session, 1), make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hijacker{ResponseWriter: w}
		conn, err := websocket.Accept(hw, r, nil)
		if err != nil {
			return
		}
		s := newSession(srv, conn, hw.conn, Identity{User: "u"}, r.RemoteAddr)
		started <- s
		s.serve(context.WithoutCancel(r.Context()), nil)
		close(ended)
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer h.Close(ctx, protocol.CloseGoingAway, "test over")
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(-1)

	read := func(until string) {
		t.Helper()
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if bytes.Contains(msg, []byte(until)) {
				return
			}
		}
	}
	read(`"welcome"`)
	// The burst: a history answer of 512 KiB amid 200 frames of 2 KiB.
	msgs := make([][]byte, 100)
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, `{"type":"message","room":"r","seq":%d,"from":"u","data":"%s","ts":1}`, i+1, strings.Repeat("x", 5200))
	}
	small := []byte(`{"type":"typing","room":"r","user":"` + strings.Repeat("u", 2000) + `"}`)
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":"burst"}`)); err != nil {
		t.Fatal(err)
	}
	read(`"burst"`)
	s := <-started
	// Queued in one go, as when frames pile up while a write is slow.
	burst := [][]byte{}
	for i := range 200 {
		if i == 100 {
			burst = append(burst, protocol.EncodeHistory(nil, "r", "e", msgs))
		}
		burst = append(burst, small)
	}
	burst = append(burst, []byte(`{"type":"pong","id":"end"}`))
	s.mu.Lock()
	s.queue = framePool.Get().(*[][]byte)
	for _, f := range burst {
		*s.queue = append(*s.queue, f)
		s.queued += len(f)
	}
	start := s.claimWriterLocked()
	s.mu.Unlock()
	if start {
		go s.writeLoop()
	}
	read(`"end"`)
	// One more round, after the burst's.
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":"idle"}`)); err != nil {
		t.Fatal(err)
	}
	read(`"idle"`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		writing, queue := s.writing, s.queue
		s.mu.Unlock()
		if !writing {
			if queue != nil {
				t.Errorf("idle session keeps a queue list of capacity %d, want none", cap(*queue))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer is still running with nothing to write")
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	<-ended
}
