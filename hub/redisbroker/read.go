package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

var _ hub.Reads = (*Broker)(nil)

// Read positions live in one hash per user (readsKey, in the user's slot on
// a cluster): field = room, value = epoch ":" seq ":" ms written. The hash
// expires HistoryTTL after its last write, as a room's history does after
// its last publish, and holds at most protocol.MaxReadRooms rooms. Unread
// counts are read from the room's history by a script in the room's slot:
// the position is read first, in the user's slot.

// MarkRead implements hub.Reads with markread.lua.
func (b *Broker) MarkRead(ctx context.Context, user, room string, pos hub.Position) (bool, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	n, err := markReadScript.Run(ctx, b.client, []string{b.readsKey(user)},
		room, pos.Epoch, pos.Seq, ms(b.cfg.HistoryTTL), time.Now().UnixMilli(), protocol.MaxReadRooms,
	).Int64()
	if err != nil {
		return false, wrap("mark read", err)
	}
	return n == 1, nil
}

// Unread implements hub.Reads: it reads the user's position, then counts
// with unread.lua.
func (b *Broker) Unread(ctx context.Context, user, room string, upTo uint64) (hub.Unread, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	v, err := b.client.HGet(ctx, b.readsKey(user), room).Result()
	if err != nil && err != redis.Nil {
		return hub.Unread{}, wrap("unread", err)
	}
	res, err := b.scripts.unread.Run(ctx, b.client, []string{b.metaKey(room), b.streamKey(room)},
		unreadArgs(user, parseRead(v), upTo)...,
	).Slice()
	if err != nil {
		return hub.Unread{}, wrap("unread", err)
	}
	return parseUnread(room, res)
}

// UnreadRooms implements hub.Reads: it reads the user's hash (at most
// protocol.MaxReadRooms fields), then counts the page's rooms with
// unread.lua in one pipeline.
func (b *Broker) UnreadRooms(ctx context.Context, user, after string, limit int) ([]hub.Unread, bool, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	all, err := b.client.HGetAll(ctx, b.readsKey(user)).Result()
	if err != nil {
		return nil, false, wrap("unread rooms", err)
	}
	var rooms []string
	for room := range all {
		if room > after {
			rooms = append(rooms, room)
		}
	}
	slices.SortFunc(rooms, strings.Compare)
	more := len(rooms) > limit
	if more {
		rooms = rooms[:limit]
	}
	if len(rooms) == 0 {
		return nil, false, nil
	}
	keys, args := make([][]string, len(rooms)), make([][]any, len(rooms))
	for i, room := range rooms {
		keys[i] = []string{b.metaKey(room), b.streamKey(room)}
		args[i] = unreadArgs(user, parseRead(all[room]), 0)
	}
	cmds, err := runPipelined(ctx, b.client, b.scripts.unread, keys, args)
	if err != nil {
		return nil, false, wrap("unread rooms", err)
	}
	out := make([]hub.Unread, len(rooms))
	for i, cmd := range cmds {
		res, err := cmd.Slice()
		if err != nil {
			return nil, false, wrap("unread rooms", err)
		}
		if out[i], err = parseUnread(rooms[i], res); err != nil {
			return nil, false, err
		}
	}
	return out, more, nil
}

func unreadArgs(user string, pos hub.Position, upTo uint64) []any {
	return []any{user, pos.Epoch, pos.Seq, upTo}
}

// parseRead decodes a read hash value, epoch ":" seq ":" ms; the zero
// Position when it is not one.
func parseRead(v string) hub.Position {
	epoch, rest, ok := strings.Cut(v, ":")
	seq, _, _ := strings.Cut(rest, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return hub.Position{}
	}
	return hub.Position{Seq: n, Epoch: epoch}
}

// parseUnread decodes unread.lua's {epoch, seq, read seq, count, capped}.
func parseUnread(room string, res []any) (hub.Unread, error) {
	if len(res) != 5 {
		return hub.Unread{}, fmt.Errorf("unread: %w", errEnvelope)
	}
	epoch, _ := res[0].(string)
	seq, _ := res[1].(int64)
	read, _ := res[2].(int64)
	count, _ := res[3].(int64)
	capped, _ := res[4].(int64)
	return hub.Unread{
		Room:     room,
		ReadSeq:  uint64(read),
		Position: hub.Position{Seq: uint64(seq), Epoch: epoch},
		Count:    int(count),
		Capped:   capped == 1,
	}, nil
}
