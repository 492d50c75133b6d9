package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// wire is the JSON shape of every client frame; Decode checks which fields
// each type needs.
type wire struct {
	Type   *string         `json:"type"`
	ID     json.RawMessage `json:"id"`
	Room   *string         `json:"room"`
	To     *string         `json:"to"`
	Data   json.RawMessage `json:"data"`
	Limit  *int            `json:"limit"`
	Before *uint64         `json:"before"`
	After  *string         `json:"after"`
	Since  *uint64         `json:"since"`
	Epoch  *string         `json:"epoch"`
	Token  *string         `json:"token"`
	Seq    *uint64         `json:"seq"`
	// User, Duration and Reason are of moderation frames (moderation.go).
	User     *string `json:"user"`
	Duration *string `json:"duration"`
	Reason   *string `json:"reason"`
}

// Decode parses and validates one client frame. On failure it returns an
// *Error with a stable code; the returned Request then still carries the
// frame's ID when that much could be read, so the error frame can echo it.
// Unknown fields are ignored so that newer clients keep working.
func Decode(b []byte) (Request, error) {
	// json.Unmarshal accepts null as an empty object and lets invalid UTF-8
	// through, which the ID and data would carry into text frames verbatim.
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) || !utf8.Valid(b) {
		return Request{}, Errorf(CodeBadJSON, "frame must be one JSON object in UTF-8")
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) || typeErr.Field == "" {
			return Request{}, Errorf(CodeBadJSON, "frame must be one JSON object")
		}
		req := Request{}
		if validID(w.ID) {
			req.ID = w.ID
		}
		return req, Errorf(CodeBadRequest, typeErr.Field+" has the wrong type")
	}
	if w.ID != nil && !validID(w.ID) {
		return Request{}, Errorf(CodeBadRequest, "id must be a non-empty string or a number of at most 64 characters")
	}
	req := Request{ID: w.ID}
	if w.Type == nil {
		return req, Errorf(CodeBadRequest, "type is required")
	}
	req.Type = *w.Type
	if err := req.fill(&w); err != nil {
		return req, err
	}
	return req, nil
}

// fill copies and checks the fields req.Type needs.
func (req *Request) fill(w *wire) error {
	switch req.Type {
	case TypePing:
		return nil
	case TypeJoin:
		if err := req.room(w); err != nil {
			return err
		}
		return req.since(w)
	case TypeLeave, TypeTyping:
		return req.room(w)
	case TypePresence:
		if err := req.room(w); err != nil {
			return err
		}
		return req.membersPage(w)
	case TypeSend:
		if err := req.room(w); err != nil {
			return err
		}
		return req.data(w)
	case TypeDM:
		if w.To == nil || !ValidUser(*w.To) {
			return Errorf(CodeBadRequest, "to must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
		}
		req.To = *w.To
		return req.data(w)
	case TypeHistory:
		if err := req.room(w); err != nil {
			return err
		}
		return req.page(w)
	case TypeEdit, TypeDelete:
		return req.change(w)
	case TypeRead:
		return req.read(w)
	case TypeMute, TypeUnmute, TypeBan, TypeUnban, TypeFreeze, TypeUnfreeze:
		return req.moderation(w)
	case TypeRefresh:
		if w.Token == nil || *w.Token == "" || len(*w.Token) > MaxTokenLen {
			return Errorf(CodeBadRequest, "token is required")
		}
		req.Token = *w.Token
		return nil
	default:
		return Errorf(CodeUnknownType, "unknown frame type")
	}
}

func (req *Request) room(w *wire) error {
	if w.Room == nil || !ValidRoom(*w.Room) {
		return Errorf(CodeBadRequest, "room must be a room name: 1-64 of A-Z a-z 0-9 _ . : -")
	}
	req.Room = *w.Room
	return nil
}

func (req *Request) data(w *wire) error {
	if w.Data == nil || string(w.Data) == "null" {
		return Errorf(CodeBadRequest, "data is required (any JSON value but null)")
	}
	req.Data = w.Data
	return nil
}

// change reads an edit's or a delete's room, target seq and (edit) data.
func (req *Request) change(w *wire) error {
	if err := req.room(w); err != nil {
		return err
	}
	if w.Seq == nil || *w.Seq == 0 {
		return Errorf(CodeBadRequest, "seq must be the seq of a message of the room")
	}
	req.Seq = *w.Seq
	if req.Type == TypeDelete {
		return nil
	}
	return req.data(w)
}

func (req *Request) since(w *wire) error {
	if w.Since == nil && w.Epoch == nil {
		return nil
	}
	if w.Since == nil || w.Epoch == nil || *w.Epoch == "" || len(*w.Epoch) > MaxEpochLen {
		return Errorf(CodeBadRequest, "since and epoch go together: since a seq, epoch the one joined gave")
	}
	req.HasSince, req.Since, req.Epoch = true, *w.Since, *w.Epoch
	return nil
}

func (req *Request) page(w *wire) error {
	req.Limit = DefaultHistoryLimit
	if w.Limit != nil {
		if *w.Limit < 1 || *w.Limit > MaxHistoryLimit {
			return Errorf(CodeBadRequest, "limit must be 1-100")
		}
		req.Limit = *w.Limit
	}
	if w.Before != nil {
		req.Before = *w.Before
	}
	return nil
}

// membersPage reads a presence request's page: after, a user name (or ""
// for the first page), and limit.
func (req *Request) membersPage(w *wire) error {
	req.Limit = MaxPresenceLimit
	if w.Limit != nil {
		if *w.Limit < 1 || *w.Limit > MaxPresenceLimit {
			return Errorf(CodeBadRequest, "limit must be 1-1000")
		}
		req.Limit = *w.Limit
	}
	if w.After != nil && *w.After != "" {
		if !ValidUser(*w.After) {
			return Errorf(CodeBadRequest, "after must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
		}
		req.After = *w.After
	}
	return nil
}

// validID reports whether raw is a usable correlation id: a JSON string of
// 1–64 characters or a JSON number of at most 64 characters. A string's
// length is counted after unescaping, in characters, not bytes of raw JSON.
func validID(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		return s != "" && utf8.RuneCountInString(s) <= MaxIDLen
	case c == '-' || ('0' <= c && c <= '9'):
		return len(raw) <= MaxIDLen
	default:
		return false
	}
}
