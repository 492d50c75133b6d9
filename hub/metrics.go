package hub

import (
	"bytes"
	"sync/atomic"

	"github.com/switchboard-chat/switchboard/protocol"
)

// The hub counts what it does for metrics with a few atomic counters, never
// per recipient: a fan-out adds its recipient count once. It exposes them
// as plain numbers (Counters); exporting them is the command's business.

// frameTypes are the frame types a FrameCounter counts, in a fixed order:
// every type of package protocol, then OtherFrame.
var frameTypes = [...]string{
	protocol.TypeWelcome, protocol.TypeJoin, protocol.TypeJoined, protocol.TypeLeave,
	protocol.TypeLeft, protocol.TypeSend, protocol.TypeMessage, protocol.TypeAck,
	protocol.TypeTyping, protocol.TypeDM, protocol.TypePresence, protocol.TypeHistory,
	protocol.TypePing, protocol.TypePong, protocol.TypeError, protocol.TypeMemberJoined,
	protocol.TypeMemberLeft, protocol.TypeRefresh, protocol.TypeRefreshed, protocol.TypeEpoch,
	protocol.TypeEdit, protocol.TypeDelete, protocol.TypeMessageEdited, protocol.TypeMessageDeleted,
	protocol.TypeRead,
	protocol.TypeMute, protocol.TypeUnmute, protocol.TypeBan, protocol.TypeUnban, protocol.TypeFreeze,
	protocol.TypeUnfreeze, protocol.TypeMuted, protocol.TypeUnmuted, protocol.TypeRoomUpdated,
	OtherFrame,
}

// OtherFrame is the type a FrameCounter counts a frame of no protocol type
// under, so that its labels stay bounded.
const OtherFrame = "other"

// FrameCounter counts frames by type: the types of package protocol, and
// OtherFrame. Its zero value is ready, and it is safe for concurrent use.
// Counting costs one atomic add; finding a frame's type a few comparisons.
type FrameCounter struct {
	n [len(frameTypes)]atomic.Uint64
}

// Add counts n frames of type typ (OtherFrame when typ is no protocol type).
func (c *FrameCounter) Add(typ string, n int) {
	c.n[frameIndex(typ)].Add(uint64(n))
}

// AddFrame counts n copies of an encoded frame, by the type its encoding
// starts with: every frame of package protocol starts {"type":"….
func (c *FrameCounter) AddFrame(frame []byte, n int) {
	c.n[encodedIndex(frame)].Add(uint64(n))
}

// Counts returns the count of every type, zeros included.
func (c *FrameCounter) Counts() map[string]uint64 {
	m := make(map[string]uint64, len(frameTypes))
	for i, typ := range frameTypes {
		m[typ] = c.n[i].Load()
	}
	return m
}

// frameIndex returns typ's index in frameTypes, that of OtherFrame for an
// unknown type.
func frameIndex(typ string) int {
	for i, t := range frameTypes[:len(frameTypes)-1] {
		if t == typ {
			return i
		}
	}
	return len(frameTypes) - 1
}

var typePrefix = []byte(`{"type":"`)

// encodedIndex returns the frameTypes index of the type an encoded frame
// starts with, that of OtherFrame when it does not start {"type":"…". It
// allocates nothing.
func encodedIndex(frame []byte) int {
	rest, ok := bytes.CutPrefix(frame, typePrefix)
	end := bytes.IndexByte(rest, '"')
	if ok && end >= 0 {
		for i, t := range frameTypes[:len(frameTypes)-1] {
			if string(rest[:end]) == t {
				return i
			}
		}
	}
	return len(frameTypes) - 1
}

// Outcomes of a join that asked to recover (JoinRequest.Recover), the label
// values of Counters.Recoveries. Only RecoveryRecovered answers
// recovered:true; after the others the client pages history instead.
const (
	// RecoveryRecovered: every missed message was replayed.
	RecoveryRecovered = "recovered"
	// RecoveryNewEpoch: the room's history is of another epoch (it was
	// lost, or expired): the client's position means nothing any more.
	RecoveryNewEpoch = "new_epoch"
	// RecoveryTrimmed: history no longer holds every missed message.
	RecoveryTrimmed = "trimmed"
	// RecoveryTooLarge: the missed messages exceed Config.MaxReplayBytes.
	RecoveryTooLarge = "too_large"
	// RecoveryInvalid: the client's seq is beyond the room's.
	RecoveryInvalid = "invalid"
	// RecoveryFailed: the join failed (the broker was unavailable).
	RecoveryFailed = "failed"
)

// recoveryOutcomes are the recovery outcomes in a fixed order.
var recoveryOutcomes = [...]string{
	RecoveryRecovered, RecoveryNewEpoch, RecoveryTrimmed, RecoveryTooLarge, RecoveryInvalid, RecoveryFailed,
}

// counters are the hub's counters since New.
type counters struct {
	published  atomic.Uint64
	delivered  atomic.Uint64
	framesOut  FrameCounter
	recoveries [len(recoveryOutcomes)]atomic.Uint64
}

// Counters are the hub's cumulative counts since New.
type Counters struct {
	// Published counts the messages published through this hub (by its
	// sessions and by the server API) that the broker accepted; a repeat
	// of an idempotency key is not counted.
	Published uint64
	// Delivered counts the message frames handed to local sessions: live
	// fan-out, recovery replays, and messages held while a session joined.
	Delivered uint64
	// FramesOut counts the frames the hub handed to local sessions, by
	// type (see FrameCounter): a fan-out to n sessions counts n.
	FramesOut map[string]uint64
	// Recoveries counts the joins of a room not already joined that asked
	// to recover, by outcome (RecoveryRecovered and the others), every
	// outcome present.
	Recoveries map[string]uint64
}

// Counters returns a snapshot of the hub's counters.
func (h *Hub) Counters() Counters {
	c := Counters{
		Published:  h.count.published.Load(),
		Delivered:  h.count.delivered.Load(),
		FramesOut:  h.count.framesOut.Counts(),
		Recoveries: make(map[string]uint64, len(recoveryOutcomes)),
	}
	for i, o := range recoveryOutcomes {
		c.Recoveries[o] = h.count.recoveries[i].Load()
	}
	return c
}

// countRecovery counts a recovering join's outcome; a join that did not ask
// to recover is not counted.
func (h *Hub) countRecovery(req JoinRequest, outcome string) {
	if !req.Recover {
		return
	}
	for i, o := range recoveryOutcomes {
		if o == outcome {
			h.count.recoveries[i].Add(1)
			return
		}
	}
}

// countSent counts f handed to n sessions.
func (h *Hub) countSent(f roomFrame, n int) {
	switch {
	case n == 0:
	case f.seq != 0:
		h.count.delivered.Add(uint64(n))
		h.count.framesOut.AddFrame(f.frame, n) // a message, or an edit or delete
	default:
		h.count.framesOut.AddFrame(f.frame, n)
	}
}
