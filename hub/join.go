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
//
// The user's presence is added, and so member_joined announced, only after
// the position was read: whatever another member sends once it learns of the
// join has a seq above the joined answer's, and reaches the joiner live.
func (h *Hub) Join(ctx context.Context, s Session, req JoinRequest) error {
	if h.joined(s, req.Room) {
		return h.rejoin(ctx, s, req)
	}
	if !h.claimRoom(s, req.Room) {
		return ErrTooManyRooms
	}
	r := h.acquire(req.Room)
	if err := h.enter(ctx, s, r); err != nil {
		h.unclaimRoom(s, req.Room)
		h.release(r)
		return err
	}
	page, members, stand, err := h.catchUp(ctx, s, r, req)
	if err != nil {
		h.exit(s, r)
		h.countRecovery(req, RecoveryFailed)
		return err
	}
	unread, err := h.joinUnread(ctx, s, req.Room, page.Position)
	if err != nil {
		h.exit(s, r)
		h.countRecovery(req, RecoveryFailed)
		return err
	}
	outcome := recovery(req, page)
	h.countRecovery(req, outcome)
	recovered := req.Recover && outcome == RecoveryRecovered
	answer := joinedAnswer(req, members, page.Position)
	withUnread(&answer, unread)
	answer.Frozen, answer.Muted, answer.MutedUntil = stand.frozen, stand.muted, stand.mutedUntil
	if req.Recover {
		answer.Recovered = &recovered
	}
	var replay []Publication
	if recovered {
		replay = page.Publications
	}
	if !h.activate(s, r, answer, replay, page.Position.Epoch, page.Position.Seq) {
		h.exit(s, r)
		if _, err := h.checkBan(ctx, req.Room, s.User()); err != nil {
			return err
		}
		return &RestrictedError{Err: ErrBanned} // and unbanned since
	}
	return nil
}

// joinedAnswer is the joined frame for req: the first page of members, the
// room's member count, where to page on, and the room's position.
func joinedAnswer(req JoinRequest, members MemberPage, pos Position) protocol.Joined {
	answer := protocol.Joined{
		Type: protocol.TypeJoined, ID: req.ID, Room: req.Room,
		Members: members.Users, MemberCount: members.Count,
		Seq: pos.Seq, Epoch: pos.Epoch,
	}
	if members.More && len(members.Users) > 0 {
		answer.MembersNext = members.Users[len(members.Users)-1]
	}
	return answer
}

// catchUp reads, for a joining session, the room's position (with the
// missed publications when recovering), then adds the user's presence and
// reads the first page of members; and the user's standing (a ban is an
// error).
func (h *Hub) catchUp(ctx context.Context, s Session, r *room, req JoinRequest) (HistoryPage, MemberPage, standing, error) {
	// The node subscribed to the room (enter) before this read: a ban,
	// mute or freeze it misses reaches the member as an event.
	stand, err := h.checkBan(ctx, r.name, s.User())
	if err != nil {
		return HistoryPage{}, MemberPage{}, stand, err
	}
	q := HistoryQuery{HasSince: req.Recover, Since: req.Since, Epoch: req.Epoch, MaxBytes: h.cfg.MaxReplayBytes}
	hctx, cancel := h.opContext(ctx)
	page, err := h.broker.History(hctx, r.name, q)
	cancel()
	if err != nil {
		return page, MemberPage{}, stand, err
	}
	if err := h.present(ctx, s, r); err != nil {
		return page, MemberPage{}, stand, err
	}
	members, err := h.MemberPage(ctx, r.name, "", protocol.JoinedMembers)
	return page, members, stand, err
}

// recovery returns the outcome of recovering req from page:
// RecoveryRecovered when page covers every message after req.Since (and
// within MaxReplayBytes), else why not.
func recovery(req JoinRequest, page HistoryPage) string {
	pos := page.Position
	pubs := page.Publications
	switch {
	case req.Epoch != pos.Epoch:
		return RecoveryNewEpoch
	case req.Since > pos.Seq:
		return RecoveryInvalid
	case page.Truncated:
		return RecoveryTooLarge
	case req.Since == pos.Seq,
		len(pubs) > 0 && pubs[0].Seq == req.Since+1 && pubs[len(pubs)-1].Seq == pos.Seq:
		return RecoveryRecovered
	}
	return RecoveryTrimmed
}

