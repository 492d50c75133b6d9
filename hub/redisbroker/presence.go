package redisbroker

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// memberSep separates user and node in a presence entry. User names cannot
// contain it (see protocol.ValidUser).
const memberSep = '|'

// refreshBatch caps the rooms refreshed in one pipeline.
const refreshBatch = 500

// Add implements hub.Presence: it records user in room for this node, to be
// refreshed every PresenceTTL/3 until Remove or Close.
func (b *Broker) Add(ctx context.Context, room, user string) (first bool, err error) {
	n, err := b.presence(ctx, room, "add", user).Int64()
	if err != nil {
		return false, wrap("presence add", err)
	}
	b.presMu.Lock()
	if b.held[room] == nil {
		b.held[room] = make(map[string]bool)
	}
	b.held[room][user] = true
	b.presMu.Unlock()
	return n == 1, nil
}

// Remove implements hub.Presence.
func (b *Broker) Remove(ctx context.Context, room, user string) (last bool, err error) {
	b.presMu.Lock()
	delete(b.held[room], user)
	if len(b.held[room]) == 0 {
		delete(b.held, room)
	}
	b.presMu.Unlock()
	n, err := b.presence(ctx, room, "remove", user).Int64()
	if err != nil {
		return false, wrap("presence remove", err) // the entry expires
	}
	return n == 1, nil
}

// Members implements hub.Presence: the users with a live entry on any node.
func (b *Broker) Members(ctx context.Context, room string) ([]string, error) {
	entries, err := b.presence(ctx, room, "members").StringSlice()
	if err != nil {
		return nil, wrap("presence members", err)
	}
	users := make([]string, 0, len(entries))
	for _, e := range entries {
		if i := strings.IndexByte(e, memberSep); i >= 0 {
			users = append(users, e[:i])
		}
	}
	slices.Sort(users)
	return slices.Compact(users), nil
}

// presence runs one op of presence.lua.
func (b *Broker) presence(ctx context.Context, room, op string, users ...string) *redis.Cmd {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	args := []any{op, b.cfg.NodeID, ms(b.cfg.PresenceTTL)}
	for _, u := range users {
		args = append(args, u)
	}
	return presenceScript.Run(ctx, b.client, []string{b.presenceKey(room)}, args...)
}

// maintain is the maintenance loop: every PresenceTTL/3 it refreshes the
// node's registry entry and presence entries, and every retryInterval it
// retries failed subscriptions.
func (b *Broker) maintain(ctx context.Context) {
	refresh := time.NewTicker(b.cfg.PresenceTTL / 3)
	defer refresh.Stop()
	retry := time.NewTicker(retryInterval)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			b.heartbeat(ctx)
			b.refreshPresence(ctx)
		case <-retry.C:
			b.retryPending(ctx)
		}
	}
}

// refreshPresence extends the expiry of this node's presence entries. An
// entry found gone (the node could not refresh it in time) is added again.
func (b *Broker) refreshPresence(ctx context.Context) {
	b.presMu.Lock()
	rooms := make([]string, 0, len(b.held))
	for room := range b.held {
		rooms = append(rooms, room)
	}
	b.presMu.Unlock()
	for batch := range slices.Chunk(rooms, refreshBatch) {
		b.refreshRooms(ctx, batch)
	}
}

func (b *Broker) refreshRooms(ctx context.Context, rooms []string) {
	keys := make([][]string, 0, len(rooms))
	args := make([][]any, 0, len(rooms))
	b.presMu.Lock()
	for _, room := range rooms {
		a := []any{"refresh", b.cfg.NodeID, ms(b.cfg.PresenceTTL)}
		for user := range b.held[room] {
			a = append(a, user)
		}
		keys = append(keys, []string{b.presenceKey(room)})
		args = append(args, a)
	}
	b.presMu.Unlock()
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	cmds, err := runPipelined(ctx, b.client, presenceScript, keys, args)
	if err != nil {
		b.log.Warn().Err(err).Msg("presence refresh failed")
		return
	}
	for i, cmd := range cmds {
		gone, _ := cmd.StringSlice()
		for _, user := range gone {
			b.readd(ctx, rooms[i], user)
		}
	}
}

// readd adds again an entry that expired while this node still holds it.
func (b *Broker) readd(ctx context.Context, room, user string) {
	b.presMu.Lock()
	held := b.held[room][user]
	b.presMu.Unlock()
	if !held {
		return
	}
	b.log.Warn().Str("room", room).Str("user", user).Msg("presence entry had expired; adding it again")
	if _, err := b.Add(ctx, room, user); err != nil {
		b.log.Warn().Err(err).Msg("presence re-add failed")
	}
}

// unregister removes, best effort, this node's presence entries and
// registry entry.
func (b *Broker) unregister(ctx context.Context) {
	ctx, cancel := b.opContext(context.WithoutCancel(ctx))
	defer cancel()
	b.presMu.Lock()
	held := b.held
	b.held = make(map[string]map[string]bool)
	b.presMu.Unlock()
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for room, users := range held {
			for user := range users {
				p.ZRem(ctx, b.presenceKey(room), user+string(memberSep)+b.cfg.NodeID)
			}
		}
		p.Del(ctx, b.nodeKey(b.cfg.NodeID))
		return nil
	})
	if err != nil {
		b.log.Warn().Err(err).Msg("close: removing presence entries failed; they expire")
	}
}
