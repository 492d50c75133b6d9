package hub

import (
	"context"
	"slices"
	"sync"

	"github.com/switchboard-chat/switchboard/protocol"
)

// MemoryPresence is the single-node Presence: a set of users per room. It
// announces member events through the Broker it is given, while holding its
// lock, so that they are delivered in the order of the changes.
type MemoryPresence struct {
	broker Broker

	mu    sync.Mutex
	rooms map[string]map[string]struct{}
}

var _ Presence = (*MemoryPresence)(nil)

// NewMemoryPresence returns an empty MemoryPresence announcing through
// broker, normally the node's MemoryBroker.
func NewMemoryPresence(broker Broker) *MemoryPresence {
	return &MemoryPresence{broker: broker, rooms: make(map[string]map[string]struct{})}
}

// Add implements Presence.
func (p *MemoryPresence) Add(ctx context.Context, room, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.rooms[room]
	if users == nil {
		users = make(map[string]struct{})
		p.rooms[room] = users
	}
	if _, ok := users[user]; ok {
		return false, nil
	}
	users[user] = struct{}{}
	return true, p.announce(ctx, room, protocol.TypeMemberJoined, user)
}

// Remove implements Presence.
func (p *MemoryPresence) Remove(ctx context.Context, room, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.rooms[room]
	if _, ok := users[user]; !ok {
		return false, nil
	}
	delete(users, user)
	if len(users) == 0 {
		delete(p.rooms, room)
	}
	return true, p.announce(ctx, room, protocol.TypeMemberLeft, user)
}

// announce sends a member event to the room's other users. p.mu is held.
func (p *MemoryPresence) announce(ctx context.Context, room, typ, user string) error {
	return p.broker.BroadcastRoom(ctx, room, memberEvent(room, typ, user))
}

// memberEvent returns the member_joined, member_left or typing event of user
// in room, for the room's other users.
func memberEvent(room, typ, user string) Event {
	frame := protocol.Encode(protocol.MemberEvent{Type: typ, Room: room, User: user})
	return Event{Frame: frame, Exclude: user}
}

// Members implements Presence.
func (p *MemoryPresence) Members(ctx context.Context, room string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	members := make([]string, 0, len(p.rooms[room]))
	for u := range p.rooms[room] {
		members = append(members, u)
	}
	slices.Sort(members)
	return members, nil
}
