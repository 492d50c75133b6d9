package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// A soak user is one simulated person with one connection at a time: a
// driver goroutine acts (one request at a time, waiting for its answer) and
// reconnects, and a reader goroutine per connection records every frame
// that arrives (soak_record_test.go). The record is what the checker proves
// the invariants on.

// soakUser is one simulated user. Fields below mu are guarded by it; rng
// and retry belong to the driver.
type soakUser struct {
	sim  *soakSim
	idx  int
	name string
	rng  *rand.Rand

	retry *soakRetry // a send to repeat with the same id

	mu      sync.Mutex
	conn    *wsClient     // nil while disconnected
	connNo  int           // connections made so far
	done    chan struct{} // closed when the current connection's reader exits
	node    string        // the node of the current connection
	rooms   map[string]*soakRoom
	pending map[string]*soakRequest
	ids     int
	rec     soakRecord
}

// soakRoom is a user's state of a room it is in (or has to rejoin).
type soakRoom struct {
	live     bool // joined on the current connection
	epoch    string
	last     uint64          // the last seq received (or the joined seq)
	replayTo uint64          // after a recovered join: messages up to it are the replay
	members  map[string]bool // joined.members + member_joined - member_left
	seg      *soakSegment
	lostAt   time.Time    // when the connection the room was live on was lost
	fill     *soakSegment // a segment ended by recovered:false, to fill from history
	fillFrom uint64
}

// soakRequest is a request waiting for its answer.
type soakRequest struct {
	id, kind, room string
	recover        bool
	sentAt         time.Time // this attempt
	firstAt        time.Time // a send's first attempt with this id
	reply          chan map[string]any
}

// soakRetry is a send whose fate is unknown, to repeat with its id.
type soakRetry struct {
	room, id string
	firstAt  time.Time
	attempts int
}

func newSoakUser(s *soakSim, idx int, rng *rand.Rand) *soakUser {
	return &soakUser{
		sim: s, idx: idx, name: fmt.Sprintf("u%02d", idx), rng: rng,
		rooms: map[string]*soakRoom{}, pending: map[string]*soakRequest{},
		rec: soakRecord{dms: map[string]int{}, n: soakCounts{errors: map[string]int{}, closes: map[string]int{}}},
	}
}

// drive is the user's life: join one or two rooms, act until the traffic
// stops, then make sure it is connected and in all its rooms.
func (u *soakUser) drive() {
	rooms := u.sim.rooms
	first := []string{rooms[u.idx%len(rooms)]}
	if u.rng.IntN(2) == 0 {
		first = append(first, rooms[(u.idx+1)%len(rooms)])
	}
	backoff := 0
	for {
		select {
		case <-u.sim.stop:
			u.settle()
			return
		default:
		}
		if !u.ready() {
			backoff++
			u.pause(time.Duration(50<<min(backoff, 4))*time.Millisecond + u.jitter(100))
			continue
		}
		backoff = 0
		if len(first) > 0 {
			u.join(first[0])
			first = first[1:]
		} else {
			u.act()
		}
		u.pause(200*time.Millisecond + u.jitter(400))
	}
}

func (u *soakUser) jitter(ms int) time.Duration {
	return time.Duration(u.rng.IntN(ms)) * time.Millisecond
}

// pause sleeps for d, or less when the traffic stops.
func (u *soakUser) pause(d time.Duration) {
	select {
	case <-u.sim.stop:
	case <-time.After(d):
	}
}

// settle reconnects and rejoins until done, for at most 10 s.
func (u *soakUser) settle() {
	deadline := time.Now().Add(10 * time.Second)
	for !u.ready() && time.Now().Before(deadline) {
		time.Sleep(100*time.Millisecond + u.jitter(100))
	}
}

// ready connects if needed, rejoins the rooms not live, and repeats an
// unsettled send. It reports whether the user is connected and in all its
// rooms.
func (u *soakUser) ready() bool {
	if !u.connected() && !u.connect() {
		return false
	}
	for _, room := range u.roomsToRejoin() {
		if !u.rejoin(room) {
			return false
		}
	}
	if r := u.retry; r != nil {
		u.retry = nil
		if slices.Contains(u.liveRooms(), r.room) { // else it left the room since
			u.send(r)
		}
	}
	return u.connected()
}

