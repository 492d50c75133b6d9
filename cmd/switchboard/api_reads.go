package main

import (
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// unreadRoom is one room of GET /api/users/{user}/unread.
type unreadRoom struct {
	Room    string `json:"room"`
	ReadSeq uint64 `json:"read_seq"`
	Seq     uint64 `json:"seq"`
	Unread  int    `json:"unread"`
	Capped  bool   `json:"capped"`
}

// unreadBody is the answer of GET /api/users/{user}/unread.
type unreadBody struct {
	User  string       `json:"user"`
	Rooms []unreadRoom `json:"rooms"`
	// Next, set when more rooms follow, is the after of the next page.
	Next string `json:"next,omitempty"`
}

// handleUserUnread lists a user's read positions and unread counts, a page
// of rooms at a time: GET /api/users/{user}/unread?after=&limit=.
func handleUserUnread(h *hub.Hub, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		user, err := pathUser(r)
		if err != nil {
			return err
		}
		after, limit, err := unreadPageParams(r)
		if err != nil {
			return err
		}
		counts, more, err := h.UnreadRooms(r.Context(), user, after, limit)
		if err != nil {
			return hubError(err, log)
		}
		rooms := make([]unreadRoom, len(counts))
		for i, u := range counts {
			rooms[i] = unreadRoom{Room: u.Room, ReadSeq: u.ReadSeq, Seq: u.Position.Seq, Unread: u.Count, Capped: u.Capped}
		}
		body := unreadBody{User: user, Rooms: rooms}
		if more && len(rooms) > 0 {
			body.Next = rooms[len(rooms)-1].Room
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	})
}

// unreadPageParams reads ?after= (a room name) and ?limit= (1-100,
// default 100).
func unreadPageParams(r *http.Request) (string, int, error) {
	after, limit := r.URL.Query().Get("after"), hub.MaxUnreadPage
	if after != "" && !protocol.ValidRoom(after) {
		return "", 0, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "after must be a room name: 1-64 of A-Z a-z 0-9 _ . : -")
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > hub.MaxUnreadPage {
			return "", 0, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "limit must be 1-100")
		}
		limit = n
	}
	return after, limit, nil
}