// enqueueJoined queues a joined answer for s, and counts it.
func (h *Hub) enqueueJoined(s Session, answer protocol.Joined) {
	s.Enqueue(protocol.Encode(answer))
	h.count.framesOut.Add(protocol.TypeJoined, 1)
}

// activate queues the joined answer, the replayed publications and the
// frames held while s was joining, then makes s a live member, and reports
// true; or false, queuing nothing, when a ban reached s meanwhile.
// Publications of epoch at or below seq last, held or delivered later, were
// already covered by the answer or the replay.
func (h *Hub) activate(s Session, r *room, answer protocol.Joined, replay []Publication, epoch string, last uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[s]
	if m == nil || m.banned {
		return false
	}
	h.enqueueJoined(s, answer)
	if r.epoch == "" {
		r.epoch = epoch
	}
	for _, p := range replay {
		s.Enqueue(p.Frame)
		h.countSent(roomFrame{seq: p.Seq, frame: p.Frame}, 1)
	}
	m.epoch, m.last = epoch, last
	for _, f := range m.held {
		if m.admit(f) {
			s.Enqueue(f.frame)
			h.countSent(f, 1)
		}
	}
	m.joining, m.held = false, nil
	return true
}

// rejoin answers a join of a room the session is already in, without
// replaying anything: the session has been receiving the room all along.
func (h *Hub) rejoin(ctx context.Context, s Session, req JoinRequest) error {
	stand, err := h.checkBan(ctx, req.Room, s.User())
	if err != nil {
		return err
	}
	members, err := h.MemberPage(ctx, req.Room, "", protocol.JoinedMembers)
	if err != nil {
		return err
	}
	hctx, cancel := h.opContext(ctx)
	page, err := h.broker.History(hctx, req.Room, HistoryQuery{})
	cancel()
	if err != nil {
		return err
	}
	unread, err := h.joinUnread(ctx, s, req.Room, page.Position)
	if err != nil {
		return err
	}
	answer := joinedAnswer(req, members, page.Position)
	withUnread(&answer, unread)
	answer.Frozen, answer.Muted, answer.MutedUntil = stand.frozen, stand.muted, stand.mutedUntil
	if req.Recover {
		recovered := req.Epoch == page.Position.Epoch && req.Since == page.Position.Seq
		answer.Recovered = &recovered
	}
	h.enqueueJoined(s, answer)
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
	if !h.joined(s, name) {
		return ErrNotMember
	}
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	h.exit(s, r)
	return nil
}

// MemberPage returns up to limit (1 to protocol.MaxPresenceLimit) of the
// users in a room on any node, sorted, after the user after ("" for the
// first page), with the room's member count. It costs O(log N + limit).
func (h *Hub) MemberPage(ctx context.Context, room, after string, limit int) (MemberPage, error) {
	limit = min(max(limit, 1), protocol.MaxPresenceLimit)
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	return h.presence.Members(ctx, room, after, limit)
}

// members reads every member of a room, page by page. The pages are read
// one after the other, not together: a member who joins or leaves meanwhile
// may be missed or listed.
func (h *Hub) members(ctx context.Context, room string) ([]string, error) {
	var users []string
	after := ""
	for {
		page, err := h.MemberPage(ctx, room, after, protocol.MaxPresenceLimit)
		if err != nil {
			return nil, err
		}
		users = append(users, page.Users...)
		if !page.More || len(page.Users) == 0 {
			return users, nil
		}
		after = page.Users[len(page.Users)-1]
	}
}

// opContext bounds one Broker or Presence call by OpTimeout.
func (h *Hub) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, h.cfg.OpTimeout)
}
