package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// A soak user is one simulated person with one connection at a time: a
// driver goroutine acts (one request at a time, waiting for its answer) and
// reconnects, and a reader goroutine per connection records every frame
// that arrives. The record is what the checker proves the invariants on.

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

// soakSegment is one uninterrupted membership of a user in one epoch of a
// room: from a join answer (or an epoch frame) until a leave, an epoch
// frame or a rejoin answering recovered:false. A rejoin answering
// recovered:true continues it.
type soakSegment struct {
	user, room, epoch string
	from              uint64    // the segment covers the seqs after from
	joinSent          time.Time // when the join was sent (zero after an epoch frame)
	start             time.Time // when the joined answer or epoch frame arrived
	end               time.Time // zero while open
	reason            string    // why it ended: "left", "epoch", "recovered:false"
	got               []uint64  // seqs received live or replayed, in order
	filled            []uint64  // seqs fetched from history after recovered:false
}

// soakRecord is everything a user observed.
type soakRecord struct {
	deliveries []soakDelivery
	sends      []soakSend
	segments   []*soakSegment
	seen       []memberSeen   // member events received
	dms        map[string]int // DMs received, by key
	anomalies  []string       // frames that should not have arrived
	n          soakCounts
}

type soakCounts struct {
	connects, recoveries, recoveredFalse, unfillable, epochFrames int
	sent, typing, typingGot, dmsSent, dmsGot, timeouts            int
	errors                                                        map[string]int // error frames, by code
	closes                                                        map[string]int // connections lost, by close code
}

// soakDelivery is one message frame received (or read from history).
type soakDelivery struct {
	room, epoch string
	seq         uint64
	from, key   string // key: the data's "k", unique per send
	conn        int
	via         string // "live", "replay", "fill" (after recovered:false) or "history"
	at          time.Time
}

// soakSend is an acknowledged send.
type soakSend struct {
	user, room, key string
	seq             uint64
	epoch           string // the ack's epoch, when acks carry one
	senderEpoch     string // the sender's epoch of the room when the ack arrived
	sentAt, ackAt   time.Time
}

// memberSeen is a member_joined or member_left a user received.
type memberSeen struct {
	room, user string
	joined     bool
	at         time.Time
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

// historyDeliveriesLocked records a history answer's messages.
func (u *soakUser) historyDeliveriesLocked(m map[string]any, via string) []soakDelivery {
	epoch, _ := m["epoch"].(string)
	msgs, _ := m["messages"].([]any)
	var out []soakDelivery
	for _, x := range msgs {
		msg, _ := x.(map[string]any)
		d := soakDelivery{room: str(msg["room"]), epoch: epoch, seq: seqOf(msg), from: str(msg["from"]),
			key: dataKey(msg), conn: u.connNo, via: via, at: time.Now()}
		out = append(out, d)
	}
	u.rec.deliveries = append(u.rec.deliveries, out...)
	return out
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

// read records the frames of one connection until it closes.
func (u *soakUser) read(c *wsClient, no int, done chan struct{}) {
	defer close(done)
	for b := range c.frames {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			u.anomaly("frame %s is not JSON", b)
			continue
		}
		u.handle(m, no)
	}
	u.lost(c)
}

// lost records the end of the current connection: its rooms are to be
// rejoined and its requests get no answer.
func (u *soakUser) lost(c *wsClient) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, st := range u.rooms {
		st.live, st.lostAt = false, now
	}
	for id, req := range u.pending {
		req.reply <- nil
		delete(u.pending, id)
	}
	if u.conn == c {
		u.conn = nil
	}
	if u.sim.closing.Load() {
		return
	}
	code := "abnormal"
	if st := websocket.CloseStatus(c.err); st != -1 {
		code = fmt.Sprint(int(st))
	}
	u.rec.n.closes[code]++
}

func (u *soakUser) anomaly(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rec.anomalies = append(u.rec.anomalies, u.name+": "+fmt.Sprintf(format, args...))
}

