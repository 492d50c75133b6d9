package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// recSession is a hub.Session that records every frame it is sent and the
// first close. When the hub closes it, it disconnects itself from the hub
// on its own goroutine, as package clients does, so that Hub.Close can
// return.
type recSession struct {
	id, user string
	h        *hub.Hub  // set by connect
	flush    func()    // set by connect: waits for the broker's deliveries
	once     sync.Once // disconnects from h exactly once
	// manual, set before the session can be closed, makes Close only
	// record: the test disconnects the session itself, as it must when a
	// hub call of the session may still be running.
	manual bool

	mu     sync.Mutex
	frames [][]byte
	next   int // frames[next:] not yet taken
	closed bool
	code   int
}

func (s *recSession) ID() string   { return s.id }
func (s *recSession) User() string { return s.user }

func (s *recSession) Enqueue(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.frames = append(s.frames, append([]byte(nil), frame...))
}

func (s *recSession) Close(code int, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.code = true, code
	if s.h != nil && !s.manual {
		// The hub may call Close with its own locks held: disconnect later.
		go s.disconnect()
	}
}

// disconnect disconnects s from its hub once; a second call waits for the
// first to finish.
func (s *recSession) disconnect() {
	s.once.Do(func() { s.h.Disconnect(s) })
}

// settle waits until the broker delivered what was published before the
// call, when the session was connected through a testHub.
func (s *recSession) settle() {
	if s.flush != nil {
		s.flush()
	}
}

// closeCode returns the code of the first Close, or 0, once what was
// published before the call was delivered.
func (s *recSession) closeCode() int {
	s.settle()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

// all returns every frame received, decoded, once what was published
// before the call was delivered.
func (s *recSession) all(t testing.TB) []frame {
	t.Helper()
	s.settle()
	s.mu.Lock()
	raw := append([][]byte(nil), s.frames...)
	s.mu.Unlock()
	return decodeAll(t, raw)
}

// take returns the frames received since the last take, described, once
// what was published before the call was delivered.
func (s *recSession) take(t testing.TB) string {
	t.Helper()
	s.settle()
	s.mu.Lock()
	raw := s.frames[s.next:]
	s.next = len(s.frames)
	s.mu.Unlock()
	descs := make([]string, 0, len(raw))
	for _, f := range decodeAll(t, raw) {
		descs = append(descs, f.String())
	}
	return strings.Join(descs, "; ")
}

// frame is any server frame, decoded.
type frame struct {
	Type      string            `json:"type"`
	ID        json.RawMessage   `json:"id"`
	Room      string            `json:"room"`
	Seq       uint64            `json:"seq"`
	From      string            `json:"from"`
	To        string            `json:"to"`
	User      string            `json:"user"`
	Data      json.RawMessage   `json:"data"`
	TS        int64             `json:"ts"`
	Members   []string          `json:"members"`
	Epoch     string            `json:"epoch"`
	Recovered *bool             `json:"recovered"`
	Messages  []json.RawMessage `json:"messages"`
}

// String describes f in one short line with the fields that tests compare:
// volatile ones (ts, epoch) are left out.
func (f frame) String() string {
	switch f.Type {
	case "message":
		return fmt.Sprintf("message %s#%d from %s %s", f.Room, f.Seq, f.From, f.Data)
	case "joined":
		s := fmt.Sprintf("joined %s [%s] seq %d", f.Room, strings.Join(f.Members, " "), f.Seq)
		if f.Recovered != nil {
			s += fmt.Sprintf(" recovered %t", *f.Recovered)
		}
		return s
	case "member_joined", "member_left", "typing":
		return fmt.Sprintf("%s %s %s", f.Type, f.Room, f.User)
	case "dm":
		return fmt.Sprintf("dm %s>%s %s", f.From, f.To, f.Data)
	case "read":
		return fmt.Sprintf("read %s %s %d", f.Room, f.User, f.Seq)
	default:
		return f.Type
	}
}

func decodeAll(t testing.TB, raw [][]byte) []frame {
	t.Helper()
	frames := make([]frame, len(raw))
	for i, b := range raw {
		decodeFrame(t, b, &frames[i])
	}
	return frames
}

// decodeFrame decodes b into f. It reports a failure with Errorf, not Fatal,
// so that it may run off the test's goroutine.
func decodeFrame(t testing.TB, b []byte, f *frame) {
	t.Helper()
	if err := json.Unmarshal(b, f); err != nil {
		t.Errorf("frame %q: %v", b, err)
	}
}

// testHub is a started Hub with helpers that fail the test on error.
type testHub struct {
	*hub.Hub
	t testing.TB
	n int // sessions connected so far
	// flush waits until the broker delivered what was published before
	// the call: the memory broker delivers from goroutines of its own.
	flush func()
}

// newHub returns a started hub whose logs go to t. Every session connected
// through it is disconnected, then the broker closed, when the test ends.
func newHub(t testing.TB, mcfg memorybroker.Config, cfg hub.Config) *testHub {
	t.Helper()
	b := memorybroker.New(mcfg)
	return newHubWith(t, b, memorybroker.NewPresence(b), cfg)
}

// newHubWith returns a started hub over b and p, as newHub does. When b
// wraps the memory broker, the caller sets the testHub's flush to the
// memory broker's before connecting sessions.
func newHubWith(t testing.TB, b hub.Broker, p hub.Presence, cfg hub.Config) *testHub {
	t.Helper()
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	h := hub.New(b, p, cfg)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBroker(t, b) }) // after the sessions' cleanups
	return &testHub{Hub: h, t: t, flush: func() { flushBroker(t, b) }}
}

// connect connects a new session of user.
func (h *testHub) connect(user string) *recSession {
	h.t.Helper()
	h.n++
	s := &recSession{id: fmt.Sprintf("%s-%d", user, h.n), user: user, h: h.Hub, flush: h.flush}
	if err := h.Connect(context.Background(), s); err != nil {
		h.t.Fatalf("connect %s: %v", user, err)
	}
	h.t.Cleanup(s.disconnect)
	return s
}

// join joins s to room and fails the test on error. It returns once the
// join's member_joined was delivered: a broker whose delivery lags (as the
// memory broker's does) could otherwise show it to a session that joins
// next, whose joined answer already lists s's user.
func (h *testHub) join(s *recSession, room string) {
	h.t.Helper()
	if err := h.Join(context.Background(), s, hub.JoinRequest{Room: room}); err != nil {
		h.t.Fatalf("%s joins %s: %v", s.user, room, err)
	}
	h.flush()
}

// send sends data to room from s and returns the seq.
func (h *testHub) send(s *recSession, room, data string) uint64 {
	h.t.Helper()
	pos, err := h.Send(context.Background(), s, room, json.RawMessage(data), nil)
	if err != nil {
		h.t.Fatalf("%s sends to %s: %v", s.user, room, err)
	}
	return pos.Seq
}

// position returns the room's current position.
func (h *testHub) position(room string) hub.Position {
	h.t.Helper()
	page, err := h.History(context.Background(), room, 0, 0, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return page.Position
}
