package hub

import (
	"context"
	"sync"

	"github.com/switchboard-chat/switchboard/protocol"
)

// room is the local state of one room: the sessions in it on this node.
type room struct {
	name string
	refs int // holders: members and joins in flight; guarded by Hub.mu

	// opMu serializes membership changes, which do I/O: subscribing the
	// node to the room and adding or removing presence entries, so that two
	// sessions of one user joining and leaving at once cannot reorder them.
	opMu  sync.Mutex
	local int            // sessions in the room; guarded by opMu
	users map[string]int // sessions per user; guarded by opMu

	// mu guards members and list and is held while a frame is fanned out,
	// so that a session sees the room's frames in delivery order.
	mu      sync.Mutex
	members map[Session]*member
	// list holds the members of members, for the fan-out to walk: a slice
	// is walked several times faster than a map.
	list  []*member
	epoch string // epoch of the last publication delivered, or of the first join
}

// member is one session in a room. While joining, frames delivered to the
// room are held back until the joined answer (and any recovered messages)
// have been queued.
type member struct {
	s       Session
	user    string // s.User(), kept so that the fan-out makes no call for it
	i       int    // index in room.list
	joining bool
	// banned reports that a ban reached the member while it was joining:
	// its join fails (moderation.go).
	banned bool
	// present reports that the session is counted in room.users (its
	// user's presence was added).
	present bool
	held    []roomFrame
	// epoch and last are the position the member got up to: the joined
	// answer's, then that of each publication sent. A broker may deliver a
	// publication the answer or the replay already covered, after the
	// member went live: its delivery lags the history the join read.
	epoch string
	last  uint64
}

// admit reports whether f is to be sent to the live member: an event always,
// a publication unless it is at or below the member's position in the same
// epoch. It records an admitted publication as the member's position.
func (m *member) admit(f roomFrame) bool {
	if f.seq == 0 {
		return true
	}
	if f.epoch == m.epoch && f.seq <= m.last {
		return false
	}
	m.epoch, m.last = f.epoch, f.seq
	return true
}

// roomFrame is a frame delivered to a room: a publication (seq and epoch
// set) or an event (seq 0), sent to the live members at once and held for
// the joining ones.
type roomFrame struct {
	seq     uint64
	epoch   string
	exclude string
	only    string // when not "", the only user whose sessions get the frame
	frame   []byte
}

// acquire returns the room, creating it, and takes a hold on it.
func (h *Hub) acquire(name string) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		r = &room{name: name, users: make(map[string]int), members: make(map[Session]*member)}
		h.rooms[name] = r
	}
	r.refs++
	return r
}

// release drops a hold on the room, forgetting it when none is left.
func (h *Hub) release(r *room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.refs--; r.refs == 0 {
		delete(h.rooms, r.name)
	}
}

// lookup returns the room if some local session is in it.
func (h *Hub) lookup(name string) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[name]
}

// joined reports whether s joined the room.
func (h *Hub) joined(s Session, name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.sessions[s][name]
	return ok
}

// enter adds s to r as a joining member, subscribing the node to the room
// when s is the room's first local session.
func (h *Hub) enter(ctx context.Context, s Session, r *room) error {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	if r.local == 0 {
		ctx, cancel := h.opContext(ctx)
		defer cancel()
		if err := h.broker.SubscribeRoom(ctx, r.name); err != nil {
			return err
		}
	}
	r.local++
	r.mu.Lock()
	m := &member{s: s, user: s.User(), i: len(r.list), joining: true}
	r.members[s] = m
	r.list = append(r.list, m)
	r.mu.Unlock()
	return nil
}

// removeLocked takes s out of r's members and returns its member, or nil.
// r.mu is held.
func (r *room) removeLocked(s Session) *member {
	m := r.members[s]
	if m == nil {
		return nil
	}
	delete(r.members, s)
	last := len(r.list) - 1
	r.list[m.i] = r.list[last]
	r.list[m.i].i = m.i
	r.list[last] = nil
	r.list = r.list[:last]
	return m
}

// present counts s in its user's sessions in r, adding the user's presence
// (which announces member_joined) when s is the user's first local session
// in the room.
func (h *Hub) present(ctx context.Context, s Session, r *room) error {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	user := s.User()
	if r.users[user] == 0 {
		ctx, cancel := h.opContext(ctx)
		defer cancel()
		first, err := h.presence.Add(ctx, r.name, user)
		if err != nil {
			return err
		}
		if first {
			h.Emit(WebhookMemberJoined, WebhookMember{Room: r.name, User: user})
		}
	}
	r.users[user]++
	r.mu.Lock()
	r.members[s].present = true
	r.mu.Unlock()
	return nil
}