// handle records one frame.
func (u *soakUser) handle(m map[string]any, conn int) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	var req *soakRequest
	if id, ok := m["id"].(string); ok {
		if req = u.pending[id]; req != nil {
			delete(u.pending, id)
		}
	}
	switch m["type"] {
	case "joined":
		if req != nil {
			u.onJoinedLocked(req, m, now)
		}
	case "left":
		if req != nil {
			u.onLeftLocked(req)
		}
	case "message":
		u.onMessageLocked(m, conn, now)
	case "epoch":
		u.onEpochLocked(m, now)
	case "member_joined", "member_left":
		u.onMemberLocked(m, now)
	case "ack":
		if req != nil && req.kind == "send" {
			u.onAckLocked(req, m, now)
		} else if req != nil {
			u.rec.n.dmsSent++
		}
	case "dm":
		if k := dataKey(m); k != "" {
			u.rec.dms[k]++
			u.rec.n.dmsGot++
		}
	case "typing":
		u.rec.n.typingGot++
	case "error":
		u.onErrorLocked(req, m, now)
	}
	if req != nil {
		req.reply <- m
	}
}

// onErrorLocked counts an error frame. not_member is an anomaly: the user
// only sends, types in and leaves rooms it is in.
func (u *soakUser) onErrorLocked(req *soakRequest, m map[string]any, now time.Time) {
	code := str(m["code"])
	u.rec.n.errors[code]++
	if code != "not_member" {
		return
	}
	what := str(m["id"])
	if req != nil {
		what = fmt.Sprintf("%s %s sent at %s", req.kind, req.room, u.sim.at(req.sentAt))
	}
	u.rec.anomalies = append(u.rec.anomalies, fmt.Sprintf("%s got not_member at %s for %s, a room it had joined (%s)",
		u.name, u.sim.at(now), what, u.roomHistoryLocked(req)))
}

// roomHistoryLocked describes the user's segments in the request's room
// (in every room when req is nil).
func (u *soakUser) roomHistoryLocked(req *soakRequest) string {
	room := ""
	if req != nil {
		room = req.room
	}
	var parts []string
	for _, g := range u.rec.segments {
		if g.room == room || req == nil {
			parts = append(parts, u.sim.describeSegment(g))
		}
	}
	return strings.Join(parts, "; ")
}

// onJoinedLocked takes a join answer: a recovered rejoin continues the
// room's segment, any other answer starts one (ending the old one, whose
// gap is then filled from history when possible).
func (u *soakUser) onJoinedLocked(req *soakRequest, m map[string]any, now time.Time) {
	epoch, seq := str(m["epoch"]), seqOf(m)
	st := u.rooms[req.room]
	if st == nil {
		st = &soakRoom{}
		u.rooms[req.room] = st
	}
	st.live = true
	st.members = map[string]bool{}
	for _, name := range strList(m["members"]) {
		st.members[name] = true
	}
	if req.recover && m["recovered"] == true && st.seg != nil && st.seg.epoch == epoch {
		u.rec.n.recoveries++
		st.replayTo = seq
		return
	}
	if !req.recover && st.seg != nil {
		u.rec.anomalies = append(u.rec.anomalies, fmt.Sprintf("%s joined %s, which it was in already", u.name, req.room))
		st.seg.end, st.seg.reason = now, "left"
	}
	if req.recover && st.seg != nil {
		u.rec.n.recoveredFalse++
		st.seg.end, st.seg.reason = st.lostAt, "recovered:false"
		st.fill, st.fillFrom = st.seg, st.last
	}
	st.seg = u.newSegmentLocked(req.room, epoch, seq, req.sentAt, now)
	st.epoch, st.last, st.replayTo = epoch, seq, 0
}

func (u *soakUser) newSegmentLocked(room, epoch string, from uint64, joinSent, start time.Time) *soakSegment {
	seg := &soakSegment{user: u.name, room: room, epoch: epoch, from: from, joinSent: joinSent, start: start}
	u.rec.segments = append(u.rec.segments, seg)
	return seg
}

