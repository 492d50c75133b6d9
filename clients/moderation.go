package clients

import (
	"context"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// modKinds maps the moderation frame types to the hub's actions.
var modKinds = map[string]hub.ModKind{
	protocol.TypeMute: hub.ModMute, protocol.TypeUnmute: hub.ModUnmute,
	protocol.TypeBan: hub.ModBan, protocol.TypeUnban: hub.ModUnban,
	protocol.TypeFreeze: hub.ModFreeze, protocol.TypeUnfreeze: hub.ModUnfreeze,
}

// moderate applies a moderation frame of an operator of the room, answering
// ack when the frame has an id; others get forbidden.
func (s *Session) moderate(ctx context.Context, req protocol.Request) error {
	a := hub.ModAction{Kind: modKinds[req.Type], User: req.User, Duration: req.Duration, Reason: req.Reason}
	if _, err := s.srv.hub.ModerateAs(ctx, s, req.Room, a); err != nil {
		return err
	}
	s.logEvent(s.srv.log.Info()).Str("room", req.Room).Str("action", req.Type).Str("target", req.User).
		Dur("duration", req.Duration).Msg("moderated")
	if req.ID != nil {
		s.send(protocol.Encode(protocol.Ack{Type: protocol.TypeAck, ID: req.ID}))
	}
	return nil
}

// Operates implements hub.Operator: the identity's CanModerate decides.
// The hub calls it from the session's read loop, the only writer of the
// identity (refresh), so it reads without a lock.
func (s *Session) Operates(room string) bool {
	return s.ident.CanModerate != nil && s.ident.CanModerate(room)
}

var _ hub.Operator = (*Session)(nil)
