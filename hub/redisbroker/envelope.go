package redisbroker

import (
	"errors"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/hub"
)

// What a node publishes on a room or user channel is an envelope, a compact
// string the receiving node decodes without re-encoding the frame:
//
//	publication: "p" epoch ":" seq ":" frame   (built by publish.lua)
//	event:       "e" kind ":" len(exclude) ":" exclude frame
//
// An EventTo's or EventBan's User travels in the place of Exclude, which
// those kinds do not use.

var errEnvelope = errors.New("malformed envelope")

// encodeEvent returns the envelope of e.
func encodeEvent(e hub.Event) string {
	var b strings.Builder
	b.Grow(8 + len(e.Exclude) + len(e.User) + len(e.Frame))
	b.WriteByte('e')
	b.WriteString(strconv.Itoa(int(e.Kind)))
	b.WriteByte(':')
	who := e.Exclude
	if e.Kind == hub.EventTo || e.Kind == hub.EventBan {
		who = e.User
	}
	b.WriteString(strconv.Itoa(len(who)))
	b.WriteByte(':')
	b.WriteString(who)
	b.Write(e.Frame)
	return b.String()
}

// decodeEvent decodes an event envelope.
func decodeEvent(s string) (hub.Event, error) {
	if !strings.HasPrefix(s, "e") {
		return hub.Event{}, errEnvelope
	}
	kind, rest, ok := strings.Cut(s[1:], ":")
	if !ok {
		return hub.Event{}, errEnvelope
	}
	k, err := strconv.ParseUint(kind, 10, 8)
	if err != nil {
		return hub.Event{}, errEnvelope
	}
	n, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return hub.Event{}, errEnvelope
	}
	size, err := strconv.Atoi(n)
	if err != nil || size < 0 || size > len(rest) {
		return hub.Event{}, errEnvelope
	}
	e := hub.Event{Kind: hub.EventKind(k), Exclude: rest[:size]}
	if e.Kind == hub.EventTo || e.Kind == hub.EventBan {
		e.User, e.Exclude = e.Exclude, ""
	}
	if frame := rest[size:]; frame != "" {
		e.Frame = []byte(frame)
	}
	return e, nil
}

// decodePublication decodes a publication envelope.
func decodePublication(s string) (hub.Publication, error) {
	if !strings.HasPrefix(s, "p") {
		return hub.Publication{}, errEnvelope
	}
	epoch, rest, ok := strings.Cut(s[1:], ":")
	if !ok {
		return hub.Publication{}, errEnvelope
	}
	seq, frame, ok := strings.Cut(rest, ":")
	if !ok {
		return hub.Publication{}, errEnvelope
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return hub.Publication{}, errEnvelope
	}
	return hub.Publication{Seq: n, Epoch: epoch, Frame: []byte(frame)}, nil
}
