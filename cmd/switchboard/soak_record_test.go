package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// What a soak user records, and how: the reader goroutine of each
// connection takes every frame, keeps the user's state of its rooms
// (epoch, last seq, member list) and appends to its record what the
// checker needs: deliveries, acknowledged sends, membership segments and
// member events.

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
	anomalies  []string       // frames that should not have arrived, requests unanswered
	nodes      []string       // the node of each connection
	n          soakCounts
}

type soakCounts struct {
	connects, recoveries, recoveredFalse, unfillable, epochFrames int
	typing, typingGot, dmsSent, dmsGot, timeouts                  int
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
