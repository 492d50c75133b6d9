package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// memberSep separates user, node and generation in a presence entry. User
// names cannot contain it (see protocol.ValidUser).
const memberSep = "|"

// refreshBatch caps the rooms refreshed in one pipeline.
const refreshBatch = 500

// settleDelay is how long a node keeps refusing joins after it re-registered
// its presence in a Redis that had lost it: long enough for every other live
// node to notice the loss (they check every retryInterval) and re-register
// too, so that a member list read afterwards is complete.
const settleDelay = 3 * retryInterval

// errPresenceLost is why presence is refused while Redis' copy of it is
// being rebuilt.
var errPresenceLost = errors.New("presence is being re-registered after Redis lost it")

// presenceState is this node's side of presence: the entries it holds in
// Redis (refreshed until removed), the removals to retry, and whether
// Redis still has what the node registered.
type presenceState struct {
	mu sync.Mutex
	// held is this node's entries by room and user.
	held map[string]map[string]string
	// removals are entries whose removal failed, by room: retried (and
	// member_left announced) once Redis answers.
	removals map[string]map[string]bool
	gen      uint64 // the last entry generation handed out
	// boot is the value of the boot key the entries were registered under;
	// "" until it was first read.
	boot string
	// lost is set when Redis is found to have lost the entries (its boot
	// key changed); settled is when joins are answered again after they
	// were registered anew.
	lost    bool
	settled time.Time
}

// Add implements hub.Presence: it records user in room for this node, to be
// refreshed every PresenceTTL/3 until Remove or Close, and announces
// member_joined when the user is new to the room.
func (b *Broker) Add(ctx context.Context, room, user string) (first bool, err error) {
	boot, err := b.presenceUsable()
	if err != nil {
		return false, fmt.Errorf("presence add: %w", err)
	}
	p := &b.pres
	p.mu.Lock()
	p.gen++
	entry := user + memberSep + b.cfg.NodeID + memberSep + strconv.FormatUint(p.gen, 36)
	p.mu.Unlock()
	n, err := b.presence(ctx, room, "add", boot, entry).Int64()
	if err != nil {
		return false, b.presenceErr("presence add", err)
	}
	p.mu.Lock()
	if p.held == nil {
		p.held = make(map[string]map[string]string)
	}
	if p.held[room] == nil {
		p.held[room] = make(map[string]string)
	}
	p.held[room][user] = entry
	p.mu.Unlock()
	return n == 1, nil
}

// Remove implements hub.Presence. A removal that fails is retried by the
// maintenance loop until Redis answers, so member_left is late, not lost.
func (b *Broker) Remove(ctx context.Context, room, user string) (last bool, err error) {
	p := &b.pres
	p.mu.Lock()
	entry := p.held[room][user]
	delete(p.held[room], user)
	if len(p.held[room]) == 0 {
		delete(p.held, room)
	}
	boot := p.boot
	p.mu.Unlock()
	if entry == "" {
		return false, nil // never added: nothing to remove
	}
	n, err := b.presence(ctx, room, "remove", boot, entry, "0").Int64()
	if err != nil {
		p.mu.Lock()
		p.queueRemovalLocked(room, entry)
		p.mu.Unlock()
		return false, b.presenceErr("presence remove", err)
	}
	return n == 1, nil
}

// Members implements hub.Presence: a page of the users with a live entry
// on any node, read from the room's sorted set of users by ZRANGEBYLEX.
func (b *Broker) Members(ctx context.Context, room, after string, limit int) (hub.MemberPage, error) {
	boot, err := b.presenceUsable()
	if err != nil {
		return hub.MemberPage{}, fmt.Errorf("presence members: %w", err)
	}
	reply, err := b.presence(ctx, room, "members", boot, after, strconv.Itoa(max(limit, 1))).Slice()
	if err != nil {
		return hub.MemberPage{}, b.presenceErr("presence members", err)
	}
	page, err := memberPage(reply)
	if err != nil {
		return hub.MemberPage{}, fmt.Errorf("presence members: %w", err)
	}
	return page, nil
}

// memberPage reads the members op's reply: the count, 1 when more follow,
// then the users.
func memberPage(reply []any) (hub.MemberPage, error) {
	if len(reply) < 2 {
		return hub.MemberPage{}, fmt.Errorf("reply of %d values", len(reply))
	}
	count, ok1 := reply[0].(int64)
	more, ok2 := reply[1].(int64)
	if !ok1 || !ok2 {
		return hub.MemberPage{}, fmt.Errorf("reply starts %T %T, want integers", reply[0], reply[1])
	}
	page := hub.MemberPage{Users: make([]string, 0, len(reply)-2), Count: int(count), More: more == 1}
	for _, v := range reply[2:] {
		user, ok := v.(string)
		if !ok {
			return hub.MemberPage{}, fmt.Errorf("user is a %T", v)
		}
		page.Users = append(page.Users, user)
	}
	return page, nil
}