func (u *soakUser) connected() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conn != nil
}

// connect dials a live node, its own first (users are spread over the
// nodes), another when that one is gone.
func (u *soakUser) connect() bool {
	nodes := u.sim.cl.live()
	if len(nodes) == 0 {
		return false
	}
	nd := nodes[u.rng.IntN(len(nodes))]
	if own := u.sim.cl.nodes[u.idx%len(u.sim.cl.nodes)]; own.alive.Load() {
		nd = own
	}
	c, err := dialErr(u.sim.t, nd.base, "?name="+u.name, nil)
	if err != nil {
		return false
	}
	done := make(chan struct{})
	u.mu.Lock()
	u.conn, u.done, u.node = c, done, nd.id
	u.connNo++
	u.rec.n.connects++
	u.rec.nodes = append(u.rec.nodes, nd.id)
	no := u.connNo
	u.mu.Unlock()
	go u.read(c, no, done)
	return true
}

// close closes the connection and waits for its reader.
func (u *soakUser) close() {
	u.mu.Lock()
	c, done := u.conn, u.done
	u.mu.Unlock()
	if c != nil {
		c.c.CloseNow()
		<-done
	}
}

func (u *soakUser) roomsToRejoin() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for room, st := range u.rooms {
		if !st.live {
			out = append(out, room)
		}
	}
	sort.Strings(out)
	return out
}

// rejoin joins a room again after a reconnect, recovering from the last
// seq received; after recovered:false it fills the gap from history.
func (u *soakUser) rejoin(room string) bool {
	u.mu.Lock()
	st := u.rooms[room]
	frame := joinSince(room, st.last, st.epoch)
	u.mu.Unlock()
	req := &soakRequest{kind: "join", room: room, recover: true}
	m := u.do(req, func(id string) string { return withID(frame, id) })
	if m == nil || m["type"] != "joined" {
		return false
	}
	u.fillGap(room)
	return true
}

// withID adds "id" to a frame.
func withID(frame, id string) string {
	return fmt.Sprintf(`{"id":%q,%s`, id, frame[1:])
}

// fillGap reads from history what a rejoin answering recovered:false could
// not replay, when the room's epoch is still the one of the ended segment.
func (u *soakUser) fillGap(room string) {
	u.mu.Lock()
	st := u.rooms[room]
	seg, since, top := st.fill, st.fillFrom, st.seg.from
	sameEpoch := seg != nil && seg.epoch == st.epoch
	st.fill = nil
	if seg != nil && !sameEpoch {
		u.rec.n.unfillable++
	}
	u.mu.Unlock()
	if !sameEpoch {
		return
	}
	before := top + 1
	for before > since+1 {
		req := &soakRequest{kind: "history", room: room}
		m := u.do(req, func(id string) string {
			return fmt.Sprintf(`{"type":"history","room":%q,"before":%d,"limit":100,"id":%q}`, room, before, id)
		})
		msgs, _ := m["messages"].([]any)
		if m == nil || m["type"] != "history" || m["epoch"] != seg.epoch || len(msgs) == 0 {
			u.mu.Lock()
			u.rec.n.unfillable++
			u.mu.Unlock()
			return
		}
		u.mu.Lock()
		for _, d := range u.historyDeliveriesLocked(m, "fill") {
			if d.seq > since {
				seg.filled = append(seg.filled, d.seq)
			}
		}
		u.mu.Unlock()
		before = seqOf(msgs[0].(map[string]any))
	}
}

// act does one random action.
func (u *soakUser) act() {
	joined := u.liveRooms()
	room := u.sim.rooms[u.rng.IntN(len(u.sim.rooms))]
	p := u.rng.Float64()
	switch {
	case len(joined) == 0 || (p >= 0.72 && p < 0.84 && len(joined) < 3):
		if !slices.Contains(joined, room) {
			u.join(room)
		}
	case p < 0.45:
		u.send(&soakRetry{room: joined[u.rng.IntN(len(joined))], id: u.newID()})
	case p < 0.57:
		u.typing(joined[u.rng.IntN(len(joined))])
	case p < 0.72:
		u.dm(fmt.Sprintf("u%02d", (u.idx+1+u.rng.IntN(soakUsers-1))%soakUsers))
	case p < 0.92:
		u.leave(joined[u.rng.IntN(len(joined))])
	default:
		u.query(room)
	}
}

