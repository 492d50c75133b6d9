package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/coder/websocket"
)

// benchTarget speaks one server's protocol: how a connection is opened,
// joins a room, and how a message is published over HTTP. Implementations
// are stateless and safe for concurrent use.
type benchTarget interface {
	// wsURL is connection i's WebSocket URL on node base.
	wsURL(base *url.URL, user, token string) string
	// handshake completes the protocol's greeting on a fresh connection.
	handshake(ctx context.Context, c *websocket.Conn) error
	// joinFrame asks to join (subscribe to) room.
	joinFrame(room string) []byte
	// joinReply tells whether line answers the join: done, or err when the
	// server refused it; neither for any other frame.
	joinReply(line []byte) (done bool, err error)
	// pong is what to send back for a server ping in line, or nil.
	pong(line []byte) []byte
	// publishRequest builds the HTTP request that publishes data to room.
	publishRequest(ctx context.Context, base *url.URL, room string, body []byte, key string) (*http.Request, error)
	// appendPublishBody appends the request body carrying data for room.
	appendPublishBody(dst []byte, room string, data []byte) []byte
	// publishResult checks a publish response.
	publishResult(status int, body []byte) error
}

func newBenchTarget(name string) benchTarget {
	if name == "centrifugo" {
		return centrifugoTarget{}
	}
	return switchboardTarget{}
}

// wsBase is base with its scheme turned to ws or wss.
func wsBase(base *url.URL) url.URL {
	u := *base
	u.Scheme = "ws"
	if base.Scheme == "https" {
		u.Scheme = "wss"
	}
	return u
}

// snippet shortens a frame for an error message.
func snippet(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// switchboardTarget is protocol v1 and the server API.
type switchboardTarget struct{}

func (switchboardTarget) wsURL(base *url.URL, user, token string) string {
	u := wsBase(base)
	u.Path = "/ws"
	q := url.Values{}
	if token != "" {
		q.Set("token", token)
	} else {
		q.Set("name", user)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (switchboardTarget) handshake(ctx context.Context, c *websocket.Conn) error {
	_, msg, err := c.Read(ctx)
	if err != nil {
		return fmt.Errorf("read welcome: %w", err)
	}
	if !bytes.Contains(msg, []byte(`"type":"welcome"`)) {
		return fmt.Errorf("read welcome: got %s", snippet(msg))
	}
	return nil
}

func (switchboardTarget) joinFrame(room string) []byte {
	return []byte(`{"type":"join","room":"` + room + `","id":"bench-join"}`)
}

func (switchboardTarget) joinReply(line []byte) (bool, error) {
	if !bytes.Contains(line, []byte(`"bench-join"`)) {
		return false, nil
	}
	if bytes.Contains(line, []byte(`"type":"joined"`)) {
		return true, nil
	}
	return false, fmt.Errorf("join: %s", snippet(line))
}

func (switchboardTarget) pong([]byte) []byte { return nil }

func (switchboardTarget) publishRequest(ctx context.Context, base *url.URL, room string, body []byte, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+"/api/rooms/"+room+"/messages", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

func (switchboardTarget) appendPublishBody(dst []byte, _ string, data []byte) []byte {
	dst = append(dst, `{"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

func (switchboardTarget) publishResult(status int, body []byte) error {
	if status/100 != 2 {
		return fmt.Errorf("publish: HTTP %d: %s", status, snippet(body))
	}
	return nil
}

// centrifugoTarget is Centrifugo v6's JSON client protocol and its HTTP
// API; room r is channel bench:r, which the server's "bench" namespace
// must let anonymous clients subscribe to.
type centrifugoTarget struct{}

func (centrifugoTarget) wsURL(base *url.URL, _, _ string) string {
	u := wsBase(base)
	u.Path = "/connection/websocket"
	return u.String()
}

func (centrifugoTarget) handshake(ctx context.Context, c *websocket.Conn) error {
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"connect":{}}`)); err != nil {
		return fmt.Errorf("send connect: %w", err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		return fmt.Errorf("read connect reply: %w", err)
	}
	if !bytes.HasPrefix(msg, []byte(`{"id":1,`)) || bytes.Contains(msg, []byte(`"error"`)) {
		return fmt.Errorf("connect: %s", snippet(msg))
	}
	return nil
}

func (centrifugoTarget) joinFrame(room string) []byte {
	return []byte(`{"id":2,"subscribe":{"channel":"bench:` + room + `"}}`)
}

func (centrifugoTarget) joinReply(line []byte) (bool, error) {
	if !bytes.HasPrefix(line, []byte(`{"id":2,`)) {
		return false, nil
	}
	if bytes.Contains(line, []byte(`"error"`)) {
		return false, fmt.Errorf("subscribe: %s", snippet(line))
	}
	return true, nil
}

// pong answers Centrifugo's ping, an empty object, with an empty object.
func (centrifugoTarget) pong(line []byte) []byte {
	if string(line) == "{}" {
		return []byte("{}")
	}
	return nil
}

func (centrifugoTarget) publishRequest(ctx context.Context, base *url.URL, _ string, body []byte, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

func (centrifugoTarget) appendPublishBody(dst []byte, room string, data []byte) []byte {
	dst = append(dst, `{"channel":"bench:`...)
	dst = append(dst, room...)
	dst = append(dst, `","data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

func (centrifugoTarget) publishResult(status int, body []byte) error {
	if status != http.StatusOK || bytes.Contains(body, []byte(`"error"`)) {
		return fmt.Errorf("publish: HTTP %d: %s", status, snippet(body))
	}
	return nil
}

// errTimeout marks a publish that got no answer in --publish-timeout.
var errTimeout = errors.New("timed out")
