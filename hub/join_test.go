package hub_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

func TestJoinRecovery(t *testing.T) {
	t.Parallel()
	const other = "000000000000"
	tests := []struct {
		name    string
		recover bool
		since   uint64
		epoch   string // "" is the room's epoch
		want    string
	}{
		{"plain join", false, 0, "", "joined lobby [alice bob] seq 8"},
		{"nothing missed", true, 8, "", "joined lobby [alice bob] seq 8 recovered true"},
		{"missed some", true, 5, "", "joined lobby [alice bob] seq 8 recovered true; " + msgs(6, 8)},
		{"missed the whole ring", true, 3, "", "joined lobby [alice bob] seq 8 recovered true; " + msgs(4, 8)},
		{"one too old", true, 2, "", "joined lobby [alice bob] seq 8 recovered false"},
		{"since 0", true, 0, "", "joined lobby [alice bob] seq 8 recovered false"},
		{"since beyond current", true, 9, "", "joined lobby [alice bob] seq 8 recovered false"},
		{"since far beyond", true, 1 << 40, "", "joined lobby [alice bob] seq 8 recovered false"},
		{"other epoch", true, 8, other, "joined lobby [alice bob] seq 8 recovered false"},
		{"other epoch missed some", true, 5, other, "joined lobby [alice bob] seq 8 recovered false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, memorybroker.Config{HistorySize: 5}, hub.Config{})
			alice, bob := h.connect("alice"), h.connect("bob")
			h.join(bob, "lobby")
			for range 8 {
				h.send(bob, "lobby", `"m"`)
			}
			req := hub.JoinRequest{Room: "lobby", Recover: tt.recover, Since: tt.since, Epoch: tt.epoch}
			if req.Epoch == "" {
				req.Epoch = h.position("lobby").Epoch
			}
			if err := h.Join(context.Background(), alice, req); err != nil {
				t.Fatal(err)
			}
			h.send(bob, "lobby", `"m"`)
			want := tt.want + "; " + msgs(9, 9)
			if got := alice.take(t); got != want {
				t.Errorf("alice got\n%s\nwant\n%s", got, want)
			}
			for _, f := range alice.all(t) {
				if f.Type == "joined" && f.Epoch != h.position("lobby").Epoch {
					t.Errorf("joined epoch %q, want the room's %q", f.Epoch, h.position("lobby").Epoch)
				}
			}
		})
	}
}

// msgs describes bob's messages from..to in lobby.
func msgs(from, to uint64) string {
	var s []string
	for seq := from; seq <= to; seq++ {
		s = append(s, fmt.Sprintf(`message lobby#%d from bob "m"`, seq))
	}
	return strings.Join(s, "; ")
}

func TestJoinRecoveryFreshRoom(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	// The epoch of a room nobody published to is the one its members got.
	h.join(bob, "new")
	epoch := h.position("new").Epoch
	if err := h.Join(context.Background(), alice, hub.JoinRequest{Room: "new", Recover: true, Epoch: epoch}); err != nil {
		t.Fatal(err)
	}
	if got := alice.take(t); got != "joined new [alice bob] seq 0 recovered true" {
		t.Errorf("alice got %q", got)
	}
}

// gatedBroker blocks the next History call, after it has read the room (or,
// armed with before, before it reads), until release is closed.
type gatedBroker struct {
	hub.Broker
	mu      sync.Mutex
	armed   bool
	before  bool
	entered chan struct{}
	release chan struct{}
}

func (b *gatedBroker) arm() { b.armAt(false) }

func (b *gatedBroker) armAt(before bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed, b.before, b.entered, b.release = true, before, make(chan struct{}), make(chan struct{})
}

func (b *gatedBroker) History(ctx context.Context, room string, q hub.HistoryQuery) (hub.HistoryPage, error) {
	b.mu.Lock()
	armed, before := b.armed, b.before
	b.armed = false
	b.mu.Unlock()
	if armed && before {
		close(b.entered)
		<-b.release
	}
	page, err := b.Broker.History(ctx, room, q)
	if armed && !before {
		close(b.entered)
		<-b.release
	}
	return page, err
}

