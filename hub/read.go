package hub

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Reads keeps each user's read position per room and counts the unread
// messages of the room's history: an optional capability of a Broker (both
// of this module's brokers have it), found by type assertion in New. A
// position is a seq and the epoch it belongs to; a position of another
// epoch than the room's means nothing and counts as 0. Implementations are
// safe for concurrent use and keep at most protocol.MaxReadRooms positions
// per user, forgetting the one written longest ago.
//
// The hub calls MarkRead from one goroutine per node at a time, at most
// once per protocol.ReadInterval for each user and room (see Hub.Read).
type Reads interface {
	// MarkRead stores pos as user's read position in room when it is ahead
	// of the stored one: a higher seq in the same epoch, or any seq of
	// another epoch. It reports whether it stored it: positions only move
	// forward. A store that keeps history for a time keeps positions as
	// long after their last write.
	MarkRead(ctx context.Context, user, room string, pos Position) (moved bool, err error)
	// Unread returns user's read position in room and counts the messages
	// of other users in the room's history after it, up to seq upTo (0: up
	// to the newest). Only message frames count (see
	// protocol.MessageSender), not other entries a history may hold.
	Unread(ctx context.Context, user, room string, upTo uint64) (Unread, error)
	// UnreadRooms returns Unread for up to limit of the rooms user has a
	// read position in, sorted by name, after the room after ("" for the
	// first), and whether more follow.
	UnreadRooms(ctx context.Context, user, after string, limit int) (rooms []Unread, more bool, err error)
}

// Unread is a user's read position in a room and what is unread after it.
type Unread struct {
	Room string
	// ReadSeq is the user's read position in the room's current epoch: 0
	// when the user has none, or one of another epoch.
	ReadSeq uint64
	// Position is the room's position the count goes up to: its newest
	// message, or the upTo asked for.
	Position Position
	// Count is the number of messages of other users in history after
	// ReadSeq, up to Position.
	Count int
	// Capped reports that history no longer reaches back to ReadSeq, so
	// that more than Count messages may be unread.
	Capped bool
}

// readKey names one user's position in one room.
type readKey struct{ user, room string }

// readRelay coalesces the read reports of the node's sessions: it keeps
// the latest per user and room and, every protocol.ReadInterval, stores
// them and tells the rooms. Its flush runs in a timer's goroutine, started
// when the first report of an interval arrives and ended when the flush
// is done; close waits for it and flushes what is left. pending holds one
// entry per user and room reported within an interval: bounded by the
// node's sessions times their rooms (Config.MaxRoomsPerSession), and by the
// connections' rate limits.
type readRelay struct {
	h     *Hub
	store Reads // nil when the broker keeps no read positions

	mu      sync.Mutex
	pending map[readKey]Position // guarded by mu
	timer   *time.Timer          // the scheduled flush, or nil; guarded by mu
	closed  bool                 // guarded by mu
	flights sync.WaitGroup       // the scheduled flush

	flushMu sync.Mutex // serializes flushes, so a room hears one user's reads in order
}

func newReadRelay(h *Hub, broker Broker) *readRelay {
	store, _ := broker.(Reads)
	return &readRelay{h: h, store: store, pending: make(map[readKey]Position)}
}

// errNoReads answers reads when the broker keeps no read positions.
var errNoReads = protocol.Errorf(protocol.CodeUnavailable, "this server keeps no read positions")

// Read reports that the session's user has read the room's messages up to
// seq. The position is stored, and the room's other members told with a
// read frame, within protocol.ReadInterval: reports in between are
// coalesced, keeping the latest. A seq beyond the room's newest message is
// a bad_request; one behind the stored position changes nothing.
func (h *Hub) Read(ctx context.Context, s Session, room string, seq uint64) error {
	if !h.joined(s, room) {
		return ErrNotMember
	}
	if h.reads.store == nil {
		return errNoReads
	}
	pos, err := h.readPosition(ctx, s, room, seq)
	if err != nil {
		return err
	}
	h.reads.add(readKey{s.User(), room}, pos)
	return nil
}

// readPosition returns the position of seq in the room: in the epoch of
// the member's last message when seq is not beyond it (no I/O), else in
// the room's current epoch, read from the broker.
func (h *Hub) readPosition(ctx context.Context, s Session, room string, seq uint64) (Position, error) {
	if r := h.lookup(room); r != nil {
		r.mu.Lock()
		m := r.members[s]
		var pos Position
		if m != nil && !m.joining {
			pos = Position{Seq: m.last, Epoch: m.epoch}
		}
		r.mu.Unlock()
		if pos.Epoch != "" && seq <= pos.Seq {
			return Position{Seq: seq, Epoch: pos.Epoch}, nil
		}
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	page, err := h.broker.History(ctx, room, HistoryQuery{})
	if err != nil {
		return Position{}, err
	}
	if seq > page.Position.Seq {
		return Position{}, protocol.Errorf(protocol.CodeBadRequest, "seq is beyond the room's newest message")
	}
	return Position{Seq: seq, Epoch: page.Position.Epoch}, nil
}

// add keeps pos as the latest report of k, and schedules a flush.
func (q *readRelay) add(k readKey, pos Position) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if old, ok := q.pending[k]; !ok || old.Epoch != pos.Epoch || old.Seq < pos.Seq {
		q.pending[k] = pos
	}
	if q.timer == nil && !q.closed {
		q.flights.Add(1)
		q.timer = time.AfterFunc(protocol.ReadInterval, func() {
			defer q.flights.Done()
			q.mu.Lock()
			q.timer = nil
			q.mu.Unlock()
			q.flush(func(readKey) bool { return true })
		})
	}
}

