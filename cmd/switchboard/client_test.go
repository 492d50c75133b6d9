package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient is a test client. A background goroutine reads the connection
// and splits batched messages into frames, so reads can time out without
// closing the connection (coder/websocket closes a connection whose Read
// context expires).
type wsClient struct {
	t      testing.TB
	c      *websocket.Conn
	frames chan []byte
	err    error // the read error, set before frames is closed
}

// dial connects to the server at base (http://…) with the query and header.
func dial(t testing.TB, base, query string, header http.Header) *wsClient {
	t.Helper()
	c, err := dialErr(t, base, query, header)
	if err != nil {
		t.Fatalf("dial %s: %v", query, err)
	}
	return c
}

func dialErr(t testing.TB, base, query string, header http.Header) (*wsClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + "/ws" + query
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		if resp != nil {
			return nil, &dialError{status: resp.StatusCode, err: err}
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	wc := &wsClient{t: t, c: c, frames: make(chan []byte, 4096)}
	go wc.readLoop()
	t.Cleanup(func() { c.CloseNow() })
	return wc, nil
}

func (c *wsClient) readLoop() {
	defer close(c.frames)
	for {
		_, b, err := c.c.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		for _, f := range bytes.Split(b, []byte("\n")) {
			c.frames <- f
		}
	}
}

type dialError struct {
	status int
	err    error
}

func (e *dialError) Error() string { return e.err.Error() }

func (c *wsClient) send(frame string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatalf("write %s: %v", frame, err)
	}
}

var errNoFrame = errors.New("no frame in time")

// readWithin returns the next frame as a map, the connection's read error,
// or errNoFrame after d.
func (c *wsClient) readWithin(d time.Duration) (map[string]any, error) {
	select {
	case b, ok := <-c.frames:
		if !ok {
			return nil, c.err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("frame %s is not JSON: %v", b, err)
		}
		return m, nil
	case <-time.After(d):
		return nil, errNoFrame
	}
}

func (c *wsClient) read() (map[string]any, error) { return c.readWithin(10 * time.Second) }

// expect reads frames until one of type typ arrives, failing on a read error.
func (c *wsClient) expect(typ string) map[string]any {
	c.t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m["type"] == typ {
			return m
		}
	}
}

// expectAnswer returns the next frame whose id is id: a request's answer or
// its error.
func (c *wsClient) expectAnswer(id string) map[string]any {
	c.t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for the answer to %s: %v", id, err)
		}
		if m["id"] == id {
			return m
		}
	}
}

// readType waits up to d for a frame of type typ.
func (c *wsClient) readType(typ string, d time.Duration) (map[string]any, error) {
	deadline := time.Now().Add(d)
	for {
		m, err := c.readWithin(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		if m["type"] == typ {
			return m, nil
		}
	}
}

// closeStatus reads until the connection closes and returns its status.
func (c *wsClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		if _, err := c.read(); err != nil {
			if errors.Is(err, errNoFrame) {
				c.t.Fatal("connection did not close")
			}
			return websocket.CloseStatus(err)
		}
	}
}