// exit removes s from r, removing the user's presence (which announces
// member_left) when s was the user's last local session in the room, and
// releases the session's hold on r. Each Broker and Presence call gets a
// deadline of its own, not the caller's: an exit happens after the session
// is gone, and must not fail because an earlier step was slow.
//
// Whoever takes the member out of r.members finishes the exit: a ban may
// have done so meanwhile (evict), and then exit does nothing.
func (h *Hub) exit(s Session, r *room) {
	r.mu.Lock()
	m := r.removeLocked(s)
	r.mu.Unlock()
	if m == nil {
		return
	}
	h.mu.Lock()
	delete(h.sessions[s], r.name)
	h.mu.Unlock()
	h.leaveRoom(s, r, m)
}

// leaveRoom finishes the exit of s, whose member m was taken out of r.
func (h *Hub) leaveRoom(s Session, r *room, m *member) {
	r.opMu.Lock()
	user := s.User()
	if m.present {
		if r.users[user]--; r.users[user] == 0 {
			delete(r.users, user)
			ctx, cancel := h.opContext(context.Background())
			last, err := h.presence.Remove(ctx, r.name, user)
			if err != nil {
				h.log.Warn().Err(err).Str("room", r.name).Str("user", user).Msg("remove presence: retried in the background")
			} else if last {
				h.Emit(WebhookMemberLeft, WebhookMember{Room: r.name, User: user})
			}
			cancel()
		}
	}
	if r.local--; r.local == 0 {
		h.unsubscribe(r)
	}
	r.opMu.Unlock()
	h.release(r)
}

// unsubscribe stops the node's subscription to r, with its own deadline.
func (h *Hub) unsubscribe(r *room) {
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	if err := h.broker.UnsubscribeRoom(ctx, r.name); err != nil {
		h.log.Warn().Err(err).Str("room", r.name).Msg("unsubscribe room")
	}
}

// deliver fans a publication out to the room's local members.
func (h *Hub) deliver(name string, p Publication) {
	h.fanout(name, roomFrame{seq: p.Seq, epoch: p.Epoch, frame: p.Frame})
}

// deliverEvent fans an event out to the room's local members but those of
// e.Exclude (only to those of e.User for an EventTo), or evicts a banned
// user.
func (h *Hub) deliverEvent(name string, e Event) {
	switch e.Kind {
	case EventBan:
		h.evict(name, e)
	case EventTo:
		h.fanout(name, roomFrame{only: e.User, frame: e.Frame})
	default:
		h.fanout(name, roomFrame{exclude: e.Exclude, frame: e.Frame})
	}
}

// fanout hands f's frame to every local member of the room but f.exclude's
// sessions, holding it for members still joining. Before the first
// publication of a new epoch (Redis lost the room's history) it tells the
// members with an epoch frame, since the seqs start again at 1.
func (h *Hub) fanout(name string, f roomFrame) {
	r := h.lookup(name)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.seq != 0 {
		if r.epoch != "" && f.epoch != r.epoch {
			frame := protocol.Encode(protocol.Epoch{Type: protocol.TypeEpoch, Room: name, Epoch: f.epoch})
			h.fanoutLocked(r, roomFrame{frame: frame})
		}
		r.epoch = f.epoch
	}
	h.fanoutLocked(r, f)
}

// fanoutLocked is fanout's loop. r.mu is held. It allocates nothing and
// calls only Enqueue per member; it counts the frames sent once, after the
// loop.
func (h *Hub) fanoutLocked(r *room, f roomFrame) {
	sent := 0
	for _, m := range r.list {
		if f.exclude != "" && m.user == f.exclude || f.only != "" && m.user != f.only {
			continue
		}
		if m.joining {
			h.hold(m.s, m, f)
			continue
		}
		if m.admit(f) {
			m.s.Enqueue(f.frame)
			sent++
		}
	}
	h.countSent(f, sent)
}

// hold keeps a frame for a joining member, closing a session that falls
// too far behind. r.mu is held.
func (h *Hub) hold(s Session, m *member, f roomFrame) {
	if len(m.held) >= h.cfg.JoinBuffer {
		s.Close(protocol.CloseTryAgainLater, "too slow: join backlog overflowed")
		return
	}
	m.held = append(m.held, f)
}
