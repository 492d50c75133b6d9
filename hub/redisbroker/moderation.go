package redisbroker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/hub"
)

// modActions names hub.ModKind for moderate.lua.
var modActions = map[hub.ModKind]string{
	hub.ModMute: "mute", hub.ModUnmute: "unmute", hub.ModBan: "ban",
	hub.ModUnban: "unban", hub.ModFreeze: "freeze", hub.ModUnfreeze: "unfreeze",
}

// Moderate implements hub.Broker with one Lua script, which applies the
// change to the room's moderation hash and publishes e on the room's
// channel.
func (b *Broker) Moderate(ctx context.Context, room string, a hub.ModAction, e hub.Event) error {
	action, ok := modActions[a.Kind]
	if !ok {
		return fmt.Errorf("moderate: unknown action %d", a.Kind)
	}
	env := ""
	if e.Frame != nil {
		env = encodeEvent(e)
	}
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	res, err := moderateScript.Run(ctx, b.client, []string{b.modKey(room)},
		action, a.User, a.Until, a.Reason, b.roomChannel(room), env, b.publishCmd(), hub.MaxModEntries,
	).Text()
	switch {
	case err != nil:
		return wrap("moderate", err)
	case res == "full":
		return fmt.Errorf("moderate: %w", hub.ErrModFull)
	}
	return nil
}

// Moderation implements hub.Broker. It writes nothing to Redis.
func (b *Broker) Moderation(ctx context.Context, room, user string) (hub.ModState, error) {
	ctx, cancel := b.opContext(ctx)
	defer cancel()
	res, err := moderationScript.Run(ctx, b.client, []string{b.modKey(room)}, user).Slice()
	if err != nil {
		return hub.ModState{}, wrap("moderation", err)
	}
	st, err := parseModeration(res)
	if err != nil {
		return hub.ModState{}, fmt.Errorf("moderation: %w", err)
	}
	return st, nil
}

// parseModeration decodes moderation.lua's {now, field, value, ...},
// dropping the mutes and bans that ended by now.
func parseModeration(res []any) (hub.ModState, error) {
	var st hub.ModState
	if len(res)%2 != 1 {
		return st, errEnvelope
	}
	now, _ := res[0].(int64)
	for i := 1; i < len(res); i += 2 {
		field, _ := res[i].(string)
		value, _ := res[i+1].(string)
		if field == "f" {
			st.Frozen = true
			continue
		}
		kind, user, ok := strings.Cut(field, ":")
		untilText, reason, _ := strings.Cut(value, ":")
		until, err := strconv.ParseInt(untilText, 10, 64)
		if !ok || err != nil {
			return st, errEnvelope
		}
		if until != 0 && until <= now {
			continue
		}
		r := hub.Restriction{User: user, Until: until}
		switch kind {
		case "m":
			st.Mutes = append(st.Mutes, r)
		case "b":
			r.Reason = reason
			st.Bans = append(st.Bans, r)
		}
	}
	var more1, more2 bool
	st.Mutes, more1 = sortedList(st.Mutes)
	st.Bans, more2 = sortedList(st.Bans)
	st.More = more1 || more2
	return st, nil
}

// sortedList sorts l by user and cuts it to hub.MaxModList, reporting
// whether it cut.
func sortedList(l []hub.Restriction) ([]hub.Restriction, bool) {
	sort.Slice(l, func(i, j int) bool { return l[i].User < l[j].User })
	if len(l) > hub.MaxModList {
		return l[:hub.MaxModList], true
	}
	return l, false
}
