package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// tallySession is a Session that counts the frames and bytes it gets by
// type, keeping only its joined answer and its last frame.
type tallySession struct {
	id, user string

	mu     sync.Mutex
	frames map[string]int
	bytes  int
	joined []byte
	last   []byte
}

func (s *tallySession) ID() string        { return s.id }
func (s *tallySession) User() string      { return s.user }
func (s *tallySession) Close(int, string) {}

func (s *tallySession) Enqueue(frame []byte) {
	// Every server frame starts with its type.
	typ, _, _ := bytes.Cut(bytes.TrimPrefix(frame, []byte(`{"type":"`)), []byte(`"`))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frames == nil {
		s.frames = make(map[string]int)
	}
	s.frames[string(typ)]++
	s.bytes += len(frame)
	if string(typ) == protocol.TypeJoined {
		s.joined = bytes.Clone(frame)
	}
	s.last = frame
}

func (s *tallySession) lastFrame() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// TestJoinStormFrames: 5 000 users joining one room get O(N) frames in
// all: a joined each, listing at most the first 100 members, and member
// events only while the room had at most protocol.MemberEventsMax members.
// Before member events were thinned and joined paged, the same storm sent
// N²/2 member events (12.5 million) and joined frames of N²/2 names.
func TestJoinStormFrames(t *testing.T) {
	t.Parallel()
	const n, max = 5000, protocol.MemberEventsMax
	ctx := context.Background()
	b := memorybroker.New(memorybroker.Config{})
	h := newHubWith(t, b, memorybroker.NewPresence(b), hub.Config{})
	sessions := make([]*tallySession, n)
	for i := range sessions {
		s := &tallySession{id: fmt.Sprint("s", i), user: fmt.Sprintf("user%05d", i)}
		sessions[i] = s
		if err := h.Connect(ctx, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Disconnect(s) })
		if err := h.Join(ctx, s, hub.JoinRequest{Room: "big"}); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
	// A message fences the room: once every member has it, every member
	// event before it was delivered.
	if _, err := h.Publish(ctx, "big", "fence", json.RawMessage(`"fence"`), ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range sessions {
		for !bytes.Contains(s.lastFrame(), []byte(`"fence"`)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never got the fence message", s.user)
			}
			time.Sleep(time.Millisecond)
		}
	}

	var events, joinedFrames, joinedBytes int
	for i, s := range sessions {
		s.mu.Lock()
		events += s.frames[protocol.TypeMemberJoined] + s.frames[protocol.TypeMemberLeft]
		joinedFrames += s.frames[protocol.TypeJoined]
		joinedBytes += len(s.joined)
		joined := s.joined
		s.mu.Unlock()
		if i == n-1 {
			checkLastJoined(t, joined, n)
		}
	}
	// Join k (1-based) is announced while k <= max+1, to the k-1 members
	// before it and, since delivery lags the joins, to some joiners after it
	// (a late member_joined of someone the joiner's list already has): at
	// most n frames per announced join, so the storm stays linear in n.
	if least, most := max*(max+1)/2, (max+1)*n; events < least || events > most {
		t.Errorf("%d member events in all, want between %d and %d", events, least, most)
	}
	if joinedFrames != n {
		t.Errorf("%d joined frames, want %d", joinedFrames, n)
	}
	if limit := n * (protocol.JoinedMembers*len(`"user00000",`) + 200); joinedBytes > limit {
		t.Errorf("joined frames hold %d bytes in all, want at most %d", joinedBytes, limit)
	}
}

// checkLastJoined checks the joined answer of the n-th joiner of a room
// larger than a page: the first page, the count, where to page on.
func checkLastJoined(t *testing.T, raw []byte, n int) {
	t.Helper()
	var j protocol.Joined
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatalf("joined %s: %v", raw, err)
	}
	if len(j.Members) != protocol.JoinedMembers || j.MemberCount != n || j.MembersNext != j.Members[len(j.Members)-1] {
		t.Errorf("last joined lists %d members, count %d, next %q; want %d, %d, the last listed",
			len(j.Members), j.MemberCount, j.MembersNext, protocol.JoinedMembers, n)
	}
	if !slices.IsSorted(j.Members) || j.Members[0] != "user00000" {
		t.Errorf("last joined lists %q..., want the first members sorted", j.Members[:3])
	}
}

// TestJoinedPagesOn: in a room larger than a joined page, joined lists the
// first page with the count and members_next, and MemberPage after it
// lists the rest; a rejoin answers the same way. A small room's joined is
// the whole list, without members_next.
func TestJoinedPagesOn(t *testing.T) {
	t.Parallel()
	const n = protocol.JoinedMembers + 30
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	var want []string
	for i := range n {
		user := fmt.Sprintf("u%03d", n-1-i) // joining in reverse order
		want = append(want, fmt.Sprintf("u%03d", i))
		h.join(h.connect(user), "r")
	}
	s := h.connect("zed")
	h.join(s, "r")
	want = append(want, "zed")
	j := lastJoined(t, s)
	if !slices.Equal(j.Members, want[:protocol.JoinedMembers]) || j.MemberCount != n+1 || j.MembersNext != want[protocol.JoinedMembers-1] {
		t.Fatalf("joined lists %d members (%q…), count %d, next %q", len(j.Members), j.Members[:2], j.MemberCount, j.MembersNext)
	}
	page, err := h.MemberPage(context.Background(), "r", j.MembersNext, protocol.MaxPresenceLimit)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(j.Members, page.Users...); !slices.Equal(got, want) || page.More || page.Count != n+1 {
		t.Errorf("joined and the next page list %d members, more %v, count %d; want %d", len(got), page.More, page.Count, len(want))
	}
	h.join(s, "r") // a rejoin
	if again := lastJoined(t, s); !slices.Equal(again.Members, j.Members) || again.MemberCount != n+1 || again.MembersNext != j.MembersNext {
		t.Errorf("rejoin answered %d members, count %d, next %q", len(again.Members), again.MemberCount, again.MembersNext)
	}

	small := h.connect("amy")
	h.join(small, "small")
	if j := lastJoined(t, small); !slices.Equal(j.Members, []string{"amy"}) || j.MemberCount != 1 || j.MembersNext != "" {
		t.Errorf("small room joined = %+v", j)
	}
}

// TestMemberPageLimits: MemberPage clamps its limit to 1 to
// protocol.MaxPresenceLimit.
func TestMemberPageLimits(t *testing.T) {
	t.Parallel()
	h := newHub(t, memorybroker.Config{}, hub.Config{})
	for _, u := range []string{"ann", "bob"} {
		h.join(h.connect(u), "r")
	}
	for _, tt := range []struct {
		limit int
		want  []string
		more  bool
	}{{0, []string{"ann"}, true}, {-5, []string{"ann"}, true}, {1 << 30, []string{"ann", "bob"}, false}} {
		page, err := h.MemberPage(context.Background(), "r", "", tt.limit)
		if err != nil || !slices.Equal(page.Users, tt.want) || page.More != tt.more || page.Count != 2 {
			t.Errorf("MemberPage(limit %d) = %+v, %v", tt.limit, page, err)
		}
	}
}

// lastJoined returns the last joined frame s got.
func lastJoined(t *testing.T, s *recSession) protocol.Joined {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.frames) - 1; i >= 0; i-- {
		var j protocol.Joined
		if json.Unmarshal(s.frames[i], &j) == nil && j.Type == protocol.TypeJoined {
			return j
		}
	}
	t.Fatalf("%s got no joined frame", s.user)
	return protocol.Joined{}
}
