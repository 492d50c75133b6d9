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
//
// A frame is scanned for valid UTF-8 once: by protocol.Decode, which
// refuses invalid UTF-8; only when Decode fails, or when the frame is not
// decoded at all, does the loop scan it itself, to close with 1007.
func (s *Session) readLoop(ctx context.Context) error {
	for {
		typ, b, err := s.conn.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			s.srv.countIn(protocol.Request{}, errBinary)
			s.Close(protocol.CloseUnsupported, "binary frames are not supported")
			return nil
		}
		v, why := s.limit.check(time.Now(), len(b))
		if v != admit {
			s.srv.count.rateLimited.Add(1)
			if !utf8.Valid(b) {
				return s.closeInvalidUTF8()
			}
		}
		switch v {
		case drop:
			continue
		case dropAndTell:
			// The error is the dropped frame's reply: echo its id.
			req, _ := protocol.Decode(b)
			s.reply(req.ID, protocol.Errorf(protocol.CodeRateLimited, why))
			continue
		case disconnect:
			s.Close(protocol.ClosePolicy, "rate limit exceeded for too long")
			return nil
		}
		req, err := protocol.Decode(b)
		s.srv.countIn(req, err)
		if err != nil && !utf8.Valid(b) {
			return s.closeInvalidUTF8()
		}
		s.handle(ctx, req, err)
	}
}

// errBinary stands for a binary frame's decoding error, in the counters.
var errBinary = errors.New("binary frame")

func (s *Session) closeInvalidUTF8() error {
	s.Close(protocol.CloseInvalidUTF8, "text frame is not valid UTF-8")
	return nil
}

// handle answers one decoded frame, or its decoding error.
func (s *Session) handle(ctx context.Context, req protocol.Request, err error) {
	if err == nil {
		err = s.dispatch(ctx, req)
	}
	if err != nil {
		s.fail(req.ID, err)
	}
}

// dispatch runs a valid request. Handlers queue their own success answers
// and return errors for fail to report.
func (s *Session) dispatch(ctx context.Context, req protocol.Request) error {
	h := s.srv.hub
	switch req.Type {
	case protocol.TypePing:
		s.send(protocol.Encode(protocol.Pong{Type: protocol.TypePong, ID: req.ID}))
		return nil
	case protocol.TypeJoin:
		return s.join(ctx, req)
	case protocol.TypeLeave:
		if err := h.Leave(ctx, s, req.Room); err != nil {
			return err
		}
		s.send(protocol.Encode(protocol.Left{Type: protocol.TypeLeft, ID: req.ID, Room: req.Room}))
		return nil
	case protocol.TypeSend:
		pos, err := h.Send(ctx, s, req.Room, req.Data, req.ID)
		if err == nil && req.ID != nil {
			s.send(protocol.Encode(protocol.Ack{Type: protocol.TypeAck, ID: req.ID, Seq: pos.Seq, Epoch: pos.Epoch}))
		}
		return err
	case protocol.TypeEdit, protocol.TypeDelete:
		return s.change(ctx, req)
	case protocol.TypeTyping:
		return h.Typing(ctx, s, req.Room)
	case protocol.TypeDM:
		return s.dm(ctx, req)
	case protocol.TypePresence:
		return s.presence(ctx, req)
	case protocol.TypeHistory:
		return s.history(ctx, req)
	case protocol.TypeRefresh:
		return s.refresh(ctx, req)
	case protocol.TypeRead:
		err := h.Read(ctx, s, req.Room, req.Seq)
		if err == nil && req.ID != nil {
			s.send(protocol.Encode(protocol.Ack{Type: protocol.TypeAck, ID: req.ID}))
		}
		return err
	case protocol.TypeMute, protocol.TypeUnmute, protocol.TypeBan, protocol.TypeUnban, protocol.TypeFreeze, protocol.TypeUnfreeze:
		return s.moderate(ctx, req)
	}
	return protocol.Errorf(protocol.CodeUnknownType, "unknown frame type")
}

