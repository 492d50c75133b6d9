package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	// listed is the rooms this node put in its room set in Redis (see
	// sweep.go), so that Add adds a room to it once.
	listed map[string]bool
	// slots is the state of the boot keys by slot (see bootSlot): one,
	// slot 0, on one Redis.
	slots map[int]*bootState
}

// Add implements hub.Presence: it records user in room for this node, to be
// refreshed every PresenceTTL/3 until Remove or Close, and announces
// member_joined when the user is new to the room. The node's first entry
// in a room also lists the room in the node's room set (sweep.go), in the
// same round trip.
func (b *Broker) Add(ctx context.Context, room, user string) (first bool, err error) {
	boot, err := b.usableBoot(ctx, room)
	if err != nil {
		return false, fmt.Errorf("presence add: %w", err)
	}
	p := &b.pres
	p.mu.Lock()
	p.gen++
	entry := user + memberSep + b.cfg.NodeID + memberSep + strconv.FormatUint(p.gen, 36)
	change := listNone
	if !p.listed[room] {
		change = listBefore
	}
	p.mu.Unlock()
	cmd, listErr := b.presenceListing(ctx, room, change, "add", boot, entry)
	res, err := b.presenceResult(room, cmd)
	if err != nil {
		return false, b.presenceErr("presence add", room, err)
	}
	p.mu.Lock()
	if p.held == nil {
		p.held = make(map[string]map[string]string)
	}
	if p.held[room] == nil {
		p.held[room] = make(map[string]string)
	}
	p.held[room][user] = entry
	if change == listBefore && listErr == nil {
		p.markListedLocked(room)
	}
	p.mu.Unlock()
	return res == int64(1), nil
}

// Remove implements hub.Presence. A removal that fails is retried by the
// maintenance loop until Redis answers, so member_left is late, not lost;
// the retry reports the user through the ReportDepartures function when it
// took the last entry, as the hub was told of an error. The node's last
// entry in a room also takes the room out of the node's room set.
func (b *Broker) Remove(ctx context.Context, room, user string) (last bool, err error) {
	p := &b.pres
	p.mu.Lock()
	entry := p.held[room][user]
	delete(p.held[room], user)
	if len(p.held[room]) == 0 {
		delete(p.held, room)
	}
	if entry == "" {
		p.mu.Unlock()
		return false, nil // never added: nothing to remove
	}
	change := p.unlistLocked(room)
	boot := p.bootLocked(b.bootSlot(room))
	p.mu.Unlock()
	cmd, _ := b.presenceListing(ctx, room, change, "remove", boot, entry, "0")
	res, err := b.presenceResult(room, cmd)
	if err != nil {
		p.mu.Lock()
		p.queueRemovalLocked(room, entry)
		p.mu.Unlock()
		return false, b.presenceErr("presence remove", room, err)
	}
	return res == int64(1), nil
}

