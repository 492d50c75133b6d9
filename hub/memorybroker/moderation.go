package memorybroker

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
)

// modState is a room's moderation, kept with its stream under the
// stream's mu so that a member's publish is checked atomically with its
// append. It is independent of the room's history: an epoch change keeps
// it, and a sweep keeps a stream that has any.
type modState struct {
	frozen bool
	mutes  map[string]hub.Restriction // by user
	bans   map[string]hub.Restriction // by user
}

// pruneLocked drops the mutes and bans that ended by now (unix ms).
func (m *modState) pruneLocked(now int64) {
	for _, set := range []map[string]hub.Restriction{m.mutes, m.bans} {
		for user, r := range set {
			if ended(r, now) {
				delete(set, user)
			}
		}
	}
}

// empty reports whether the state holds nothing in force at now.
func (m *modState) empty(now int64) bool {
	m.pruneLocked(now)
	return !m.frozen && len(m.mutes) == 0 && len(m.bans) == 0
}

// ended reports whether r ended by now (unix ms).
func ended(r hub.Restriction, now int64) bool {
	return r.Until != 0 && r.Until <= now
}

// checkLocked refuses a member's write when the member is banned or muted
// or the room frozen, in that order (see hub.PublishRequest.Member). s.mu
// is held.
func (m *modState) checkLocked(member string, now int64) error {
	if member == "" {
		return nil
	}
	if r, ok := m.bans[member]; ok && !ended(r, now) {
		return fmt.Errorf("publish: %w", &hub.RestrictedError{Err: hub.ErrBanned, Until: r.Until})
	}
	if r, ok := m.mutes[member]; ok && !ended(r, now) {
		return fmt.Errorf("publish: %w", &hub.RestrictedError{Err: hub.ErrMuted, Until: r.Until})
	}
	if m.frozen {
		return fmt.Errorf("publish: %w", hub.ErrFrozen)
	}
	return nil
}

// applyLocked applies a. s.mu is held.
func (m *modState) applyLocked(a hub.ModAction, now int64) error {
	m.pruneLocked(now)
	put := func(set *map[string]hub.Restriction) error {
		if _, ok := (*set)[a.User]; !ok && len(m.mutes)+len(m.bans) >= hub.MaxModEntries {
			return fmt.Errorf("moderate: %w", hub.ErrModFull)
		}
		if *set == nil {
			*set = make(map[string]hub.Restriction)
		}
		(*set)[a.User] = hub.Restriction{User: a.User, Until: a.Until, Reason: a.Reason}
		return nil
	}
	switch a.Kind {
	case hub.ModMute:
		return put(&m.mutes)
	case hub.ModBan:
		return put(&m.bans)
	case hub.ModUnmute:
		delete(m.mutes, a.User)
	case hub.ModUnban:
		delete(m.bans, a.User)
	case hub.ModFreeze, hub.ModUnfreeze:
		m.frozen = a.Kind == hub.ModFreeze
	}
	return nil
}

// stateLocked returns the state in force, only user's mute and ban when
// user is not "".
func (m *modState) stateLocked(user string, now int64) hub.ModState {
	m.pruneLocked(now)
	st := hub.ModState{Frozen: m.frozen}
	var more bool
	st.Mutes, more = list(m.mutes, user)
	st.More = more
	st.Bans, more = list(m.bans, user)
	st.More = st.More || more
	return st
}

// list returns set's restrictions sorted by user, at most hub.MaxModList,
// or only user's when user is not "", and whether some were left out.
func list(set map[string]hub.Restriction, user string) ([]hub.Restriction, bool) {
	if user != "" {
		if r, ok := set[user]; ok {
			return []hub.Restriction{r}, false
		}
		return nil, false
	}
	l := make([]hub.Restriction, 0, len(set))
	for _, r := range set {
		l = append(l, r)
	}
	sort.Slice(l, func(i, j int) bool { return l[i].User < l[j].User })
	if len(l) > hub.MaxModList {
		return l[:hub.MaxModList], true
	}
	return l, false
}

// Moderate implements hub.Broker: the change and the queuing of e are done
// under the room's lock, as a publish is.
func (b *Broker) Moderate(ctx context.Context, room string, a hub.ModAction, e hub.Event) error {
	s := b.lockStream(room)
	defer s.mu.Unlock()
	if err := s.mod.applyLocked(a, time.Now().UnixMilli()); err != nil {
		return err
	}
	if s.subscribed && e.Frame != nil {
		b.enqueue(s.worker, delivery{kind: deliverRoomEvent, gen: s.gen, stream: s, name: room, event: e})
	}
	return nil
}

// Moderation implements hub.Broker.
func (b *Broker) Moderation(ctx context.Context, room, user string) (hub.ModState, error) {
	b.mu.Lock()
	s := b.streams[room]
	b.mu.Unlock()
	if s == nil {
		return hub.ModState{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mod.stateLocked(user, time.Now().UnixMilli()), nil
}
