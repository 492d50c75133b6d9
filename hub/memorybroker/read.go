package memorybroker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

var _ hub.Reads = (*Broker)(nil)

// readStore keeps users' read positions, each user's for HistoryTTL after
// its last write (as the Redis broker keeps a user's hash), at most
// protocol.MaxReadRooms per user.
type readStore struct {
	mu     sync.Mutex
	users  map[string]*userReads
	writes int // since the last sweep
}

// userReads is one user's positions by room.
type userReads struct {
	rooms map[string]readEntry
	last  time.Time // of the last write
}

type readEntry struct {
	pos hub.Position
	at  time.Time // written
}

// positionsLocked returns user's positions, nil when none or expired.
// b.reads.mu is held.
func (b *Broker) positionsLocked(user string, now time.Time) *userReads {
	u := b.reads.users[user]
	if u == nil || now.Sub(u.last) > b.cfg.HistoryTTL {
		return nil
	}
	return u
}

// MarkRead implements hub.Reads.
func (b *Broker) MarkRead(ctx context.Context, user, room string, pos hub.Position) (bool, error) {
	rs := &b.reads
	rs.mu.Lock()
	defer rs.mu.Unlock()
	now := time.Now()
	u := b.positionsLocked(user, now)
	if u == nil {
		if rs.users == nil {
			rs.users = make(map[string]*userReads)
		}
		u = &userReads{rooms: make(map[string]readEntry)}
		rs.users[user] = u
	}
	u.last = now
	if old, ok := u.rooms[room]; ok && old.pos.Epoch == pos.Epoch && old.pos.Seq >= pos.Seq {
		return false, nil
	}
	u.rooms[room] = readEntry{pos: pos, at: now}
	if len(u.rooms) > protocol.MaxReadRooms {
		oldest := ""
		for name, e := range u.rooms {
			if oldest == "" || e.at.Before(u.rooms[oldest].at) {
				oldest = name
			}
		}
		delete(u.rooms, oldest)
	}
	b.sweepReadsLocked(now)
	return true, nil
}

// sweepReadsLocked drops, every 1024 writes, the users whose positions
// expired. b.reads.mu is held.
func (b *Broker) sweepReadsLocked(now time.Time) {
	rs := &b.reads
	if rs.writes++; rs.writes < 1024 {
		return
	}
	rs.writes = 0
	for user, u := range rs.users {
		if now.Sub(u.last) > b.cfg.HistoryTTL {
			delete(rs.users, user)
		}
	}
}

// readPosition returns user's stored position in room.
func (b *Broker) readPosition(user, room string) (hub.Position, bool) {
	rs := &b.reads
	rs.mu.Lock()
	defer rs.mu.Unlock()
	u := b.positionsLocked(user, time.Now())
	if u == nil {
		return hub.Position{}, false
	}
	e, ok := u.rooms[room]
	return e.pos, ok
}

// Unread implements hub.Reads.
func (b *Broker) Unread(ctx context.Context, user, room string, upTo uint64) (hub.Unread, error) {
	pos, _ := b.readPosition(user, room)
	return b.count(user, room, pos, upTo), nil
}

// count counts the unread messages of user in room after pos, up to upTo.
func (b *Broker) count(user, room string, pos hub.Position, upTo uint64) hub.Unread {
	u := hub.Unread{Room: room}
	b.mu.Lock()
	s := b.streams[room]
	b.mu.Unlock()
	if s == nil {
		return u
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b.expireLocked(s, time.Now())
	u.Position = hub.Position{Seq: s.seq, Epoch: s.epoch}
	if upTo != 0 && upTo < s.seq {
		u.Position.Seq = upTo
	}
	if pos.Epoch == s.epoch {
		u.ReadSeq = min(pos.Seq, u.Position.Seq)
	}
	if u.ReadSeq == u.Position.Seq {
		return u
	}
	u.Capped = len(s.ring) == 0 || s.ring[0].Seq > u.ReadSeq+1
	for _, p := range s.ring {
		if p.Seq <= u.ReadSeq || p.Seq > u.Position.Seq {
			continue
		}
		if from, ok := protocol.MessageSender(p.Frame); ok && from != user {
			u.Count++
		}
	}
	return u
}

// UnreadRooms implements hub.Reads.
func (b *Broker) UnreadRooms(ctx context.Context, user, after string, limit int) ([]hub.Unread, bool, error) {
	rs := &b.reads
	rs.mu.Lock()
	var rooms []string
	positions := make(map[string]hub.Position)
	if u := b.positionsLocked(user, time.Now()); u != nil {
		for name, e := range u.rooms {
			if name > after {
				rooms = append(rooms, name)
				positions[name] = e.pos
			}
		}
	}
	rs.mu.Unlock()
	slices.SortFunc(rooms, strings.Compare)
	more := len(rooms) > limit
	if more {
		rooms = rooms[:limit]
	}
	out := make([]hub.Unread, len(rooms))
	for i, room := range rooms {
		out[i] = b.count(user, room, positions[room], 0)
	}
	return out, more, nil
}
