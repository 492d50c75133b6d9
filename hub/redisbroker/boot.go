package redisbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
)

// A boot key holds a random value, set when it is missing: a value that
// changes tells a node that Redis lost its data (restarted without
// persistence, flushed), presence entries included. presence.lua checks it
// with every call, atomically with the entries. On one Redis there is one
// boot key; on a cluster one per slot (see bootKey), checked by the scripts
// of that slot's rooms, so that a shard restarted empty is detected for the
// rooms on it and only for them.

// bootState is what a node knows of one boot key.
type bootState struct {
	// boot is the value the node's entries of the slot were registered
	// under; "" until it was first read.
	boot string
	// lost is set when Redis is found to have lost the entries (the boot
	// key changed); settled is when joins are answered again after they
	// were registered anew.
	lost    bool
	settled time.Time
}

// bootLocked returns the boot value of slot, "" when unknown. p.mu is held.
func (p *presenceState) bootLocked(slot int) string {
	if st := p.slots[slot]; st != nil {
		return st.boot
	}
	return ""
}

// presenceUsable returns the boot id to check presence calls of slot
// against, or an error matching hub.ErrUnavailable while Redis' copy of
// that presence is incomplete: not checked yet, or lost and being rebuilt.
func (b *Broker) presenceUsable(slot int) (string, error) {
	p := &b.pres
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.slots[slot]
	if st == nil || st.boot == "" || st.lost || time.Now().Before(st.settled) {
		return "", &unavailableError{err: errPresenceLost}
	}
	return st.boot, nil
}

// usableBoot is presenceUsable for room's slot. On a cluster a slot's boot
// key is read the first time the node uses it; on one Redis Start and the
// maintenance loop read the one boot key.
func (b *Broker) usableBoot(ctx context.Context, room string) (string, error) {
	slot := b.bootSlot(room)
	if b.cfg.Cluster {
		b.pres.mu.Lock()
		known := b.pres.bootLocked(slot) != ""
		b.pres.mu.Unlock()
		if !known {
			b.checkSlots(ctx, []int{slot})
		}
	}
	return b.presenceUsable(slot)
}

// presenceErr wraps a presence script's error for room; one reporting that
// Redis lost the entries marks them for re-registration.
func (b *Broker) presenceErr(step, room string, err error) error {
	if redis.HasErrorPrefix(err, "LOST") {
		p := &b.pres
		p.mu.Lock()
		if st := p.slots[b.bootSlot(room)]; st != nil {
			st.lost = true
		}
		p.mu.Unlock()
		return fmt.Errorf("%s: %w", step, &unavailableError{err: errPresenceLost})
	}
	return wrap(step, err)
}

// checkBoot reads the boot keys the node's presence depends on, creating
// them when missing. A value other than the one the node registered under
// means Redis lost its data: the node registers that presence again,
// announcing its users anew, and answers joins of those rooms once every
// node had time to do the same.
//
// On a cluster a master that lost its data lost the boot keys of all its
// slots: the node reads one boot key per master, of a slot it knows, and
// the others of that master only when that one changed.
func (b *Broker) checkBoot(ctx context.Context) {
	if !b.cfg.Cluster {
		b.checkSlots(ctx, []int{0})
		return
	}
	cc, _ := b.client.(*redis.ClusterClient)
	p := &b.pres
	p.mu.Lock()
	bySlot := make(map[string][]int)
	var first []int
	for slot, st := range p.slots {
		client, err := cc.MasterForKey(ctx, b.bootKey(slot))
		if err != nil || st.boot == "" {
			continue
		}
		addr := client.Options().Addr
		if len(bySlot[addr]) == 0 || st.lost {
			first = append(first, slot)
		}
		bySlot[addr] = append(bySlot[addr], slot)
	}
	p.mu.Unlock()
	var rest []int
	for _, slot := range b.checkSlots(ctx, first) {
		client, err := cc.MasterForKey(ctx, b.bootKey(slot))
		if err == nil {
			rest = append(rest, bySlot[client.Options().Addr]...)
		}
	}
	b.checkSlots(ctx, rest)
}

// checkSlots reads (creating them when missing) the boot keys of slots,
// registers the node's presence in those that changed again, and returns
// them.
func (b *Broker) checkSlots(ctx context.Context, slots []int) []int {
	if len(slots) == 0 {
		return nil
	}
	keys := make([][]string, len(slots))
	args := make([][]any, len(slots))
	for i, slot := range slots {
		keys[i], args[i] = []string{b.bootKey(slot)}, []any{hub.NewEpoch()}
	}
	cctx, cancel := b.opContext(ctx)
	cmds, _ := runPipelined(cctx, b.client, bootScript, keys, args)
	cancel()
	p := &b.pres
	fresh := make(map[int]string) // slots seen for the first time
	lost := make(map[int]string)  // slots whose boot value changed
	p.mu.Lock()
	for i, slot := range slots {
		if cmds == nil {
			break
		}
		boot, err := cmds[i].Text()
		if err != nil {
			continue // unreachable: the next tick checks again
		}
		st := p.slots[slot]
		switch {
		case st == nil || st.boot == "":
			fresh[slot] = boot
		case st.boot != boot || st.lost:
			lost[slot] = boot
		}
	}
	p.mu.Unlock()
	if len(lost) > 0 {
		b.log.Warn().Int("slots", len(lost)).Msg("Redis lost this node's presence (restarted or flushed): registering it again")
		b.heartbeat(ctx)
		if err := b.reregister(ctx, lost); err != nil {
			b.log.Warn().Err(err).Msg("registering presence again failed; retrying")
			clear(lost)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots == nil {
		p.slots = make(map[int]*bootState)
	}
	for slot, boot := range fresh {
		if st := p.slots[slot]; st == nil || st.boot == "" {
			p.slots[slot] = &bootState{boot: boot}
		}
	}
	changed := make([]int, 0, len(lost))
	for slot, boot := range lost {
		p.slots[slot] = &bootState{boot: boot, settled: time.Now().Add(settleDelay)}
		changed = append(changed, slot)
	}
	return changed
}

// reregister adds every entry the node holds in the rooms of the slots of
// boots again, each under its slot's new boot value.
func (b *Broker) reregister(ctx context.Context, boots map[int]string) error {
	var keys [][]string
	var args [][]any
	var rooms []string
	p := &b.pres
	p.mu.Lock()
	for room, users := range p.held {
		boot, ok := boots[b.bootSlot(room)]
		if !ok {
			continue
		}
		for _, entry := range users {
			keys = append(keys, b.presenceKeys(room))
			args = append(args, b.presenceArgs(room, "add", boot, entry))
			rooms = append(rooms, room)
		}
	}
	p.mu.Unlock()
	for i := 0; i < len(keys); i += refreshBatch {
		end := min(i+refreshBatch, len(keys))
		ctx, cancel := b.opContext(ctx)
		cmds, err := runPipelined(ctx, b.client, presenceScript, keys[i:end], args[i:end])
		cancel()
		for j, cmd := range cmds {
			b.presenceResult(rooms[i+j], cmd) // reports what it reaped
		}
		if err != nil {
			return err
		}
	}
	return nil
}