func (u *soakUser) onLeftLocked(req *soakRequest) {
	if st := u.rooms[req.room]; st != nil {
		st.seg.end, st.seg.reason = req.sentAt, "left"
		delete(u.rooms, req.room)
	}
}

func (u *soakUser) onMessageLocked(m map[string]any, conn int, now time.Time) {
	room := str(m["room"])
	d := soakDelivery{room: room, seq: seqOf(m), from: str(m["from"]), key: dataKey(m), conn: conn, via: "live", at: now}
	st := u.rooms[room]
	if st == nil || !st.live {
		u.rec.anomalies = append(u.rec.anomalies, fmt.Sprintf("%s got seq %d of room %s, which it is not in", u.name, d.seq, room))
		return
	}
	d.epoch = st.epoch
	if st.replayTo > 0 && d.seq <= st.replayTo {
		d.via = "replay"
	} else {
		st.replayTo = 0
	}
	st.last = max(st.last, d.seq)
	st.seg.got = append(st.seg.got, d.seq)
	u.rec.deliveries = append(u.rec.deliveries, d)
}

// onEpochLocked takes an epoch frame: the room's history restarted, the
// segment in the old epoch ends and one from seq 0 starts.
func (u *soakUser) onEpochLocked(m map[string]any, now time.Time) {
	room, epoch := str(m["room"]), str(m["epoch"])
	st := u.rooms[room]
	if st == nil || !st.live || st.epoch == epoch {
		return
	}
	u.rec.n.epochFrames++
	st.seg.end, st.seg.reason = now, "epoch"
	st.seg = u.newSegmentLocked(room, epoch, 0, time.Time{}, now)
	st.epoch, st.last, st.replayTo = epoch, 0, 0
}

func (u *soakUser) onMemberLocked(m map[string]any, now time.Time) {
	room, user, joined := str(m["room"]), str(m["user"]), m["type"] == "member_joined"
	u.rec.seen = append(u.rec.seen, memberSeen{room: room, user: user, joined: joined, at: now})
	if st := u.rooms[room]; st != nil && st.live {
		if joined {
			st.members[user] = true
		} else {
			delete(st.members, user)
		}
	}
}

func (u *soakUser) onAckLocked(req *soakRequest, m map[string]any, now time.Time) {
	s := soakSend{user: u.name, room: req.room, key: req.id, seq: seqOf(m), epoch: str(m["epoch"]), sentAt: req.firstAt, ackAt: now}
	if st := u.rooms[req.room]; st != nil {
		s.senderEpoch = st.epoch
	}
	u.rec.sends = append(u.rec.sends, s)
	u.rec.n.sent++
}

// behind says why the user is not settled: not connected, not in a room it
// wants, or a room's last message not received yet ("" when settled).
func (u *soakUser) behind(pos map[string]roomPos) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn == nil {
		return "not connected"
	}
	for room, st := range u.rooms {
		p := pos[room]
		switch {
		case !st.live:
			return "not rejoined to " + room
		case p.seq > 0 && (st.epoch != p.epoch || st.last != p.seq):
			return fmt.Sprintf("%s at %s/%d, the room at %s/%d", room, st.epoch, st.last, p.epoch, p.seq)
		}
	}
	return ""
}

func (u *soakUser) currentNode() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.node
}

// tracked returns the user's member list of each room it is in.
func (u *soakUser) tracked() map[string][]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string][]string{}
	for room, st := range u.rooms {
		var names []string
		for n := range st.members {
			names = append(names, n)
		}
		slices.Sort(names)
		out[room] = names
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func strList(v any) []string {
	xs, _ := v.([]any)
	var out []string
	for _, x := range xs {
		out = append(out, str(x))
	}
	return out
}

// dataKey returns the "k" of a frame's data.
func dataKey(m map[string]any) string {
	d, _ := m["data"].(map[string]any)
	return str(d["k"])
}
