package hubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// TestRecovery runs the recovery suite: a hub.Hub over the brokers newBroker
// returns (configured with HistorySize) answers a join with since and epoch
// as docs/protocol.md promises. The joining session gets exactly the joined
// frame, then the missed messages in order when they are all in history
// (recovered true), else nothing replayed (recovered false), then the live
// messages, without a gap or a duplicate.
//
// Every case runs three times: with the joiner as the room's first member on
// the node, so that the join subscribes the node; with another session in
// the room all along, so that the node receives the messages live while the
// join reads history; and so again, but with the broker's deliveries held
// back until the join returned, as a networked broker's may lag its history.
// Subtests run in parallel, each on a hub and broker of its own.
func TestRecovery(t *testing.T, newBroker NewBroker) {
	const total = HistorySize + 5 // the ring holds total-HistorySize+1..total
	const oldest = total - HistorySize + 1
	tests := []recoveryCase{
		{name: "plain join", published: total, plain: true},
		{name: "nothing missed", published: total, since: total, recovered: true},
		{name: "missed some", published: total, since: total - 3, recovered: true},
		{name: "missed exactly the ring", published: total, since: oldest - 1, recovered: true},
		{name: "one too old", published: total, since: oldest - 2},
		{name: "since 0 on a ring that moved", published: total, since: 0},
		{name: "since 0 on a full ring from seq 1", published: HistorySize, since: 0, recovered: true},
		{name: "since beyond current", published: total, since: total + 1},
		{name: "since far beyond", published: total, since: 1 << 40},
		{name: "other epoch", published: total, since: total, epoch: "000000000000"},
		{name: "other epoch missed some", published: total, since: total - 3, epoch: "000000000000"},
		{name: "fresh room since 0 with its epoch", published: 0, since: 0, recovered: true},
	}
	for _, tt := range tests {
		for _, v := range []variant{firstOnNode, subscribed, lagging} {
			t.Run(tt.name+"/"+v.String(), func(t *testing.T) {
				t.Parallel()
				tt.run(t, newBroker, v)
			})
		}
	}
	for _, v := range []variant{firstOnNode, subscribed, lagging} {
		t.Run("missed edits and deletes/"+v.String(), func(t *testing.T) {
			t.Parallel()
			recoverEdits(t, newBroker, v)
		})
	}
}

// variant is how the node stands when the case's session joins.
type variant int

const (
	firstOnNode variant = iota // no session of the node is in the room
	subscribed                 // another session is in the room
	lagging                    // and the broker delivers only after the join
)

func (v variant) String() string {
	return [...]string{"first on the node", "node subscribed", "delivery lagging"}[v]
}

// recoveryCase is a join of alice to a room where bob published published
// messages, followed by one live message.
type recoveryCase struct {
	name      string
	published uint64
	plain     bool   // a join without since
	since     uint64 // else since,
	epoch     string // in this epoch; "" is the room's
	recovered bool   // and the expected answer
}

