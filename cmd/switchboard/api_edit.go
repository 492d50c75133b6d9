package main

import (
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// handleEdit edits any message of a room:
// PATCH /api/rooms/{room}/messages/{seq} with {"data":…,"from":…,"id":…}
// (from "system" when not given), answering the edit's seq and epoch.
func handleEdit(h *hub.Hub, limit int64, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, seq, err := pathMessage(r)
		if err != nil {
			return err
		}
		m, err := readMessage(w, r, limit)
		if err != nil {
			return err
		}
		key := apiIdempotencyKey("edit", room+":"+strconv.FormatUint(seq, 10), m.From, m.ID)
		pos, err := h.EditAs(r.Context(), room, m.From, "", seq, m.Data, key)
		if err != nil {
			return hubError(err, log)
		}
		writeJSON(w, http.StatusOK, map[string]any{"seq": pos.Seq, "epoch": pos.Epoch})
		return nil
	})
}

// handleDelete deletes any message of a room:
// DELETE /api/rooms/{room}/messages/{seq}?from=&id= (from "system" when not
// given), answering the delete's seq and epoch.
func handleDelete(h *hub.Hub, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, seq, err := pathMessage(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		from, id := q.Get("from"), q.Get("id")
		if from == "" {
			from = "system"
		}
		if !protocol.ValidUser(from) {
			return apiError(http.StatusBadRequest, protocol.CodeBadRequest, "from must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
		}
		if len(id) > protocol.MaxIDLen {
			return apiError(http.StatusBadRequest, protocol.CodeBadRequest, "id must be at most 64 characters")
		}
		key := apiIdempotencyKey("delete", room+":"+strconv.FormatUint(seq, 10), from, id)
		pos, err := h.DeleteAs(r.Context(), room, from, "", seq, key)
		if err != nil {
			return hubError(err, log)
		}
		writeJSON(w, http.StatusOK, map[string]any{"seq": pos.Seq, "epoch": pos.Epoch})
		return nil
	})
}

// pathMessage returns the {room} and {seq} path values, validated.
func pathMessage(r *http.Request) (string, uint64, error) {
	room, err := pathRoom(r)
	if err != nil {
		return "", 0, err
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return "", 0, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "seq must be the seq of a message of the room")
	}
	return room, seq, nil
}
