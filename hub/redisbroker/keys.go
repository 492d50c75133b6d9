package redisbroker

import (
	"strconv"
	"strings"
	"sync"
)

// The key layout. Every key and channel name starts with Config.KeyPrefix.
//
// On one Redis the names are the prefix, a kind and the room or user name:
// sb:m:ROOM (meta), sb:h:ROOM (history), sb:p:ROOM, sb:pc:ROOM, sb:pu:ROOM
// (presence), sb:mod:ROOM (moderation), sb:ip:KEY and sb:iu:KEY
// (idempotency), sb:rd:USER (the user's read positions), sb:boot, sb:nodes,
// sb:node:ID, the rooms a node holds presence in sb:nr:ID and those of its
// previous life sb:nrp:ID (see sweep.go), the webhook backlog sb:webhooks
// and sb:webhooks:bytes (see webhook.go), and the channels sb:r:ROOM and
// sb:u:USER.
//
// On a Redis Cluster a Lua script may only touch keys of one slot, and
// SPUBLISH in a script only channels of that slot, so names carry a hash
// tag (the part between the first '{' and the next '}', which alone decides
// the slot): everything of a room is tagged {r:ROOM} (sb:{r:ROOM}:m,
// sb:{r:ROOM}:h, its presence keys, sb:{r:ROOM}:mod, the idempotency keys of its publishes
// sb:{r:ROOM}:ip:KEY and its channel sb:{r:ROOM}), everything of a user
// {u:USER} (sb:{u:USER}:iu:KEY, sb:{u:USER}:rd, channel sb:{u:USER}), the
// registry {nodes}, a node's room sets {n:ID} (sb:{n:ID}:nr, sb:{n:ID}:nrp),
// the webhook backlog {webhooks}.
// Presence's boot key is one per slot, sb:{TAG}:boot with a TAG chosen to
// hash to that slot (see slotTags), so that a room's presence script checks
// the boot key of its own slot. A tag always starts with "r:" or "u:" and
// ends at the first '}' after it, so a name containing '{' or '}' (which
// package protocol refuses anyway) can only move its room to another slot,
// never split it: every name of one room is built alike. KeyPrefix must not
// contain '{' or '}' (Config.validate).

func (b *Broker) metaKey(room string) string     { return b.roomKey(room, "m") }
func (b *Broker) streamKey(room string) string   { return b.roomKey(room, "h") }
func (b *Broker) presenceKey(room string) string { return b.roomKey(room, "p") }

// modKey names the room's moderation hash (moderate.lua).
func (b *Broker) modKey(room string) string { return b.roomKey(room, "mod") }
func (b *Broker) presenceCountKey(room string) string {
	return b.roomKey(room, "pc")
}

// presenceUsersKey names the room's sorted set of users, for paging.
func (b *Broker) presenceUsersKey(room string) string { return b.roomKey(room, "pu") }

// pubIdemKey names a publish's idempotency key: per room on a cluster (the
// hub's keys name their room anyway), global on one Redis.
func (b *Broker) pubIdemKey(room, key string) string {
	if b.cfg.Cluster {
		return b.roomKey(room, "ip:"+key)
	}
	return b.cfg.KeyPrefix + "ip:" + key
}

func (b *Broker) userIdemKey(user, key string) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{u:" + user + "}:iu:" + key
	}
	return b.cfg.KeyPrefix + "iu:" + key
}

// readsKey names the user's hash of read positions.
func (b *Broker) readsKey(user string) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{u:" + user + "}:rd"
	}
	return b.cfg.KeyPrefix + "rd:" + user
}

// roomKey names the room's key of kind.
func (b *Broker) roomKey(room, kind string) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{r:" + room + "}:" + kind
	}
	return b.cfg.KeyPrefix + kind + ":" + room
}

func (b *Broker) roomChannel(room string) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{r:" + room + "}"
	}
	return b.cfg.KeyPrefix + "r:" + room
}

func (b *Broker) userChannel(user string) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{u:" + user + "}"
	}
	return b.cfg.KeyPrefix + "u:" + user
}

// channelName returns the room or user a channel name is of.
func (b *Broker) channelName(channel string) (name string, room, ok bool) {
	if b.cfg.Cluster {
		rest, ok := strings.CutPrefix(channel, b.cfg.KeyPrefix+"{")
		if !ok || !strings.HasSuffix(rest, "}") || len(rest) < 3 {
			return "", false, false
		}
		name = rest[2 : len(rest)-1]
		switch rest[:2] {
		case "r:":
			return name, true, true
		case "u:":
			return name, false, true
		}
		return "", false, false
	}
	if name, ok := strings.CutPrefix(channel, b.cfg.KeyPrefix+"r:"); ok {
		return name, true, true
	}
	if name, ok := strings.CutPrefix(channel, b.cfg.KeyPrefix+"u:"); ok {
		return name, false, true
	}
	return "", false, false
}

// registryKey is the registry's sorted set, nodeKey a node's info key: one
// slot on a cluster, as registry.lua reads both.
func (b *Broker) registryKey() string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{nodes}"
	}
	return b.cfg.KeyPrefix + "nodes"
}

func (b *Broker) nodeKey(id string) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{nodes}:node:" + id
	}
	return b.cfg.KeyPrefix + "node:" + id
}

// nodeRoomsKey names the set of the rooms node holds presence entries in,
// and prevRoomsKey that of the rooms of its previous life (see sweep.go):
// one slot on a cluster, apart from the registry's, as no script touches
// them with it.
func (b *Broker) nodeRoomsKey(node string) string { return b.nodeSetKey(node, "nr") }

func (b *Broker) prevRoomsKey(node string) string { return b.nodeSetKey(node, "nrp") }

func (b *Broker) nodeSetKey(node, kind string) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{n:" + node + "}:" + kind
	}
	return b.cfg.KeyPrefix + kind + ":" + node
}

// bootSlot returns the slot whose boot key guards the room's presence: its
// hash slot on a cluster, 0 (the one boot key) on one Redis.
func (b *Broker) bootSlot(room string) int {
	if b.cfg.Cluster {
		return keySlot(b.presenceKey(room))
	}
	return 0
}

// bootKey names the boot key of a slot (see bootSlot).
func (b *Broker) bootKey(slot int) string {
	if b.cfg.Cluster {
		return b.cfg.KeyPrefix + "{" + slotTag(slot) + "}:boot"
	}
	return b.cfg.KeyPrefix + "boot"
}

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

var (
	slotTagsOnce sync.Once
	slotTags     []string // by slot: a short string that hashes to it
)

// slotTag returns a string whose hash slot is slot. The table is built once,
// by trying "b0", "b1", … until every slot has one (some 170 000 CRCs).
func slotTag(slot int) string {
	slotTagsOnce.Do(func() {
		slotTags = make([]string, slotCount)
		left := slotCount
		for i := 0; left > 0; i++ {
			tag := "b" + strconv.Itoa(i)
			if s := crc16(tag) % slotCount; slotTags[s] == "" {
				slotTags[s] = tag
				left--
			}
		}
	})
	return slotTags[slot]
}

// keySlot returns the hash slot of a key as Redis Cluster computes it: of
// the part between the first '{' and the next '}' when that is not empty,
// else of the whole key.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % slotCount)
}

// crc16 is CRC-16/XMODEM, Redis Cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
