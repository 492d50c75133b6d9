package main

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The moderation endpoints (docs/api.md, "Moderation"):
//
//	POST   /api/rooms/{room}/mutes         {"user":…,"duration":…}
//	DELETE /api/rooms/{room}/mutes/{user}
//	POST   /api/rooms/{room}/bans          {"user":…,"duration":…,"reason":…}
//	DELETE /api/rooms/{room}/bans/{user}
//	PUT    /api/rooms/{room}/freeze
//	DELETE /api/rooms/{room}/freeze
//	GET    /api/rooms/{room}/moderation

// modBodyLimit bounds a mute's or ban's body: a user name, a duration and
// a reason of at most protocol.MaxReasonLen bytes, escaped.
const modBodyLimit = 4096

// apiRestriction is the body of POST mutes and bans.
type apiRestriction struct {
	User string `json:"user"`
	// Duration is a Go duration ("10m"); absent for until lifted.
	Duration string `json:"duration"`
	// Reason is a ban's; a mute takes none.
	Reason string `json:"reason"`
}

// handleRestrict mutes (kind hub.ModMute) or bans (hub.ModBan) a user in a
// room, answering the restriction with its until (0: until lifted).
func handleRestrict(h *hub.Hub, kind hub.ModKind, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, err := pathRoom(r)
		if err != nil {
			return err
		}
		body, err := readRestriction(w, r, kind)
		if err != nil {
			return err
		}
		d, err := protocol.ParseModDuration(body.Duration)
		if err != nil {
			return apiError(http.StatusBadRequest, protocol.CodeBadRequest, hub.Describe(err).Message)
		}
		a, err := h.Moderate(r.Context(), room, hub.ModAction{Kind: kind, User: body.User, Duration: d, Reason: body.Reason})
		if err != nil {
			return hubError(err, log)
		}
		log.Info().Str("room", room).Str("action", modName(kind)).Str("target", body.User).Int64("until", a.Until).Msg("moderated")
		out := map[string]any{"room": room, "user": body.User, "until": a.Until}
		if kind == hub.ModBan {
			out["reason"] = a.Reason
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// readRestriction reads and validates a mute's or ban's body.
func readRestriction(w http.ResponseWriter, r *http.Request, kind hub.ModKind) (apiRestriction, error) {
	var body apiRestriction
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, modBodyLimit)); err != nil {
		return body, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "could not read a body of at most 4096 bytes")
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return body, apiError(http.StatusBadRequest, protocol.CodeBadJSON, `body must be a JSON object {"user":…,"duration":…,"reason":…}: `+jsonProblem(err))
	}
	switch {
	case !protocol.ValidUser(body.User):
		return body, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "user must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
	case kind != hub.ModBan && body.Reason != "":
		return body, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "a mute takes no reason")
	case len(body.Reason) > protocol.MaxReasonLen:
		return body, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "reason must be at most 256 bytes")
	}
	return body, nil
}

// handleLift unmutes (hub.ModUnmute) or unbans (hub.ModUnban) a user.
func handleLift(h *hub.Hub, kind hub.ModKind, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, err := pathRoom(r)
		if err != nil {
			return err
		}
		user, err := pathUser(r)
		if err != nil {
			return err
		}
		if _, err := h.Moderate(r.Context(), room, hub.ModAction{Kind: kind, User: user}); err != nil {
			return hubError(err, log)
		}
		log.Info().Str("room", room).Str("action", modName(kind)).Str("target", user).Msg("moderated")
		writeJSON(w, http.StatusOK, map[string]string{"room": room, "user": user})
		return nil
	})
}

// handleFreeze freezes (hub.ModFreeze) or thaws (hub.ModUnfreeze) a room.
func handleFreeze(h *hub.Hub, kind hub.ModKind, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, err := pathRoom(r)
		if err != nil {
			return err
		}
		if _, err := h.Moderate(r.Context(), room, hub.ModAction{Kind: kind}); err != nil {
			return hubError(err, log)
		}
		log.Info().Str("room", room).Str("action", modName(kind)).Msg("moderated")
		writeJSON(w, http.StatusOK, map[string]any{"room": room, "frozen": kind == hub.ModFreeze})
		return nil
	})
}

// handleModeration answers a room's moderation state.
func handleModeration(h *hub.Hub, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, err := pathRoom(r)
		if err != nil {
			return err
		}
		st, err := h.Moderation(r.Context(), room)
		if err != nil {
			return hubError(err, log)
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"room": room, "frozen": st.Frozen, "mutes": orNone(st.Mutes), "bans": orNone(st.Bans), "more": st.More,
		})
		return nil
	})
}

// orNone is l, or an empty list for nil, so that it encodes as [].
func orNone(l []hub.Restriction) []hub.Restriction {
	if l == nil {
		return []hub.Restriction{}
	}
	return l
}

// modName names a moderation action in logs.
func modName(kind hub.ModKind) string {
	switch kind {
	case hub.ModMute:
		return "mute"
	case hub.ModUnmute:
		return "unmute"
	case hub.ModBan:
		return "ban"
	case hub.ModUnban:
		return "unban"
	case hub.ModFreeze:
		return "freeze"
	case hub.ModUnfreeze:
		return "unfreeze"
	}
	return "unknown"
}