// flush stores the pending reports that match and tells their rooms of
// those that moved a position.
func (q *readRelay) flush(match func(readKey) bool) {
	q.flushMu.Lock()
	defer q.flushMu.Unlock()
	q.mu.Lock()
	byRoom := make(map[string][]readKey)
	batch := make(map[readKey]Position)
	for k, pos := range q.pending {
		if match(k) {
			byRoom[k.room] = append(byRoom[k.room], k)
			batch[k] = pos
			delete(q.pending, k)
		}
	}
	q.mu.Unlock()
	for room, keys := range byRoom {
		var moved []Event
		for _, k := range keys {
			if q.store1(k, batch[k]) {
				frame := protocol.Encode(protocol.Read{Type: protocol.TypeRead, Room: room, User: k.user, Seq: batch[k].Seq})
				moved = append(moved, Event{Frame: frame, Exclude: k.user})
			}
		}
		q.tell(room, moved)
	}
}

// store1 stores one position, logging a failure: the next report of the
// user in the room stores it again.
func (q *readRelay) store1(k readKey, pos Position) bool {
	ctx, cancel := q.h.opContext(context.Background())
	defer cancel()
	moved, err := q.store.MarkRead(ctx, k.user, k.room, pos)
	if err != nil {
		q.h.log.Warn().Err(err).Str("user", k.user).Str("room", k.room).Msg("store read position")
	}
	return moved
}

// tell broadcasts the read events of a room, unless it is too large for
// them (more than protocol.MemberEventsMax members, as for member events).
func (q *readRelay) tell(room string, events []Event) {
	if len(events) == 0 {
		return
	}
	ctx, cancel := q.h.opContext(context.Background())
	defer cancel()
	page, err := q.h.presence.Members(ctx, room, "", 1)
	if err != nil || page.Count > protocol.MemberEventsMax {
		return
	}
	for _, e := range events {
		if err := q.h.broker.BroadcastRoom(ctx, room, e); err != nil {
			q.h.log.Warn().Err(err).Str("room", room).Msg("broadcast read")
			return
		}
	}
}

// flushUser stores user's pending reports now (in room only, when room is
// not ""), so that what the user reported is counted by what follows.
func (q *readRelay) flushUser(user, room string) {
	q.mu.Lock()
	n := len(q.pending)
	q.mu.Unlock()
	if n == 0 {
		return
	}
	q.flush(func(k readKey) bool { return k.user == user && (room == "" || k.room == room) })
}

// close stops scheduling flushes, waits for the scheduled one and flushes
// what is left: called once the sessions are gone.
func (q *readRelay) close() {
	q.mu.Lock()
	q.closed = true
	if q.timer != nil && q.timer.Stop() {
		q.timer = nil
		q.flights.Done()
	}
	q.mu.Unlock()
	q.flights.Wait()
	if q.store != nil {
		q.flush(func(readKey) bool { return true })
	}
}

// unread returns user's unread count in room up to seq upTo, with the
// user's pending report in the room stored first; the zero Unread when the
// broker keeps no read positions.
func (h *Hub) unread(ctx context.Context, user, room string, upTo uint64) (Unread, error) {
	if h.reads.store == nil {
		return Unread{}, nil
	}
	h.reads.flushUser(user, room)
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	return h.reads.store.Unread(ctx, user, room, upTo)
}

// UnreadRooms returns the unread counts of up to limit (1 to 100) of the
// rooms user has a read position in, sorted by name, after the room after
// ("" for the first), and whether more follow. The user's reports still
// pending on this node are stored first.
func (h *Hub) UnreadRooms(ctx context.Context, user, after string, limit int) ([]Unread, bool, error) {
	if h.reads.store == nil {
		return nil, false, errNoReads
	}
	h.reads.flushUser(user, "")
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	return h.reads.store.UnreadRooms(ctx, user, after, min(max(limit, 1), MaxUnreadPage))
}

// MaxUnreadPage is the most rooms UnreadRooms answers at once.
const MaxUnreadPage = 100

// joinUnread returns the unread count of a joining session's user, up to
// the position its joined answer gives: none to count in an empty room.
func (h *Hub) joinUnread(ctx context.Context, s Session, room string, pos Position) (Unread, error) {
	if pos.Seq == 0 {
		return Unread{}, nil
	}
	return h.unread(ctx, s.User(), room, pos.Seq)
}

// withUnread sets the joined answer's read position and unread count.
func withUnread(answer *protocol.Joined, u Unread) {
	answer.ReadSeq, answer.Unread, answer.UnreadCapped = u.ReadSeq, u.Count, u.Capped
}