func (tt recoveryCase) run(t *testing.T, newBroker NewBroker, v variant) {
	const room = "lobby"
	h := startHub(t, newBroker)
	members := []string{"alice"}
	if v == firstOnNode {
		// The room has a life: alice knows its epoch from an earlier join,
		// here dave's. A room nobody joined or published to keeps nothing,
		// not even an epoch.
		dave := h.connect(t, "dave")
		h.join(t, dave, hub.JoinRequest{Room: room})
		if err := h.Leave(t.Context(), dave, room); err != nil {
			t.Fatalf("dave leaves: %v", err)
		}
	} else {
		carol := h.connect(t, "carol")
		h.join(t, carol, hub.JoinRequest{Room: room})
		members = append(members, "carol")
		h.lag.waitEvent(t) // member_joined carol, not for alice's eyes
	}
	if v == lagging {
		h.lag.hold()
	}
	for range tt.published {
		h.publish(t, room, `"m"`)
	}
	pos := h.position(t, room)
	req := hub.JoinRequest{Room: room, Recover: !tt.plain, Since: tt.since, Epoch: tt.epoch}
	if req.Epoch == "" {
		req.Epoch = pos.Epoch
	}
	alice := h.connect(t, "alice")
	h.join(t, alice, req)
	h.lag.release()
	live := h.publish(t, room, `"live"`)

	want := []string{fmt.Sprintf("joined %s [%s] seq %d epoch %s", room, strings.Join(members, " "), pos.Seq, pos.Epoch)}
	if !tt.plain {
		want[0] += fmt.Sprintf(" recovered %t", tt.recovered)
	}
	if tt.recovered {
		for seq := tt.since + 1; seq <= pos.Seq; seq++ {
			want = append(want, fmt.Sprintf(`message %s#%d from bob "m"`, room, seq))
		}
	}
	want = append(want, fmt.Sprintf(`message %s#%d from bob "live"`, room, live))
	got := alice.waitFor(t, want[len(want)-1])
	if !slices.Equal(got, want) {
		t.Errorf("alice got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if code := alice.closeCode(); code != 0 {
		t.Errorf("alice was closed with code %d", code)
	}
}

// testHub is a started hub.Hub with helpers that fail the test on error.
type testHub struct {
	*hub.Hub
	lag *lagHandler // between the broker and the hub
	n   int         // sessions connected so far
}

// startHub starts a hub over a broker newBroker returns, and its Presence
// or else a memorybroker.Presence. The hub's logs go to t; its sessions are
// disconnected and the broker closed when t ends.
func startHub(t *testing.T, newBroker NewBroker) *testHub {
	t.Helper()
	b, p := newBroker(t)
	if p == nil {
		p = memorybroker.NewPresence(b)
	}
	lag := &lagHandler{events: make(chan struct{}, 16)}
	h := hub.New(lagBroker{b, lag}, p, hub.Config{Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { // runs after the sessions' cleanups
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testHub{Hub: h, lag: lag}
}

// lagBroker is a hub.Broker whose deliveries pass through a lagHandler.
type lagBroker struct {
	hub.Broker
	lag *lagHandler
}

func (b lagBroker) Start(ctx context.Context, h hub.Handler) error {
	b.lag.h = h
	return b.Broker.Start(ctx, b.lag)
}

// lagHandler passes deliveries on to the hub, or, while held, queues them
// until release, in order. It never blocks the broker for long: a broker
// may deliver synchronously from Publish.
type lagHandler struct {
	h      hub.Handler   // set by Start
	events chan struct{} // a token for each room event passed on, up to its capacity

	mu     sync.Mutex // held while passing deliveries on, to keep their order
	held   bool
	queued []func()
}

// waitEvent waits until a room event was passed on, and fails t after
// WaitTimeout.
func (l *lagHandler) waitEvent(t *testing.T) {
	t.Helper()
	select {
	case <-l.events:
	case <-time.After(WaitTimeout):
		t.Fatalf("timed out after %v waiting for a room event", WaitTimeout)
	}
}

func (l *lagHandler) hold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = true
}

// release passes on what was queued and stops holding.
func (l *lagHandler) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, deliver := range l.queued {
		deliver()
	}
	l.held, l.queued = false, nil
}

func (l *lagHandler) do(deliver func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		l.queued = append(l.queued, deliver)
		return
	}
	deliver()
}

func (l *lagHandler) HandlePublication(room string, p hub.Publication) {
	l.do(func() { l.h.HandlePublication(room, p) })
}

func (l *lagHandler) HandleRoomEvent(room string, e hub.Event) {
	l.do(func() {
		l.h.HandleRoomEvent(room, e)
		select {
		case l.events <- struct{}{}:
		default:
		}
	})
}

func (l *lagHandler) HandleUserEvent(user string, e hub.Event) {
	l.do(func() { l.h.HandleUserEvent(user, e) })
}

// connect connects a new session of user, disconnected when t ends.
func (h *testHub) connect(t *testing.T, user string) *session {
	t.Helper()
	h.n++
	s := &session{id: fmt.Sprintf("%s-%d", user, h.n), user: user, changed: make(chan struct{})}
	if err := h.Connect(t.Context(), s); err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { h.Disconnect(s) })
	return s
}

