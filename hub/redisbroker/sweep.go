package redisbroker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sweeping the rooms of a node that is gone.
//
// A crashed node's presence entries expire, and the first presence script
// that runs for a room afterwards reaps them, announces member_left and
// reports the users (ReportDepartures). A room where another node holds
// entries is refreshed by that node every PresenceTTL/3, so its reap comes
// soon; in a room where no other node does, nothing may run for a long
// time. So each node keeps in Redis the set of the rooms it holds entries
// in (nodeRoomsKey): a room goes in with the node's first entry in it, in
// the same pipeline as the add, and out with its last removal; every
// refresh lists all the node's rooms again and renews the set's expiry
// (roomsTTL). On a cluster the set is in a slot of its own ({n:ID}), so it
// is written by commands of its own, never by a room's script.
//
// A node's set is swept (each room reaped, then taken out of the set) when
// the node is gone:
//
//   - Its registry entry expired (it stopped beating): the live node whose
//     heartbeat took the entry out sweeps it, and the set of the node's
//     previous life. registry.lua takes an expired entry out atomically,
//     so exactly one node does. It sweeps once every entry the gone node
//     can have written has expired: an entry written up to PresenceTTL/3
//     after the last heartbeat (the next one was due then) expires up to
//     PresenceTTL/3 after the registry entry, plus sweepSlack for the
//     maintenance loop's lag. So the users of a node that crashed leave a
//     room nobody else is in between 7/6 and 3/2 PresenceTTL after the
//     crash (plus one retryInterval); a room with members on live nodes
//     as soon as their entries expire and a live node refreshes it,
//     between 2/3 and 4/3 PresenceTTL after the crash.
//   - A node starts with the id of an earlier life whose set is still
//     there (restarted under the same --node-id, or it claimed an expired
//     id): it moves that set to prevRoomsKey and sweeps it PresenceTTL plus
//     sweepSlack later, once that life's entries have expired.
//
// Sweeps run in the maintenance loop, in batches of sweepBatch rooms (an
// SSCAN and one pipeline of reaps), at most sweepBudget batches every
// retryInterval, so that a gone node with many rooms does not hold up
// heartbeats and refreshes. A batch that fails is tried again from the
// same place. A sweep is the sweeping node's alone: when that node stops
// too before it is done, the rest of the set is left to expire, and the
// users in its untouched rooms leave with their keys, unreported.

// sweepBatch caps the rooms reaped in one pipeline of a sweep, and
// sweepBudget the batches run in one tick of the maintenance loop.
const (
	sweepBatch  = 500
	sweepBudget = 20
)

// roomsTTL is how long a node's room set outlives the node's last refresh:
// long enough for the sweep PresenceTTL/2 after its registry entry expired.
func (b *Broker) roomsTTL() time.Duration { return 3 * b.cfg.PresenceTTL }

// sweepSlack is how long a sweep waits beyond the latest expiry of the
// entries it is for: the maintenance loop's lag between a heartbeat and the
// refreshes after it.
func (b *Broker) sweepSlack() time.Duration { return b.cfg.PresenceTTL / 6 }

// sweepState is the room sets this node is to sweep.
type sweepState struct {
	mu   sync.Mutex
	jobs []*sweepJob
	// adopted is set once the room set of this id's previous life was
	// looked for (adoptPrevious).
	adopted bool
}

// sweepJob is one room set to sweep from at on. Only the maintenance loop
// touches cursor.
type sweepJob struct {
	key    string
	at     time.Time
	cursor uint64 // where the SSCAN goes on
}

// listChange is what an op of presence.lua changes in the node's room set.
type listChange int

const (
	listNone    listChange = iota
	listBefore             // add the room before the op
	unlistAfter            // take the room out after the op
)