func (u *soakUser) liveRooms() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for room, st := range u.rooms {
		if st.live {
			out = append(out, room)
		}
	}
	sort.Strings(out)
	return out
}

func (u *soakUser) newID() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ids++
	return fmt.Sprintf("%s-%d", u.name, u.ids)
}

// join joins a room without recovery.
func (u *soakUser) join(room string) {
	u.do(&soakRequest{kind: "join", room: room}, func(id string) string {
		return fmt.Sprintf(`{"type":"join","room":%q,"id":%q}`, room, id)
	})
}

func (u *soakUser) leave(room string) {
	u.do(&soakRequest{kind: "leave", room: room}, func(id string) string {
		return fmt.Sprintf(`{"type":"leave","room":%q,"id":%q}`, room, id)
	})
}

// send sends a message whose data carries its id as "k". When the answer
// is unavailable or the connection was lost, it is repeated with the same
// id (at most 3 times), as docs/protocol.md advises.
func (u *soakUser) send(r *soakRetry) {
	if r.firstAt.IsZero() {
		r.firstAt = time.Now()
	}
	r.attempts++
	req := &soakRequest{kind: "send", room: r.room, firstAt: r.firstAt}
	m := u.doID(req, r.id, fmt.Sprintf(`{"type":"send","room":%q,"data":{"k":%q},"id":%q}`, r.room, r.id, r.id))
	if m != nil && (m["type"] == "ack" || m["code"] != "unavailable") {
		return
	}
	if r.attempts < 3 {
		u.retry = r
	}
}

func (u *soakUser) typing(room string) {
	u.mu.Lock()
	c := u.conn
	u.rec.n.typing++
	u.mu.Unlock()
	if c != nil { // typing is answered only when it fails: its id names the room
		c.write(fmt.Sprintf(`{"type":"typing","room":%q,"id":"typing %s at %s"}`, room, room, u.sim.at(time.Now())))
	}
}

func (u *soakUser) dm(to string) {
	u.do(&soakRequest{kind: "dm"}, func(id string) string {
		return fmt.Sprintf(`{"type":"dm","to":%q,"data":{"k":%q},"id":%q}`, to, id, id)
	})
}

// query asks for a room's presence or its last messages; the history
// answer is kept for the order check.
func (u *soakUser) query(room string) {
	if u.rng.IntN(2) == 0 {
		u.do(&soakRequest{kind: "presence", room: room}, func(id string) string {
			return fmt.Sprintf(`{"type":"presence","room":%q,"id":%q}`, room, id)
		})
		return
	}
	m := u.do(&soakRequest{kind: "history", room: room}, func(id string) string {
		return fmt.Sprintf(`{"type":"history","room":%q,"limit":20,"id":%q}`, room, id)
	})
	if m != nil && m["type"] == "history" {
		u.mu.Lock()
		u.historyDeliveriesLocked(m, "history")
		u.mu.Unlock()
	}
}

// do sends the frame built for a fresh request id and waits for its answer.
func (u *soakUser) do(req *soakRequest, frame func(id string) string) map[string]any {
	id := u.newID()
	return u.doID(req, id, frame(id))
}

// doID sends frame as request id and returns its answer, or nil when the
// connection is lost or the answer takes longer than soakReplyTimeout (the
// connection is then dropped, to reconnect).
func (u *soakUser) doID(req *soakRequest, id, frame string) map[string]any {
	req.id, req.sentAt, req.reply = id, time.Now(), make(chan map[string]any, 1)
	u.mu.Lock()
	c := u.conn
	if c == nil {
		u.mu.Unlock()
		return nil
	}
	u.pending[id] = req
	u.mu.Unlock()
	if err := c.write(frame); err != nil {
		c.c.CloseNow()
		return <-req.reply
	}
	select {
	case m := <-req.reply:
		return m
	case <-time.After(soakReplyTimeout):
		u.mu.Lock()
		u.rec.n.timeouts++
		u.rec.anomalies = append(u.rec.anomalies, fmt.Sprintf("%s: no answer to %s in %v", u.name, frame, soakReplyTimeout))
		u.mu.Unlock()
		c.c.CloseNow()
		return <-req.reply
	}
}