func (h *testHub) join(t *testing.T, s *session, req hub.JoinRequest) {
	t.Helper()
	if err := h.Join(t.Context(), s, req); err != nil {
		t.Fatalf("%s joins %+v: %v", s.user, req, err)
	}
}

// publish publishes data to room as bob and returns its seq.
func (h *testHub) publish(t *testing.T, room, data string) uint64 {
	t.Helper()
	pos, err := h.Publish(t.Context(), room, "bob", json.RawMessage(data), "")
	if err != nil {
		t.Fatalf("publish to %s: %v", room, err)
	}
	return pos.Seq
}

func (h *testHub) position(t *testing.T, room string) hub.Position {
	t.Helper()
	page, err := h.History(t.Context(), room, 0, 0, 0)
	if err != nil {
		t.Fatalf("position of %s: %v", room, err)
	}
	return page.Position
}

// session is a hub.Session that records the frames it is sent. Close only
// records: the test disconnects the session itself.
type session struct {
	id, user string

	mu      sync.Mutex
	frames  [][]byte
	changed chan struct{} // closed and replaced on every frame
	code    int           // of the first Close
}

var _ hub.Session = (*session)(nil)

func (s *session) ID() string   { return s.id }
func (s *session) User() string { return s.user }

func (s *session) Enqueue(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, slices.Clone(frame))
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *session) Close(code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.code == 0 {
		s.code = code
	}
}

func (s *session) closeCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

// waitFor waits until the session got a frame described as last and returns
// every frame it got, described; it fails t after WaitTimeout.
func (s *session) waitFor(t *testing.T, last string) []string {
	t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		frames, changed := slices.Clone(s.frames), s.changed
		s.mu.Unlock()
		got := describe(t, frames)
		if slices.Contains(got, last) {
			return got
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s; got\n\t%s", WaitTimeout, last, strings.Join(got, "\n\t"))
		}
	}
}

// frame holds the fields of a server frame that the suite compares.
type frame struct {
	Type      string          `json:"type"`
	Room      string          `json:"room"`
	Seq       uint64          `json:"seq"`
	From      string          `json:"from"`
	User      string          `json:"user"`
	Data      json.RawMessage `json:"data"`
	Members   []string        `json:"members"`
	Epoch     string          `json:"epoch"`
	Recovered *bool           `json:"recovered"`
	Target    uint64          `json:"target"`
}

// describe decodes frames and describes each in one line.
func describe(t *testing.T, frames [][]byte) []string {
	t.Helper()
	out := make([]string, 0, len(frames))
	for _, b := range frames {
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %q: %v", b, err)
		}
		out = append(out, f.String())
	}
	return out
}

func (f frame) String() string {
	switch f.Type {
	case "message":
		return fmt.Sprintf("message %s#%d from %s %s", f.Room, f.Seq, f.From, f.Data)
	case "joined":
		s := fmt.Sprintf("joined %s [%s] seq %d epoch %s", f.Room, strings.Join(f.Members, " "), f.Seq, f.Epoch)
		if f.Recovered != nil {
			s += fmt.Sprintf(" recovered %t", *f.Recovered)
		}
		return s
	case "message_edited":
		return fmt.Sprintf("edited %s#%d from %s of %d %s", f.Room, f.Seq, f.From, f.Target, f.Data)
	case "message_deleted":
		return fmt.Sprintf("deleted %s#%d from %s of %d", f.Room, f.Seq, f.From, f.Target)
	case "member_joined", "member_left", "typing":
		return fmt.Sprintf("%s %s %s", f.Type, f.Room, f.User)
	case "read":
		return fmt.Sprintf("read %s %s %d", f.Room, f.User, f.Seq)
	default:
		return f.Type
	}
}
