package memorybroker

import (
	"context"
	"slices"
	"sync"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Presence is the single-node Presence: a set of users per room. It
// announces member events through the Broker it is given, while holding its
// lock, so that they are delivered in the order of the changes.
type Presence struct {
	broker hub.Broker

	mu    sync.Mutex
	rooms map[string]map[string]struct{}
}

var _ hub.Presence = (*Presence)(nil)

// NewPresence returns an empty Presence announcing through
// broker, normally the node's Broker.
func NewPresence(broker hub.Broker) *Presence {
	return &Presence{broker: broker, rooms: make(map[string]map[string]struct{})}
}

// Add implements Presence.
func (p *Presence) Add(ctx context.Context, room, user string) (bool, error) {
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
func (p *Presence) Remove(ctx context.Context, room, user string) (bool, error) {
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
func (p *Presence) announce(ctx context.Context, room, typ, user string) error {
	return p.broker.BroadcastRoom(ctx, room, hub.MemberEvent(room, typ, user))
}

// Members implements Presence.
func (p *Presence) Members(ctx context.Context, room string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	members := make([]string, 0, len(p.rooms[room]))
	for u := range p.rooms[room] {
		members = append(members, u)
	}
	slices.Sort(members)
	return members, nil
}
