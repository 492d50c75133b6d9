package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient is a test client that reads frames one at a time, splitting
// batched messages.
type wsClient struct {
	t       testing.TB
	c       *websocket.Conn
	pending [][]byte
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
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}, nil
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

// read returns the next frame as a map, or the read error.
func (c *wsClient) read() (map[string]any, error) {
	if len(c.pending) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, b, err := c.c.Read(ctx)
		if err != nil {
			return nil, err
		}
		c.pending = bytes.Split(b, []byte("\n"))
	}
	b := c.pending[0]
	c.pending = c.pending[1:]
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("frame %s is not JSON: %v", b, err)
	}
	return m, nil
}

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

// closeStatus reads until the connection closes and returns its status.
func (c *wsClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		if _, err := c.read(); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}