// presenceListing runs one op of presence.lua for room, as presence does,
// in one pipeline with change to the node's room set, and returns the op's
// command and the error of the change. On one Redis the pipeline runs in
// order; on a cluster the set's command goes to its master meanwhile.
func (b *Broker) presenceListing(ctx context.Context, room string, change listChange, op, boot string, args ...string) (*redis.Cmd, error) {
	if change == listNone {
		return b.presence(ctx, room, op, boot, args...), nil
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	key := b.nodeRoomsKey(b.cfg.NodeID)
	keys, argv := b.presenceKeys(room), b.presenceArgs(room, op, boot, args...)
	var cmd *redis.Cmd
	var set redis.Cmder
	run := func(eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd) {
		b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			if change == listBefore {
				set = p.SAdd(ctx, key, room)
				p.PExpire(ctx, key, b.roomsTTL())
			}
			cmd = eval(ctx, p, keys, argv...)
			if change == unlistAfter {
				set = p.SRem(ctx, key, room)
			}
			return nil
		})
	}
	run(presenceScript.EvalSha)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		run(presenceScript.Eval)
	}
	return cmd, set.Err()
}

// markListedLocked records that room is in the node's room set. p.mu is
// held.
func (p *presenceState) markListedLocked(room string) {
	if p.listed == nil {
		p.listed = make(map[string]bool)
	}
	p.listed[room] = true
}

// unlistLocked returns unlistAfter, and forgets that room is listed, when
// the node holds nothing in room any more (no entry, no removal to retry)
// while it is listed. p.mu is held.
func (p *presenceState) unlistLocked(room string) listChange {
	if !p.listed[room] || len(p.held[room]) > 0 || len(p.removals[room]) > 0 {
		return listNone
	}
	delete(p.listed, room)
	return unlistAfter
}

// unlistIdle takes the rooms the node holds nothing in any more out of its
// room set (best effort: a room left in it costs a reap when it is swept).
func (b *Broker) unlistIdle(ctx context.Context, rooms []string) {
	p := &b.pres
	var idle []any
	p.mu.Lock()
	for _, room := range rooms {
		if p.unlistLocked(room) == unlistAfter {
			idle = append(idle, room)
		}
	}
	p.mu.Unlock()
	if len(idle) > 0 {
		ctx, cancel := b.opContext(ctx)
		defer cancel()
		b.client.SRem(ctx, b.nodeRoomsKey(b.cfg.NodeID), idle...)
	}
}

// listRooms puts rooms in the node's room set again and renews its expiry:
// a room whose add was not listed (the command failed), or taken out by a
// node that swept this one (its heartbeats were late), is listed again
// within PresenceTTL/3.
func (b *Broker) listRooms(ctx context.Context, rooms []string) {
	if len(rooms) == 0 {
		return
	}
	key := b.nodeRoomsKey(b.cfg.NodeID)
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for batch := range slices.Chunk(rooms, refreshBatch) {
			members := make([]any, len(batch))
			for i, room := range batch {
				members[i] = room
			}
			p.SAdd(ctx, key, members...)
		}
		p.PExpire(ctx, key, b.roomsTTL())
		return nil
	})
	if err != nil {
		b.log.Warn().Err(err).Msg("listing the node's rooms failed")
		return
	}
	p := &b.pres
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, room := range rooms {
		if len(p.held[room]) > 0 || len(p.removals[room]) > 0 {
			p.markListedLocked(room)
		}
	}
}

// sweepGone schedules the sweep of the room sets of the nodes a heartbeat
// took out of the registry: reply is registry.lua's, {id, ms since the
// entry expired, ...}.
func (b *Broker) sweepGone(reply []any) {
	wait := b.cfg.PresenceTTL/3 + b.sweepSlack()
	now := time.Now()
	for i := 0; i+1 < len(reply); i += 2 {
		id, _ := reply[i].(string)
		since, _ := reply[i+1].(int64)
		at := now.Add(wait - time.Duration(since)*time.Millisecond)
		b.log.Warn().Str("gone_node", id).Msg("a node's registry entry expired (it crashed or lost Redis): sweeping its rooms")
		b.scheduleSweep(b.nodeRoomsKey(id), at)
		b.scheduleSweep(b.prevRoomsKey(id), at)
	}
}

