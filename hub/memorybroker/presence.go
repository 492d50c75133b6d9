package memorybroker

import (
	"context"
	"sync"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Presence is the single-node Presence: a sorted set of users per room, so
// that Add, Remove and a page of Members cost O(log N) (plus the page). It
// announces member events through the Broker it is given, while holding its
// lock, so that they are delivered in the order of the changes; in rooms
// above protocol.MemberEventsMax members it announces nothing (see
// protocol.Announced).
type Presence struct {
	broker hub.Broker

	mu    sync.Mutex
	rooms map[string]*sortedSet
}

var _ hub.Presence = (*Presence)(nil)

// NewPresence returns an empty Presence announcing through
// broker, normally the node's Broker.
func NewPresence(broker hub.Broker) *Presence {
	return &Presence{broker: broker, rooms: make(map[string]*sortedSet)}
}

// Add implements Presence.
func (p *Presence) Add(ctx context.Context, room, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.rooms[room]
	if users == nil {
		users = new(sortedSet)
		p.rooms[room] = users
	}
	if !users.add(user) {
		return false, nil
	}
	return true, p.announce(ctx, room, protocol.TypeMemberJoined, user, users.len())
}

// Remove implements Presence.
func (p *Presence) Remove(ctx context.Context, room, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.rooms[room]
	if users == nil || !users.remove(user) {
		return false, nil
	}
	if users.len() == 0 {
		delete(p.rooms, room)
	}
	return true, p.announce(ctx, room, protocol.TypeMemberLeft, user, users.len())
}

// announce sends a member event to the room's other users, unless the room
// is too large for member events. p.mu is held.
func (p *Presence) announce(ctx context.Context, room, typ, user string, count int) error {
	if !protocol.Announced(typ == protocol.TypeMemberJoined, count) {
		return nil
	}
	return p.broker.BroadcastRoom(ctx, room, hub.MemberChange(room, typ, user, count))
}

// Members implements Presence.
func (p *Presence) Members(ctx context.Context, room, after string, limit int) (hub.MemberPage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.rooms[room]
	if users == nil {
		return hub.MemberPage{Users: []string{}}, nil
	}
	names, more := users.page(after, max(limit, 1))
	return hub.MemberPage{Users: names, Count: users.len(), More: more}, nil
}