// Members implements hub.Presence: a page of the users with a live entry
// on any node, read from the room's sorted set of users by ZRANGEBYLEX.
func (b *Broker) Members(ctx context.Context, room, after string, limit int) (hub.MemberPage, error) {
	boot, err := b.usableBoot(ctx, room)
	if err != nil {
		return hub.MemberPage{}, fmt.Errorf("presence members: %w", err)
	}
	res, err := b.presenceResult(room, b.presence(ctx, room, "members", boot, after, strconv.Itoa(max(limit, 1))))
	if err != nil {
		return hub.MemberPage{}, b.presenceErr("presence members", room, err)
	}
	reply, ok := res.([]any)
	if !ok {
		return hub.MemberPage{}, fmt.Errorf("presence members: reply is a %T", res)
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

// presence runs one op of presence.lua for room, checked against boot.
func (b *Broker) presence(ctx context.Context, room, op, boot string, args ...string) *redis.Cmd {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	return presenceScript.Run(ctx, b.client, b.presenceKeys(room), b.presenceArgs(room, op, boot, args...)...)
}

// presenceResult returns the op's result from a presence.lua reply,
// {result, left}, after reporting the users in left: those its reap of
// expired entries left absent from room (see ReportDepartures). Every
// caller of presence.lua reads its reply through it, so that each reaped
// user is reported once, by the node whose script reaped it.
func (b *Broker) presenceResult(room string, cmd *redis.Cmd) (any, error) {
	v, err := cmd.Result()
	if err != nil {
		return nil, err
	}
	reply, ok := v.([]any)
	if !ok || len(reply) != 2 {
		return nil, fmt.Errorf("presence reply %v: want {result, left}", v)
	}
	list, ok := reply[1].([]any)
	if !ok {
		return nil, fmt.Errorf("presence reply: left is a %T", reply[1])
	}
	left := make([]string, 0, len(list))
	for _, u := range list {
		if user, ok := u.(string); ok {
			left = append(left, user)
		}
	}
	b.departed(room, left)
	return reply[0], nil
}

// ReportDepartures implements hub.DepartureReporter. f is called with the
// users that left a room on every node without a Remove that told a hub
// so: those whose entries expired (their node crashed), reported by the
// node whose presence call reaped them (a refresh, a join, a member list,
// or a sweep of the rooms of a gone node: sweep.go), and those whose failed
// Remove this node retried and found it took their last entry. A script is
// atomic, so each departure is reported by one node, once, unless the
// reply of the call that found it is lost (a Redis call that timed out).
// f is called on the goroutine of that call (a hub's, or the maintenance
// loop's) and must not block. Calling ReportDepartures again replaces f;
// nil stops the reports.
func (b *Broker) ReportDepartures(f func(room string, users []string)) {
	if f == nil {
		b.departures.Store(nil)
		return
	}
	b.departures.Store(&f)
}

// ReportReturns implements hub.ReturnReporter. f is called with a user
// whose entry in room this node still held but found expired at a refresh
// (the node could not refresh it in time: cut off from Redis, or stalled,
// and another node may have reaped it and reported the departure), once
// the node added it again and the user was then in the room on no other
// node. f is called on the maintenance loop and must not block. Calling
// ReportReturns again replaces f; nil stops the reports.
func (b *Broker) ReportReturns(f func(room string, users []string)) {
	if f == nil {
		b.returns.Store(nil)
		return
	}
	b.returns.Store(&f)
}

// departed reports users that left room (see ReportDepartures).
func (b *Broker) departed(room string, users []string) {
	if len(users) == 0 {
		return
	}
	if f := b.departures.Load(); f != nil {
		(*f)(room, users)
	}
}

func (b *Broker) presenceKeys(room string) []string {
	return []string{b.presenceKey(room), b.presenceCountKey(room), b.bootKey(b.bootSlot(room)), b.presenceUsersKey(room)}
}

// memberEventsMax is protocol.MemberEventsMax as presence.lua takes it.
var memberEventsMax = strconv.Itoa(protocol.MemberEventsMax)

func (b *Broker) presenceArgs(room, op, boot string, args ...string) []any {
	a := make([]any, 0, 7+len(args))
	a = append(a, op, ms(b.cfg.PresenceTTL), room, b.roomChannel(room), boot, memberEventsMax, b.publishCmd())
	for _, s := range args {
		a = append(a, s)
	}
	return a
}

// maintain is the maintenance loop: every PresenceTTL/3 it refreshes the
// node's registry entry and presence entries (reaping expired ones), and
// every retryInterval it checks that Redis still has the node's presence,
// retries failed removals and failed subscriptions, and sweeps the rooms of
// gone nodes that are due (sweep.go).
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
			b.adoptPrevious(ctx)
			b.sweepDue(ctx)
		}
	}
}

// retryRemovals runs the removals that failed again, announcing member_left
// for each user the room has no live entry of, and reporting it (see
// ReportDepartures): the hub, told of the error, did not.
func (b *Broker) retryRemovals(ctx context.Context) {
	p := &b.pres
	var keys [][]string
	var args [][]any
	var rooms, entries []string
	p.mu.Lock()
	for room, set := range p.removals {
		st := p.slots[b.bootSlot(room)]
		if st == nil || st.boot == "" || st.lost {
			continue // retried once the boot key was read again
		}
		for entry := range set {
			keys = append(keys, b.presenceKeys(room))
			args = append(args, b.presenceArgs(room, "remove", st.boot, entry, "1"))
			rooms, entries = append(rooms, room), append(entries, entry)
		}
		delete(p.removals, room)
	}
	p.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	cmds, _ := runPipelined(ctx, b.client, presenceScript, keys, args)
	var done []string
	for i := range keys {
		res, err := b.presenceResult(rooms[i], cmds[i])
		if err != nil {
			p.mu.Lock()
			p.queueRemovalLocked(rooms[i], entries[i])
			p.mu.Unlock()
			continue
		}
		if res == int64(1) {
			b.departed(rooms[i], []string{userOf(entries[i])})
		}
		done = append(done, rooms[i])
	}
	b.unlistIdle(ctx, done)
}