// adoptPrevious moves the room set of an earlier life of this node's id,
// when there is one, to prevRoomsKey, and schedules its sweep once that
// life's entries have expired. Start calls it, and the maintenance loop
// until it succeeded once.
func (b *Broker) adoptPrevious(ctx context.Context) {
	s := &b.sweeps
	s.mu.Lock()
	done := s.adopted
	s.mu.Unlock()
	if done {
		return
	}
	id := b.cfg.NodeID
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	n, err := adoptScript.Run(ctx, b.client, []string{b.nodeRoomsKey(id), b.prevRoomsKey(id)}, ms(b.roomsTTL())).Int()
	if err != nil {
		return // tried again every retryInterval
	}
	s.mu.Lock()
	s.adopted = true
	s.mu.Unlock()
	p := &b.pres
	p.mu.Lock()
	p.listed = nil // moved too, when Redis was down at Start: listed again
	p.mu.Unlock()
	if n > 0 {
		b.log.Info().Int("rooms", n).Msg("this node id had an earlier life: sweeping its rooms once its presence entries expired")
		b.scheduleSweep(b.prevRoomsKey(id), time.Now().Add(b.cfg.PresenceTTL+b.sweepSlack()))
	}
}

// scheduleSweep schedules the sweep of the room set key from at on; a
// sweep of key already scheduled waits until the later of the two times.
func (b *Broker) scheduleSweep(key string, at time.Time) {
	s := &b.sweeps
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.key == key {
			if at.After(j.at) {
				j.at = at
			}
			return
		}
	}
	s.jobs = append(s.jobs, &sweepJob{key: key, at: at})
}

// sweepDue runs the sweeps that are due, up to sweepBudget batches.
func (b *Broker) sweepDue(ctx context.Context) {
	s := &b.sweeps
	now := time.Now()
	s.mu.Lock()
	var due []*sweepJob
	for _, j := range s.jobs {
		if !now.Before(j.at) {
			due = append(due, j)
		}
	}
	s.mu.Unlock()
	budget := sweepBudget
	for _, j := range due {
		for ; budget > 0; budget-- {
			done, err := b.sweepBatch(ctx, j)
			if err != nil {
				b.log.Warn().Err(err).Str("set", j.key).Msg("sweeping a gone node's rooms failed; retrying")
				break
			}
			if done {
				s.mu.Lock()
				s.jobs = slices.DeleteFunc(s.jobs, func(x *sweepJob) bool { return x == j })
				s.mu.Unlock()
				break
			}
		}
	}
}

// sweepBatch reaps the next batch of rooms of j's set, takes those reaped
// out of it, and reports whether the set is done.
func (b *Broker) sweepBatch(ctx context.Context, j *sweepJob) (done bool, err error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	rooms, cursor, err := b.client.SScan(ctx, j.key, j.cursor, "", sweepBatch).Result()
	if err != nil {
		return false, wrap("sweep scan", err)
	}
	if len(rooms) > 0 {
		keys := make([][]string, len(rooms))
		args := make([][]any, len(rooms))
		for i, room := range rooms {
			keys[i], args[i] = b.presenceKeys(room), b.presenceArgs(room, "reap", "")
		}
		cmds, perr := runPipelined(ctx, b.client, presenceScript, keys, args)
		var reaped []any
		for i, cmd := range cmds {
			if _, err := b.presenceResult(rooms[i], cmd); err == nil {
				reaped = append(reaped, rooms[i])
			}
		}
		if len(reaped) > 0 {
			b.client.SRem(ctx, j.key, reaped...)
		}
		if perr != nil {
			return false, wrap("sweep reap", perr)
		}
	}
	j.cursor = cursor
	return cursor == 0, nil
}
