package clients_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// timeout bounds every wait of a test for the server; it is a failure
// bound, not an expectation.
const timeout = 20 * time.Second

// server is a Switchboard WebSocket endpoint on a local port, over a
// memory hub.
type server struct {
	t   testing.TB
	hub *hub.Hub
	ws  *clients.Server
	url string // ws://…/ws
	ts  *httptest.Server

	handlers sync.WaitGroup // upgrade handlers still running
}

// options varies a test server beyond its clients.Config.
type options struct {
	hub    hub.Config
	memory memorybroker.Config
	// listener, when set, wraps the server's listener.
	listener func(net.Listener) net.Listener
}

// newServer starts a server whose logs go to t. When the test ends it
// closes the hub (1001 to every client still connected) and waits for every
// session to end.
func newServer(t testing.TB, cfg clients.Config, opts options) *server {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
	broker := memorybroker.New(opts.memory)
	opts.hub.Logger = log
	h := hub.New(broker, memorybroker.NewPresence(broker), opts.hub)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "test-node"
	}
	cfg.Logger = log
	ws := clients.NewServer(h, cfg)

	s := &server{t: t, hub: h, ws: ws}
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		ws.ServeHTTP(w, r)
	}))
	if opts.listener != nil {
		s.ts.Listener = opts.listener(s.ts.Listener)
	}
	s.ts.Start()
	s.url = "ws" + strings.TrimPrefix(s.ts.URL, "http") + "/ws"
	t.Cleanup(func() {
		// Closing the listener first means no handler starts after this;
		// the hijacked connections are the hub's to close.
		s.ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := h.Close(ctx, protocol.CloseGoingAway, "test over"); err != nil {
			t.Errorf("hub close: %v", err)
		}
		s.handlers.Wait()
		broker.Close(ctx)
	})
	return s
}

// client is a test's WebSocket connection to the server. Its methods must
// be called from the test's goroutine.
type client struct {
	t       testing.TB
	name    string
	conn    *websocket.Conn
	pending [][]byte // frames of a batch read but not yet returned
	ids     int      // ids used for sync pings
	welcome map[string]any
}

// dial connects as name ("" for none) and reads the welcome frame.
func (s *server) dial(name string) *client {
	s.t.Helper()
	c := s.dialWith(name, nil)
	c.welcome = decode(s.t, c.next())
	if c.welcome["type"] != "welcome" {
		s.t.Fatalf("%s: first frame %v, want welcome", name, c.welcome)
	}
	return c
}

// pair connects bob, then alice, each joined to room r, and returns them
// once both joined answers are read (bob's member_joined for alice is not).
func (s *server) pair() (bob, alice *client) {
	s.t.Helper()
	bob = s.dial("bob")
	bob.send(`{"type":"join","room":"r"}`)
	bob.next()
	alice = s.dial("alice")
	alice.send(`{"type":"join","room":"r"}`)
	alice.next()
	return bob, alice
}

// dialWith connects as name with the given dial options, not reading
// anything.
func (s *server) dialWith(name string, opts *websocket.DialOptions) *client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	u := s.url
	if name != "" {
		u += "?name=" + name
	}
	conn, _, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		s.t.Fatalf("dial %s: %v", name, err)
	}
	conn.SetReadLimit(-1) // batches may be larger than the default 32 KiB
	s.t.Cleanup(func() { conn.CloseNow() })
	return &client{t: s.t, name: name, conn: conn}
}

// send writes one text frame.
func (c *client) send(frame string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatalf("%s: write %s: %v", c.name, frame, err)
	}
}

// next returns the next frame, splitting batched messages on '\n'.
func (c *client) next() []byte {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	return f
}

// read returns the next frame or the read error.
func (c *client) read() ([]byte, error) {
	for len(c.pending) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		typ, msg, err := c.conn.Read(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageText {
			return nil, fmt.Errorf("got a %v message", typ)
		}
		c.pending = bytes.Split(msg, []byte("\n"))
	}
	f := c.pending[0]
	c.pending = c.pending[1:]
	return f, nil
}

// expect reads one frame per want and compares them as JSON, after norm.
func (c *client) expect(want ...string) {
	c.t.Helper()
	for i, w := range want {
		got := c.next()
		if g, w := norm(c.t, got), norm(c.t, []byte(w)); g != w {
			c.t.Fatalf("%s: frame %d:\n got %s\nwant %s", c.name, i, clip(g), clip(w))
		}
	}
}