// presenceUsable returns the boot id to check presence calls against, or
// an error matching hub.ErrUnavailable while Redis' copy of presence is
// incomplete: not checked yet, or lost and being rebuilt.
func (b *Broker) presenceUsable() (string, error) {
	p := &b.pres
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.boot == "" || p.lost || time.Now().Before(p.settled) {
		return "", &unavailableError{err: errPresenceLost}
	}
	return p.boot, nil
}

// presenceErr wraps a presence script's error; one reporting that Redis lost
// the entries marks them for re-registration.
func (b *Broker) presenceErr(step string, err error) error {
	if redis.HasErrorPrefix(err, "LOST") {
		b.pres.mu.Lock()
		b.pres.lost = true
		b.pres.mu.Unlock()
		return fmt.Errorf("%s: %w", step, &unavailableError{err: errPresenceLost})
	}
	return wrap(step, err)
}

// presence runs one op of presence.lua for room, checked against boot.
func (b *Broker) presence(ctx context.Context, room, op, boot string, args ...string) *redis.Cmd {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	return presenceScript.Run(ctx, b.client, b.presenceKeys(room), b.presenceArgs(room, op, boot, args...)...)
}

func (b *Broker) presenceKeys(room string) []string {
	return []string{b.presenceKey(room), b.presenceCountKey(room), b.bootKey(), b.presenceUsersKey(room)}
}

// presenceUsersKey names the room's sorted set of users, for paging.
func (b *Broker) presenceUsersKey(room string) string { return b.cfg.KeyPrefix + "pu:" + room }

// memberEventsMax is protocol.MemberEventsMax as presence.lua takes it.
var memberEventsMax = strconv.Itoa(protocol.MemberEventsMax)

func (b *Broker) presenceArgs(room, op, boot string, args ...string) []any {
	a := make([]any, 0, 6+len(args))
	a = append(a, op, ms(b.cfg.PresenceTTL), room, b.roomChannel(room), boot, memberEventsMax)
	for _, s := range args {
		a = append(a, s)
	}
	return a
}

// maintain is the maintenance loop: every PresenceTTL/3 it refreshes the
// node's registry entry and presence entries (reaping expired ones), and
// every retryInterval it checks that Redis still has the node's presence,
// retries failed removals and retries failed subscriptions.
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
			b.checkBoot(ctx)
			b.retryRemovals(ctx)
			b.retryPending(ctx)
		}
	}
}

// checkBoot reads the boot key, creating it when missing. A value other
// than the one the node registered under means Redis lost its data
// (restarted without persistence, flushed): the node registers its
// presence again, announcing its users anew, and answers joins once every
// node had time to do the same.
func (b *Broker) checkBoot(ctx context.Context) {
	cctx, cancel := b.opContext(ctx)
	boot, err := bootScript.Run(cctx, b.client, []string{b.bootKey()}, hub.NewEpoch()).Text()
	cancel()
	if err != nil {
		return // Redis is unreachable: the next tick checks again
	}
	p := &b.pres
	p.mu.Lock()
	known, lost := p.boot, p.lost
	p.mu.Unlock()
	if boot == known && !lost {
		return
	}
	if known != "" {
		b.log.Warn().Msg("Redis lost this node's presence (restarted or flushed): registering it again")
		b.heartbeat(ctx)
		if err := b.reregister(ctx, boot); err != nil {
			b.log.Warn().Err(err).Msg("registering presence again failed; retrying")
			return
		}
	}
	p.mu.Lock()
	p.boot, p.lost = boot, false
	if known != "" {
		p.settled = time.Now().Add(settleDelay)
	}
	p.mu.Unlock()
}