// gatedPresence fails the Members calls while failMembers is set.
type gatedPresence struct {
	hub.Presence
	mu          sync.Mutex
	failMembers error
}

func (p *gatedPresence) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failMembers = err
}

func (p *gatedPresence) Members(ctx context.Context, room, after string, limit int) (hub.MemberPage, error) {
	p.mu.Lock()
	err := p.failMembers
	p.mu.Unlock()
	if err != nil {
		return hub.MemberPage{}, err
	}
	return p.Presence.Members(ctx, room, after, limit)
}

func newGatedHub(t testing.TB, cfg hub.Config) (*testHub, *gatedBroker, *gatedPresence) {
	mem := memorybroker.New(memorybroker.Config{})
	b := &gatedBroker{Broker: mem}
	p := &gatedPresence{Presence: memorybroker.NewPresence(b)}
	h := newHubWith(t, b, p, cfg)
	h.flush = func() { flushBroker(t, mem) }
	return h, b, p
}

// TestJoinHoldsLive checks the join against messages published while it is
// answered: those published before the room's position was read come in
// the recovery (or are covered by joined's seq), those after it are held
// and follow the answer; none is lost or repeated.
func TestJoinHoldsLive(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		gate    string // where the join blocks: "before" or "after" reading the position
		recover bool
		want    string
	}{
		{"before position", "before", false, "joined lobby [alice bob] seq 5; " + msgs(6, 6)},
		{"before position recovering", "before", true, "joined lobby [alice bob] seq 5 recovered true; " + msgs(2, 6)},
		{"after position", "after", false, "joined lobby [alice bob] seq 2; " + msgs(3, 6)},
		{"after position recovering", "after", true, "joined lobby [alice bob] seq 2 recovered true; " + msgs(2, 6)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, broker, _ := newGatedHub(t, hub.Config{})
			alice, bob := h.connect("alice"), h.connect("bob")
			h.join(bob, "lobby")
			h.send(bob, "lobby", `"m"`)
			h.send(bob, "lobby", `"m"`)
			req := hub.JoinRequest{Room: "lobby", Recover: tt.recover, Since: 1, Epoch: h.position("lobby").Epoch}

			broker.armAt(tt.gate == "before")
			entered, release := broker.entered, broker.release
			done := make(chan error, 1)
			go func() { done <- h.Join(context.Background(), alice, req) }()
			<-entered
			for range 3 {
				h.send(bob, "lobby", `"m"`)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			h.send(bob, "lobby", `"m"`)
			if got := alice.take(t); got != tt.want {
				t.Errorf("alice got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestJoinBacklog checks that a session whose join holds back more live
// frames than JoinBuffer is closed as too slow.
func TestJoinBacklog(t *testing.T) {
	t.Parallel()
	h, broker, _ := newGatedHub(t, hub.Config{JoinBuffer: 3})
	alice, bob := h.connect("alice"), h.connect("bob")
	alice.manual = true
	h.join(bob, "lobby")

	broker.arm()
	done := make(chan error, 1)
	go func() { done <- h.Join(context.Background(), alice, hub.JoinRequest{Room: "lobby"}) }()
	<-broker.entered
	for range 3 {
		h.send(bob, "lobby", `"m"`)
	}
	if got := alice.closeCode(); got != 0 {
		t.Fatalf("closed with %d while within the buffer", got)
	}
	h.send(bob, "lobby", `"m"`)
	h.flush() // the fourth is held too, beyond the buffer
	close(broker.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := alice.closeCode(), protocol.CloseTryAgainLater; got != want {
		t.Errorf("closed with %d, want %d", got, want)
	}
}

// TestJoinFailure checks that a join failing half-way leaves nothing
// behind: the session is no member, the announcement is taken back, and the
// next join works.
func TestJoinFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, _, presence := newGatedHub(t, hub.Config{})
	alice, bob := h.connect("alice"), h.connect("bob")
	h.join(bob, "lobby")
	bob.take(t)

	boom := errors.New("presence down")
	presence.fail(boom)
	if err := h.Join(ctx, alice, hub.JoinRequest{Room: "lobby"}); !errors.Is(err, boom) {
		t.Fatalf("join: err = %v, want %v", err, boom)
	}
	if err := h.Join(ctx, alice, hub.JoinRequest{Room: "empty"}); !errors.Is(err, boom) {
		t.Fatalf("join: err = %v, want %v", err, boom)
	}
	presence.fail(nil)
	if _, err := h.Send(ctx, alice, "lobby", []byte(`1`), nil); !errors.Is(err, hub.ErrNotMember) {
		t.Errorf("send after a failed join: err = %v, want ErrNotMember", err)
	}
	if got, want := h.Stats().Rooms, 1; got != want {
		t.Errorf("rooms = %d, want %d", got, want)
	}
	if got := bob.take(t); got != "member_joined lobby alice; member_left lobby alice" {
		t.Errorf("bob got %q", got)
	}
	if got := alice.take(t); got != "" {
		t.Errorf("alice got %q", got)
	}

	h.join(alice, "lobby")
	if got := alice.take(t); got != "joined lobby [alice bob] seq 0" {
		t.Errorf("alice got %q", got)
	}
	if got := bob.take(t); got != "member_joined lobby alice" {
		t.Errorf("bob got %q", got)
	}
}

// TestJoinRace joins and rejoins many sessions with recovery while
// publishers publish without pause, and checks that every session sees a
// gap-free, duplicate-free run of seqs after each joined frame: from since
// when recovered, from joined's seq otherwise; that it recovers exactly
// when the ring still covers since; and that it saw the last message.
func TestJoinRace(t *testing.T) {
	t.Parallel()
	iterations := 20
	if testing.Short() {
		iterations = 5
	}
	for i := range iterations {
		if !t.Run(fmt.Sprint("iteration", i), func(t *testing.T) { joinRace(t, i) }) {
			return
		}
	}
}

// joinRequest is a join a session made, for checking its frames.
type joinRequest struct {
	recover bool
	since   uint64
}

func joinRace(t *testing.T, iteration int) {
	const (
		ring       = 32
		publishers = 3
		budget     = 2400 // messages per iteration, so that frames stay few
		joiners    = 12
		room       = "race"
	)
	ctx := context.Background()
	// Publishers that never pause can outrun a join by thousands of
	// messages; closing such a joiner is TestJoinBacklog's business.
	h := newHub(t, memorybroker.Config{HistorySize: ring}, hub.Config{JoinBuffer: 1 << 20})
	// The room's life starts with its first message; a read keeps nothing.
	if _, err := h.Publish(ctx, room, "pub0", []byte(`0`), ""); err != nil {
		t.Fatal(err)
	}
	epoch := h.position(room).Epoch

	stop := make(chan struct{})
	pubsDone := make(chan struct{})
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for range budget / publishers {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := h.Publish(ctx, room, fmt.Sprint("pub", p), []byte(`1`), ""); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { pubs.Wait(); close(pubsDone) }()
	// wait lets about n messages be published, unless the publishers are
	// done.
	wait := func(n int) {
		start := h.position(room).Seq
		for h.position(room).Seq < start+uint64(n) {
			select {
			case <-pubsDone:
				return
			case <-time.After(20 * time.Microsecond):
			}
		}
	}

	sessions := make([]*recSession, joiners)
	joins := make([][]joinRequest, joiners)
	var wg sync.WaitGroup
	for j := range sessions {
		s := h.connect(fmt.Sprint("user", j))
		s.manual = true
		sessions[j] = s
		rng := rand.New(rand.NewPCG(uint64(iteration), uint64(j)))
		wg.Go(func() {
			for round := range 3 {
				req := hub.JoinRequest{Room: room, Epoch: epoch}
				switch {
				case round > 0:
					// A reconnect: recover from the last seq seen.
					req.Recover, req.Since = true, lastSeq(t, s)
				case rng.IntN(4) > 0:
					pos := h.position(room).Seq
					req.Recover = true
					req.Since = pos - min(pos, uint64(rng.IntN(2*ring))) + uint64(rng.IntN(3))
				}
				joins[j] = append(joins[j], joinRequest{req.Recover, req.Since})
				if err := h.Join(ctx, s, req); err != nil {
					t.Error(err)
					return
				}
				wait(rng.IntN(ring))
				if round < 2 {
					if err := h.Leave(ctx, s, room); err != nil {
						t.Error(err)
						return
					}
					wait(rng.IntN(ring + ring/2)) // half the time still in the ring
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-pubsDone

	final := h.position(room)
	for j, s := range sessions {
		if got := s.closeCode(); got != 0 {
			t.Errorf("%s closed with %d", s.user, got)
		}
		checkRun(t, s, joins[j], final, ring)
	}
}

// lastSeq returns the seq of the last message s received, or of its last
// joined frame: where it would recover from after a reconnect.
func lastSeq(t testing.TB, s *recSession) uint64 {
	frames := s.all(t)
	for i := len(frames) - 1; i >= 0; i-- {
		if f := frames[i]; f.Type == "message" || f.Type == "joined" {
			return f.Seq
		}
	}
	t.Errorf("%s received nothing", s.user) // not Fatal: called off the test's goroutine
	return 0
}

// checkRun checks the frames of a session that made joins, in this order.
func checkRun(t testing.TB, s *recSession, joins []joinRequest, final hub.Position, ring uint64) {
	t.Helper()
	var next uint64
	n := 0
	for i, f := range s.all(t) {
		switch f.Type {
		case "joined":
			if n == len(joins) {
				t.Fatalf("%s: frame %d: joined %d times, joins made: %d", s.user, i, n+1, len(joins))
			}
			req := joins[n]
			n++
			coverable := req.since <= f.Seq && f.Seq-req.since <= ring && f.Epoch == final.Epoch
			switch {
			case !req.recover && f.Recovered != nil:
				t.Fatalf("%s: frame %d: %s without recovery asked", s.user, i, f)
			case req.recover && (f.Recovered == nil || *f.Recovered != coverable):
				t.Fatalf("%s: frame %d: %s, since %d: want recovered %t", s.user, i, f, req.since, coverable)
			case req.recover && *f.Recovered:
				next = req.since + 1
			default:
				next = f.Seq + 1
			}
		case "message":
			if f.Seq != next {
				t.Fatalf("%s: frame %d: message %d, want %d (joins %v)", s.user, i, f.Seq, next, joins)
			}
			next++
		case "member_joined", "member_left":
		default:
			t.Fatalf("%s: frame %d: unexpected %s", s.user, i, f)
		}
	}
	if n != len(joins) {
		t.Fatalf("%s: %d joined frames, want %d", s.user, n, len(joins))
	}
	if next != final.Seq+1 {
		t.Fatalf("%s: last message %d, want %d", s.user, next-1, final.Seq)
	}
}

// TestJoinReplayCap: a gap whose messages exceed MaxReplayBytes is not
// replayed at once; the client is told recovered:false and pages history.
func TestJoinReplayCap(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{HistorySize: 50}, hub.Config{MaxReplayBytes: 400})
	bob := h.connect("bob")
	h.join(bob, "lobby")
	for range 8 {
		h.send(bob, "lobby", `"m"`)
	}
	epoch := h.position("lobby").Epoch
	join := func(since uint64) string {
		s := h.connect("alice")
		if err := h.Join(context.Background(), s, hub.JoinRequest{Room: "lobby", Recover: true, Since: since, Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
		return s.take(t)
	}
	// Each message frame is about 75 bytes: three fit in 400, eight do not.
	if got, want := join(5), "joined lobby [alice bob] seq 8 recovered true; "+msgs(6, 8); got != want {
		t.Errorf("small gap: got %s, want %s", got, want)
	}
	if got, want := join(0), "joined lobby [alice bob] seq 8 recovered false"; got != want {
		t.Errorf("large gap: got %s, want %s", got, want)
	}
}
