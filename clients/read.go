package clients

import (
	"context"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// readLoop reads and handles client frames until the connection fails or the
// session is closed. It returns the read error.
func (s *Session) readLoop(ctx context.Context) error {
	for {
		typ, b, err := s.conn.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			s.Close(protocol.CloseUnsupported, "binary frames are not supported")
			return nil
		}
		if !utf8.Valid(b) {
			s.Close(protocol.CloseInvalidUTF8, "text frame is not valid UTF-8")
			return nil
		}
		switch s.limit.check(time.Now()) {
		case drop:
			continue
		case dropAndTell:
			// The error is the dropped frame's reply: echo its id.
			req, _ := protocol.Decode(b)
			s.reply(req.ID, protocol.Errorf(protocol.CodeRateLimited, "too many frames: slow down"))
			continue
		case disconnect:
			s.Close(protocol.ClosePolicy, "rate limit exceeded for too long")
			return nil
		}
		s.handle(ctx, b)
	}
}

// handle decodes one frame and answers it.
func (s *Session) handle(ctx context.Context, b []byte) {
	req, err := protocol.Decode(b)
	if err != nil {
		s.fail(req.ID, err)
		return
	}
	if err := s.dispatch(ctx, req); err != nil {
		s.fail(req.ID, err)
	}
}

// dispatch runs a valid request. Handlers queue their own success answers
// and return errors for fail to report.
func (s *Session) dispatch(ctx context.Context, req protocol.Request) error {
	h := s.srv.hub
	switch req.Type {
	case protocol.TypePing:
		s.Send(protocol.Encode(protocol.Pong{Type: protocol.TypePong, ID: req.ID}))
		return nil
	case protocol.TypeJoin:
		return s.join(ctx, req)
	case protocol.TypeLeave:
		if err := h.Leave(ctx, s, req.Room); err != nil {
			return err
		}
		s.Send(protocol.Encode(protocol.Left{Type: protocol.TypeLeft, ID: req.ID, Room: req.Room}))
		return nil
	case protocol.TypeSend:
		seq, err := h.Send(ctx, s, req.Room, req.Data, req.ID)
		if err == nil && req.ID != nil {
			s.Send(protocol.Encode(protocol.Ack{Type: protocol.TypeAck, ID: req.ID, Seq: seq}))
		}
		return err
	case protocol.TypeTyping:
		return h.Typing(ctx, s, req.Room)
	case protocol.TypeDM:
		err := h.DM(ctx, s, req.To, req.Data, req.ID)
		if err == nil && req.ID != nil {
			s.Send(protocol.Encode(protocol.Ack{Type: protocol.TypeAck, ID: req.ID}))
		}
		return err
	case protocol.TypePresence:
		return s.presence(ctx, req)
	case protocol.TypeHistory:
		return s.history(ctx, req)
	case protocol.TypeRefresh:
		return protocol.Errorf(protocol.CodeBadRequest, "refresh needs auth, which is off on this server")
	}
	return protocol.Errorf(protocol.CodeUnknownType, "unknown frame type")
}

func (s *Session) join(ctx context.Context, req protocol.Request) error {
	if s.ident.CanJoin != nil && !s.ident.CanJoin(req.Room) {
		return protocol.Errorf(protocol.CodeForbidden, "your token does not allow this room")
	}
	return s.srv.hub.Join(ctx, s, hub.JoinRequest{
		Room: req.Room, ID: req.ID, Recover: req.HasSince, Since: req.Since, Epoch: req.Epoch,
	})
}

func (s *Session) presence(ctx context.Context, req protocol.Request) error {
	members, err := s.srv.hub.Members(ctx, req.Room)
	if err != nil {
		return err
	}
	s.Send(protocol.Encode(protocol.Presence{Type: protocol.TypePresence, ID: req.ID, Room: req.Room, Members: members}))
	return nil
}

func (s *Session) history(ctx context.Context, req protocol.Request) error {
	page, err := s.srv.hub.History(ctx, req.Room, req.Before, req.Limit)
	if err != nil {
		return err
	}
	// An answer larger than the outbound queue would close the session as
	// too slow: send the newest messages that fit in half of it (at least
	// one), and let the client page on with before.
	budget := s.srv.cfg.QueueBytes / 2
	pubs := page.Publications
	for size, i := 0, len(pubs)-1; i >= 0; i-- {
		if size += len(pubs[i].Frame) + 1; size > budget && i < len(pubs)-1 {
			pubs = pubs[i+1:]
			break
		}
	}
	for {
		frame := historyFrame(req, page.Position.Epoch, pubs)
		if len(frame) <= budget || len(pubs) <= 1 {
			s.Send(frame)
			return nil
		}
		pubs = pubs[len(pubs)/2:] // escaping grew it: drop the older half
	}
}

func historyFrame(req protocol.Request, epoch string, pubs []hub.Publication) []byte {
	msgs := make([]json.RawMessage, len(pubs))
	for i, p := range pubs {
		msgs[i] = p.Frame
	}
	return protocol.Encode(protocol.History{
		Type: protocol.TypeHistory, ID: req.ID, Room: req.Room, Epoch: epoch, Messages: msgs,
	})
}

// fail sends err to the client as an error frame echoing id.
func (s *Session) fail(id json.RawMessage, err error) {
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		perr = protocol.Errorf(hub.Code(err), errorMessage(err))
		if perr.Code == protocol.CodeInternal {
			s.log.Error().Err(err).Msg("request failed")
		}
	}
	s.reply(id, perr)
}

func (s *Session) reply(id json.RawMessage, e *protocol.Error) {
	s.Send(protocol.EncodeError(id, e))
}

// errorMessage is the human text of a hub error.
func errorMessage(err error) string {
	switch {
	case errors.Is(err, hub.ErrNotMember):
		return "join the room first"
	case errors.Is(err, hub.ErrOffline):
		return "that user is not connected"
	case errors.Is(err, hub.ErrTooManyRooms):
		return "too many rooms joined on this connection"
	case errors.Is(err, hub.ErrMaybeDelivered):
		return "the server timed out; the message may have been delivered: resend with the same id to be sure"
	case errors.Is(err, hub.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return "messaging backend unavailable: try again"
	case errors.Is(err, hub.ErrClosing):
		return "server is shutting down"
	default:
		return "internal error"
	}
}