// userOf returns the user of a presence entry.
func userOf(entry string) string {
	user, _, _ := strings.Cut(entry, memberSep)
	return user
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
// reaping the room's expired ones, and lists the node's rooms, those of the
// removals to retry too, in its room set again (sweep.go). An entry found
// gone (the node could not refresh it in time, and another node reaped it)
// is added again.
func (b *Broker) refreshPresence(ctx context.Context) {
	p := &b.pres
	p.mu.Lock()
	rooms := make([]string, 0, len(p.held))
	for room := range p.held {
		rooms = append(rooms, room)
	}
	listed := slices.Clone(rooms)
	for room := range p.removals {
		if p.held[room] == nil {
			listed = append(listed, room)
		}
	}
	p.mu.Unlock()
	b.listRooms(ctx, listed)
	for batch := range slices.Chunk(rooms, refreshBatch) {
		b.refreshRooms(ctx, batch)
	}
}

func (b *Broker) refreshRooms(ctx context.Context, rooms []string) {
	keys := make([][]string, 0, len(rooms))
	args := make([][]any, 0, len(rooms))
	p := &b.pres
	p.mu.Lock()
	for _, room := range rooms {
		entries := make([]string, 0, len(p.held[room]))
		for _, entry := range p.held[room] {
			entries = append(entries, entry)
		}
		keys = append(keys, b.presenceKeys(room))
		args = append(args, b.presenceArgs(room, "refresh", p.bootLocked(b.bootSlot(room)), entries...))
	}
	p.mu.Unlock()
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	cmds, err := runPipelined(ctx, b.client, presenceScript, keys, args)
	if err != nil && !redis.HasErrorPrefix(err, "LOST") {
		b.log.Warn().Err(err).Msg("presence refresh failed")
	}
	for i, cmd := range cmds {
		res, err := b.presenceResult(rooms[i], cmd)
		if err != nil {
			b.presenceErr("presence refresh", rooms[i], err)
			continue
		}
		gone, _ := res.([]any)
		for _, entry := range gone {
			if entry, ok := entry.(string); ok {
				b.readd(ctx, rooms[i], entry)
			}
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
	first, err := b.Add(ctx, room, user)
	if err != nil {
		b.log.Warn().Err(err).Msg("presence re-add failed")
		return
	}
	if f := b.returns.Load(); first && f != nil {
		(*f)(room, []string{user})
	}
}

// unregister removes, best effort, this node's presence entries (announcing
// member_left where due, with the removals still to retry), reports the
// users it took the last entry of (the hub did not remove them: see
// ReportDepartures), and reports whether every removal was made.
func (b *Broker) unregister(ctx context.Context) bool {
	ctx, cancel := b.opContext(context.WithoutCancel(ctx))
	defer cancel()
	p := &b.pres
	p.mu.Lock()
	held, removals := p.held, p.removals
	p.held, p.removals, p.listed = nil, nil, nil
	var keys [][]string
	var args [][]any
	var rooms, entries []string
	queue := func(room, boot, entry string) {
		keys = append(keys, b.presenceKeys(room))
		args = append(args, b.presenceArgs(room, "remove", boot, entry, "1"))
		rooms, entries = append(rooms, room), append(entries, entry)
	}
	for room, users := range held {
		boot := p.bootLocked(b.bootSlot(room))
		for _, entry := range users {
			queue(room, boot, entry)
		}
	}
	for room, set := range removals {
		boot := p.bootLocked(b.bootSlot(room))
		for entry := range set {
			queue(room, boot, entry)
		}
	}
	p.mu.Unlock()
	if len(keys) == 0 {
		return true
	}
	cmds, err := runPipelined(ctx, b.client, presenceScript, keys, args)
	for i, cmd := range cmds {
		if res, rerr := b.presenceResult(rooms[i], cmd); rerr == nil && res == int64(1) {
			b.departed(rooms[i], []string{userOf(entries[i])})
		}
	}
	if err != nil {
		b.log.Warn().Err(err).Msg("close: removing presence entries failed; they expire")
		return false
	}
	return true
}