// mayRead refuses rooms outside the identity's allowed rooms: joining them,
// and reading their history or presence.
func (s *Session) mayRead(room string) error {
	if s.ident.CanJoin != nil && !s.ident.CanJoin(room) {
		return protocol.Errorf(protocol.CodeForbidden, "your token does not allow this room")
	}
	return nil
}

// change edits or deletes a message the user sent, answering ack with the
// change's position when the frame has an id, as send does.
func (s *Session) change(ctx context.Context, req protocol.Request) error {
	var pos hub.Position
	var err error
	if req.Type == protocol.TypeEdit {
		pos, err = s.srv.hub.Edit(ctx, s, req.Room, req.Seq, req.Data, req.ID)
	} else {
		pos, err = s.srv.hub.Delete(ctx, s, req.Room, req.Seq, req.ID)
	}
	if err == nil && req.ID != nil {
		s.send(protocol.Encode(protocol.Ack{Type: protocol.TypeAck, ID: req.ID, Seq: pos.Seq, Epoch: pos.Epoch}))
	}
	return err
}

// dm sends a direct message, when the identity allows it to that user.
func (s *Session) dm(ctx context.Context, req protocol.Request) error {
	if s.ident.CanDM != nil && !s.ident.CanDM(req.To) {
		return protocol.Errorf(protocol.CodeForbidden, "your token does not allow direct messages to this user")
	}
	if err := s.srv.hub.DM(ctx, s, req.To, req.Data, req.ID); err != nil {
		return err
	}
	if req.ID != nil {
		s.send(protocol.Encode(protocol.Ack{Type: protocol.TypeAck, ID: req.ID}))
	}
	return nil
}

func (s *Session) join(ctx context.Context, req protocol.Request) error {
	if err := s.mayRead(req.Room); err != nil {
		return err
	}
	return s.srv.hub.Join(ctx, s, hub.JoinRequest{
		Room: req.Room, ID: req.ID, Recover: req.HasSince, Since: req.Since, Epoch: req.Epoch,
	})
}

func (s *Session) presence(ctx context.Context, req protocol.Request) error {
	if err := s.mayRead(req.Room); err != nil {
		return err
	}
	page, err := s.srv.hub.MemberPage(ctx, req.Room, req.After, req.Limit)
	if err != nil {
		return err
	}
	answer := protocol.Presence{
		Type: protocol.TypePresence, ID: req.ID, Room: req.Room,
		Members: page.Users, MemberCount: page.Count,
	}
	if page.More && len(page.Users) > 0 {
		answer.MembersNext = page.Users[len(page.Users)-1]
	}
	s.send(protocol.Encode(answer))
	return nil
}

func (s *Session) history(ctx context.Context, req protocol.Request) error {
	if err := s.mayRead(req.Room); err != nil {
		return err
	}
	// An answer larger than the outbound queue would close the session as
	// too slow: read only the newest messages that fit in half of it (at
	// least one), and let the client page on with before.
	page, err := s.srv.hub.History(ctx, req.Room, req.Before, req.Limit, s.srv.cfg.QueueBytes/2-historyOverhead)
	if err != nil {
		return err
	}
	frames := make([][]byte, len(page.Publications))
	for i, p := range page.Publications {
		frames[i] = p.Frame
	}
	s.send(protocol.EncodeHistory(req.ID, req.Room, page.Position.Epoch, frames))
	return nil
}

// historyOverhead bounds the bytes of a history answer beyond its messages:
// the envelope with the longest id, room and epoch, and the commas.
const historyOverhead = 1024 + protocol.MaxHistoryLimit

// fail sends err to the client as an error frame echoing id.
func (s *Session) fail(id json.RawMessage, err error) {
	perr := hub.Describe(err)
	if perr.Code == protocol.CodeInternal {
		s.logEvent(s.srv.log.Error()).Err(err).Msg("request failed")
	}
	s.reply(id, perr)
}

func (s *Session) reply(id json.RawMessage, e *protocol.Error) {
	s.send(protocol.EncodeError(id, e))
}