// reregister adds every entry the node holds again, under boot.
func (b *Broker) reregister(ctx context.Context, boot string) error {
	var keys [][]string
	var args [][]any
	p := &b.pres
	p.mu.Lock()
	for room, users := range p.held {
		for _, entry := range users {
			keys = append(keys, b.presenceKeys(room))
			args = append(args, b.presenceArgs(room, "add", boot, entry))
		}
	}
	p.mu.Unlock()
	for i := 0; i < len(keys); i += refreshBatch {
		end := min(i+refreshBatch, len(keys))
		ctx, cancel := b.opContext(ctx)
		_, err := runPipelined(ctx, b.client, presenceScript, keys[i:end], args[i:end])
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// retryRemovals runs the removals that failed again, announcing member_left
// for each user the room has no live entry of.
func (b *Broker) retryRemovals(ctx context.Context) {
	p := &b.pres
	p.mu.Lock()
	if len(p.removals) == 0 || p.boot == "" || p.lost {
		p.mu.Unlock()
		return
	}
	removals, boot := p.removals, p.boot
	p.removals = nil
	p.mu.Unlock()
	var keys [][]string
	var args [][]any
	var rooms, entries []string
	for room, set := range removals {
		for entry := range set {
			keys = append(keys, b.presenceKeys(room))
			args = append(args, b.presenceArgs(room, "remove", boot, entry, "1"))
			rooms, entries = append(rooms, room), append(entries, entry)
		}
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	cmds, err := runPipelined(ctx, b.client, presenceScript, keys, args)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range keys {
		if err != nil || cmds[i].Err() != nil {
			p.queueRemovalLocked(rooms[i], entries[i])
		}
	}
}

// queueRemovalLocked records the removal of entry from room for retry.
// p.mu is held.
func (p *presenceState) queueRemovalLocked(room, entry string) {
	if p.removals == nil {
		p.removals = make(map[string]map[string]bool)
	}
	if p.removals[room] == nil {
		p.removals[room] = make(map[string]bool)
	}
	p.removals[room][entry] = true
}

// refreshPresence extends the expiry of this node's presence entries,
// reaping the room's expired ones. An entry found gone (the node could not
// refresh it in time, and another node reaped it) is added again.
func (b *Broker) refreshPresence(ctx context.Context) {
	p := &b.pres
	p.mu.Lock()
	rooms := make([]string, 0, len(p.held))
	for room := range p.held {
		rooms = append(rooms, room)
	}
	p.mu.Unlock()
	for batch := range slices.Chunk(rooms, refreshBatch) {
		b.refreshRooms(ctx, batch)
	}
}

func (b *Broker) refreshRooms(ctx context.Context, rooms []string) {
	keys := make([][]string, 0, len(rooms))
	args := make([][]any, 0, len(rooms))
	p := &b.pres
	p.mu.Lock()
	boot := p.boot
	for _, room := range rooms {
		entries := make([]string, 0, len(p.held[room]))
		for _, entry := range p.held[room] {
			entries = append(entries, entry)
		}
		keys = append(keys, b.presenceKeys(room))
		args = append(args, b.presenceArgs(room, "refresh", boot, entries...))
	}
	p.mu.Unlock()
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	cmds, err := runPipelined(ctx, b.client, presenceScript, keys, args)
	if err != nil && !redis.HasErrorPrefix(err, "LOST") {
		b.log.Warn().Err(err).Msg("presence refresh failed")
		return
	}
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			b.presenceErr("presence refresh", err)
			continue
		}
		gone, _ := cmd.StringSlice()
		for _, entry := range gone {
			b.readd(ctx, rooms[i], entry)
		}
	}
}

// readd adds again an entry that expired while this node still holds it.
func (b *Broker) readd(ctx context.Context, room, entry string) {
	p := &b.pres
	p.mu.Lock()
	var user string
	for u, e := range p.held[room] {
		if e == entry {
			user = u
		}
	}
	p.mu.Unlock()
	if user == "" {
		return
	}
	b.log.Warn().Str("room", room).Str("user", user).Msg("presence entry had expired; adding it again")
	if _, err := b.Add(ctx, room, user); err != nil {
		b.log.Warn().Err(err).Msg("presence re-add failed")
	}
}

// unregister removes, best effort, this node's presence entries (announcing
// member_left where due, with the removals still to retry).
func (b *Broker) unregister(ctx context.Context) {
	ctx, cancel := b.opContext(context.WithoutCancel(ctx))
	defer cancel()
	p := &b.pres
	p.mu.Lock()
	held, removals, boot := p.held, p.removals, p.boot
	p.held, p.removals = nil, nil
	p.mu.Unlock()
	var keys [][]string
	var args [][]any
	for room, users := range held {
		for _, entry := range users {
			keys = append(keys, b.presenceKeys(room))
			args = append(args, b.presenceArgs(room, "remove", boot, entry, "1"))
		}
	}
	for room, set := range removals {
		for entry := range set {
			keys = append(keys, b.presenceKeys(room))
			args = append(args, b.presenceArgs(room, "remove", boot, entry, "1"))
		}
	}
	if len(keys) > 0 {
		if _, err := runPipelined(ctx, b.client, presenceScript, keys, args); err != nil {
			b.log.Warn().Err(err).Msg("close: removing presence entries failed; they expire")
		}
	}
}