// expectAnyOrder reads one frame per want and compares them as JSON, after
// norm, in any order: a sender's own copy of its message and its ack come
// in either order (docs/protocol.md), as may a DM's echo and its ack.
func (c *client) expectAnyOrder(want ...string) {
	c.t.Helper()
	got := make([]string, len(want))
	for i := range want {
		got[i] = norm(c.t, c.next())
	}
	for i, w := range want {
		want[i] = norm(c.t, []byte(w))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		c.t.Fatalf("%s: got\n%s\nwant, in any order,\n%s", c.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// sync pings the server and returns the frames (normalized) that came
// before the pong. Everything the server queued for this client before
// handling the ping comes before the pong.
func (c *client) sync() []string {
	c.t.Helper()
	c.ids++
	id := fmt.Sprintf("sync-%d", c.ids)
	c.send(fmt.Sprintf(`{"type":"ping","id":%q}`, id))
	var before []string
	for {
		f := c.next()
		m := decode(c.t, f)
		if m["type"] == "pong" && m["id"] == id {
			return before
		}
		before = append(before, norm(c.t, f))
	}
}

// quiet checks that nothing is waiting for the client.
func (c *client) quiet() {
	c.t.Helper()
	if got := c.sync(); len(got) != 0 {
		c.t.Errorf("%s got unexpected frames:\n%s", c.name, strings.Join(got, "\n"))
	}
}

// closeStatus reads until the connection ends and returns its close status
// (-1 when it ended without a close frame) and the frames read before.
func (c *client) closeStatus() (websocket.StatusCode, [][]byte) {
	c.t.Helper()
	var frames [][]byte
	for {
		f, err := c.read()
		if err != nil {
			return websocket.CloseStatus(err), frames
		}
		frames = append(frames, f)
	}
}

// clip shortens s for a failure message.
func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// decode parses a frame as a JSON object.
func decode(t testing.TB, frame []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(frame))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("frame %q is not a JSON object: %v", frame, err)
	}
	return m
}

// norm returns a frame as compact JSON with sorted keys, its volatile
// values replaced: a ts by "TS", a session by "S", an epoch by "E", and an
// error's message by "M". The same placeholders in a wanted frame compare
// equal.
func norm(t testing.TB, frame []byte) string {
	t.Helper()
	m := decode(t, frame)
	normObj(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func normObj(m map[string]any) {
	placeholders := map[string]string{"ts": "TS", "session": "S", "epoch": "E"}
	if m["type"] == "error" {
		placeholders["message"] = "M"
	}
	for k, p := range placeholders {
		switch v := m[k].(type) {
		case json.Number:
			if n, err := v.Int64(); err == nil && n > 0 {
				m[k] = p
			}
		case string:
			if v != "" {
				m[k] = p
			}
		}
	}
	if msgs, ok := m["messages"].([]any); ok {
		for _, msg := range msgs {
			if o, ok := msg.(map[string]any); ok {
				normObj(o)
			}
		}
	}
}

// collector reads every frame of a client on its own goroutine, as a client
// that keeps up with its connection does, until the connection ends. Once
// started, the client's read methods must not be used.
type collector struct {
	t    testing.TB
	c    *client
	bw   int           // bytes read per second; 0: as fast as they come
	more chan struct{} // capacity 1: a frame arrived or the connection ended

	mu     sync.Mutex
	frames []map[string]any
	err    error // the read error that ended the connection; nil while open
}

// collect starts a collector for c.
func collect(c *client) *collector { return collectAt(c, 0) }

// collectAt starts a collector for c that reads bw bytes a second, like a
// client on a link of that speed.
func collectAt(c *client, bw int) *collector {
	col := &collector{t: c.t, c: c, bw: bw, more: make(chan struct{}, 1)}
	go col.run()
	return col
}

func (col *collector) run() {
	for {
		f, err := col.c.read()
		if col.bw > 0 {
			time.Sleep(time.Duration(len(f)) * time.Second / time.Duration(col.bw))
		}
		col.mu.Lock()
		if err != nil {
			col.err = err
		} else {
			var m map[string]any
			if json.Unmarshal(f, &m) != nil {
				err = fmt.Errorf("frame %q is not a JSON object", clip(string(f)))
				col.err = err
			}
			col.frames = append(col.frames, m)
		}
		col.mu.Unlock()
		select {
		case col.more <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// until waits for done to hold of the frames read so far and returns them;
// it fails the test when the connection ends or timeout passes first.
func (col *collector) until(done func(frames []map[string]any) bool) []map[string]any {
	col.t.Helper()
	frames, _ := col.untilOr(nil, done)
	return frames
}

// untilOr is until that also gives up, reporting false, when stop fires.
func (col *collector) untilOr(stop <-chan time.Time, done func(frames []map[string]any) bool) ([]map[string]any, bool) {
	col.t.Helper()
	deadline := time.After(timeout)
	for {
		col.mu.Lock()
		frames, err := col.frames, col.err
		col.mu.Unlock()
		if done(frames) {
			return frames, true
		}
		if err != nil {
			col.t.Fatalf("%s: connection ended (close status %v): %v", col.c.name, websocket.CloseStatus(err), err)
		}
		select {
		case <-col.more:
		case <-stop:
			return frames, false
		case <-deadline:
			col.t.Fatalf("%s: condition not met after %d frames", col.c.name, len(frames))
		}
	}
}

// sync pings the server until a ping is answered and returns every frame
// read so far: everything the server queued before it handled the ping.
// A ping unanswered for 200ms is repeated: a rate limit may have dropped it.
func (col *collector) sync() []map[string]any {
	col.t.Helper()
	col.c.ids++
	prefix := fmt.Sprintf("sync-%d-", col.c.ids)
	for try := 0; try < 100; try++ {
		col.c.send(fmt.Sprintf(`{"type":"ping","id":"%s%d"}`, prefix, try))
		frames, ok := col.untilOr(time.After(200*time.Millisecond), func(frames []map[string]any) bool {
			for _, f := range frames {
				if id, _ := f["id"].(string); f["type"] == "pong" && strings.HasPrefix(id, prefix) {
					return true
				}
			}
			return false
		})
		if ok {
			return frames
		}
	}
	col.t.Fatalf("%s: no pong to 100 pings", col.c.name)
	return nil
}
