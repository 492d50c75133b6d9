package hub

import (
	"context"
	"slices"
	"sync"
)

// MemoryPresence is the single-node Presence: a set of users per room.
type MemoryPresence struct {
	mu    sync.Mutex
	rooms map[string]map[string]struct{}
}

var _ Presence = (*MemoryPresence)(nil)

// NewMemoryPresence returns an empty MemoryPresence.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{rooms: make(map[string]map[string]struct{})}
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
	return true, nil
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
	return true, nil
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
