package hub

import (
	"context"
	"encoding/json"

	"github.com/switchboard-chat/switchboard/protocol"
)

// JoinRequest is a session's request to enter a room.
type JoinRequest struct {
	Room string
	ID   json.RawMessage // echoed in the joined frame
	// Recover asks for the messages after Since in Epoch to be delivered
	// after the joined frame, before any live message.
	Recover bool
	Since   uint64
	Epoch   string
}

// Join puts s in a room and queues for it, in this order: the joined frame,
// the recovered messages (when asked for and available), then the room's
// live frames.
//
// It is race-free against concurrent publishing: the session is added to the
// room as joining before the room's position and history are read, so every
// message published after that point reaches it, held back until the answer
// is queued. Messages published before the session was added are in the
// history read. A message both in the history read and delivered by the
// broker afterwards, held back or (since a networked broker's delivery lags
// its history) after the session went live, is sent once, by seq.
func (h *Hub) Join(ctx context.Context, s Session, req JoinRequest) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.OpTimeout)
	defer cancel()
	if h.member(s, req.Room) {
		return h.rejoin(ctx, s, req)
	}
	if !h.claimRoom(s, req.Room) {
		return ErrTooManyRooms
	}
	r := h.acquire(req.Room)
	first, err := h.enter(ctx, s, r)
	if err != nil {
		h.unclaimRoom(s, req.Room)
		h.release(r)
		return err
	}
	if first {
		h.announce(ctx, r.name, protocol.TypeMemberJoined, s.User())
	}
	members, err := h.presence.Members(ctx, r.name)
	if err != nil {
		h.exit(ctx, s, r)
		return err
	}
	q := HistoryQuery{HasSince: req.Recover, Since: req.Since}
	page, err := h.broker.History(ctx, r.name, q)
	if err != nil {
		h.exit(ctx, s, r)
		return err
	}
	recovered := req.Recover && recoverable(req, page) && h.replayFits(page.Publications)
	answer := protocol.Joined{
		Type: protocol.TypeJoined, ID: req.ID, Room: r.name, Members: members,
		Seq: page.Position.Seq, Epoch: page.Position.Epoch,
	}
	if req.Recover {
		answer.Recovered = &recovered
	}
	s.Send(protocol.Encode(answer))

	last := page.Position.Seq
	var replay []Publication
	if recovered {
		replay = page.Publications
	}
	h.activate(s, r, replay, page.Position.Epoch, last)
	return nil
}

// recoverable reports whether page covers every message after req.Since.
func recoverable(req JoinRequest, page HistoryPage) bool {
	pos := page.Position
	if req.Epoch != pos.Epoch || req.Since > pos.Seq {
		return false
	}
	if req.Since == pos.Seq {
		return true
	}
	pubs := page.Publications
	return len(pubs) > 0 && pubs[0].Seq == req.Since+1 && pubs[len(pubs)-1].Seq == pos.Seq
}

// replayFits reports whether pubs are small enough to replay at once.
func (h *Hub) replayFits(pubs []Publication) bool {
	if h.cfg.MaxReplayBytes <= 0 {
		return true
	}
	n := 0
	for _, p := range pubs {
		n += len(p.Frame)
	}
	return n <= h.cfg.MaxReplayBytes
}

// activate queues the replayed publications and the frames held while s was
// joining, then makes s a live member. Publications of epoch at or below seq
// last, held or delivered later, were already covered by the answer or the
// replay.
func (h *Hub) activate(s Session, r *room, replay []Publication, epoch string, last uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[s]
	if m == nil {
		return
	}
	if r.epoch == "" {
		r.epoch = epoch
	}
	for _, p := range replay {
		s.Send(p.Frame)
	}
	m.epoch, m.last = epoch, last
	for _, f := range m.held {
		if m.admit(f) {
			s.Send(f.frame)
		}
	}
	m.joining, m.held = false, nil
}

// rejoin answers a join of a room the session is already in, without
// replaying anything: the session has been receiving the room all along.
func (h *Hub) rejoin(ctx context.Context, s Session, req JoinRequest) error {
	members, err := h.presence.Members(ctx, req.Room)
	if err != nil {
		return err
	}
	page, err := h.broker.History(ctx, req.Room, HistoryQuery{})
	if err != nil {
		return err
	}
	answer := protocol.Joined{
		Type: protocol.TypeJoined, ID: req.ID, Room: req.Room, Members: members,
		Seq: page.Position.Seq, Epoch: page.Position.Epoch,
	}
	if req.Recover {
		recovered := req.Epoch == page.Position.Epoch && req.Since == page.Position.Seq
		answer.Recovered = &recovered
	}
	s.Send(protocol.Encode(answer))
	return nil
}

// claimRoom records that s is in the room, unless s is at its room limit.
func (h *Hub) claimRoom(s Session, name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	rooms := h.sessions[s]
	if len(rooms) >= h.cfg.MaxRoomsPerSession {
		return false
	}
	rooms[name] = struct{}{}
	return true
}

func (h *Hub) unclaimRoom(s Session, name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions[s], name)
}

// Leave takes s out of a room.
func (h *Hub) Leave(ctx context.Context, s Session, name string) error {
	if !h.member(s, name) {
		return ErrNotMember
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.OpTimeout)
	defer cancel()
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	h.exit(ctx, s, r)
	return nil
}

// announce broadcasts member_joined or member_left to the room's other users.
func (h *Hub) announce(ctx context.Context, room, typ, user string) {
	frame := protocol.Encode(protocol.MemberEvent{Type: typ, Room: room, User: user})
	if err := h.broker.BroadcastRoom(ctx, room, Event{Frame: frame, Exclude: user}); err != nil {
		h.log.Warn().Err(err).Str("room", room).Str("event", typ).Msg("announce")
	}
}
