package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// apiError builds the JSON error every /api failure answers with.
func apiError(status int, code, msg string) error {
	return &clients.HTTPError{Status: status, Code: code, Message: msg}
}

// requireKey serves next only to requests that send Authorization: Bearer
// key; others get 401 with the message refusal.
func requireKey(key, refusal string, next http.Handler) http.Handler {
	k := []byte(key)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !keyMatches(r, k) {
			clients.WriteError(w, apiError(http.StatusUnauthorized, protocol.CodeUnauthorized, refusal))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiMessage is the body of the publish and DM endpoints.
type apiMessage struct {
	Data json.RawMessage `json:"data"`
	// From is the sender's user name; "system" when empty.
	From string `json:"from"`
	// ID, when set, makes the request idempotent: a repeat of the same
	// request (endpoint, room or recipient, and from) within 5 minutes
	// publishes nothing and answers like the first.
	ID string `json:"id"`
}

// decodeAPIMessage parses and validates an apiMessage body.
func decodeAPIMessage(body []byte) (apiMessage, error) {
	var m apiMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, apiError(http.StatusBadRequest, protocol.CodeBadJSON, "body must be a JSON object {\"data\":…,\"from\":…,\"id\":…}: "+jsonProblem(err))
	}
	if dec.More() {
		return m, apiError(http.StatusBadRequest, protocol.CodeBadJSON, "body must hold one JSON object")
	}
	if m.Data == nil || string(m.Data) == "null" {
		return m, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "data is required (any JSON value but null)")
	}
	if m.From == "" {
		m.From = "system"
	}
	if !protocol.ValidUser(m.From) {
		return m, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "from must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
	}
	if len(m.ID) > protocol.MaxIDLen {
		return m, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "id must be at most 64 characters")
	}
	return m, nil
}

// jsonProblem describes a body's JSON decoding error in the API's terms:
// the decoder's own text names Go types.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("field %q cannot be a JSON %s", typ.Field, typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("got a JSON %s", typ.Value)
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		return "invalid JSON"
	}
}

// readMessage reads a request body of at most limit bytes as an apiMessage.
func readMessage(w http.ResponseWriter, r *http.Request, limit int64) (apiMessage, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiMessage{}, apiError(http.StatusRequestEntityTooLarge, protocol.CodeBadRequest,
				fmt.Sprintf("body larger than %d bytes", limit))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return apiMessage{}, apiError(http.StatusRequestTimeout, protocol.CodeBadRequest, "body not received in time")
		}
		return apiMessage{}, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "could not read body")
	}
	return decodeAPIMessage(buf.Bytes())
}

// apiIdempotencyKey scopes an API id to the endpoint (op: "send" or "dm"),
// its target (the room or the recipient) and the sender, as the hub scopes
// client ids: the id makes a retry of the same request safe and never
// swallows a different request that reuses it. The leading NUL keeps API
// keys apart from client keys, which start with a user name.
func apiIdempotencyKey(op, target, from, id string) string {
	if id == "" {
		return ""
	}
	return "\x00api\x00" + op + ":" + target + "\x00" + from + "\x00" + id
}

// pathRoom returns the {room} path value, validated.
func pathRoom(r *http.Request) (string, error) {
	room := r.PathValue("room")
	if !protocol.ValidRoom(room) {
		return "", apiError(http.StatusBadRequest, protocol.CodeBadRequest, "room must be a room name: 1-64 of A-Z a-z 0-9 _ . : -")
	}
	return room, nil
}

func pathUser(r *http.Request) (string, error) {
	user := r.PathValue("user")
	if !protocol.ValidUser(user) {
		return "", apiError(http.StatusBadRequest, protocol.CodeBadRequest, "user must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
	}
	return user, nil
}

// hubError turns a hub error into an API error, logging unexpected ones.
func hubError(err error, log zerolog.Logger) error {
	e := hub.Describe(err)
	switch e.Code {
	case protocol.CodeUnavailable:
		return apiError(http.StatusServiceUnavailable, e.Code, e.Message)
	case protocol.CodeOffline, protocol.CodeNotFound:
		return apiError(http.StatusNotFound, e.Code, e.Message)
	case protocol.CodeTooMany:
		return apiError(http.StatusConflict, e.Code, e.Message)
	default:
		log.Error().Err(err).Msg("api request failed")
		return apiError(http.StatusInternalServerError, protocol.CodeInternal, "internal error")
	}
}

// handlePublish publishes a message to a room: POST /api/rooms/{room}/messages.
func handlePublish(h *hub.Hub, limit int64, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, err := pathRoom(r)
		if err != nil {
			return err
		}
		m, err := readMessage(w, r, limit)
		if err != nil {
			return err
		}
		pos, err := h.Publish(r.Context(), room, m.From, m.Data, apiIdempotencyKey("send", room, m.From, m.ID))
		if err != nil {
			return hubError(err, log)
		}
		writeJSON(w, http.StatusOK, map[string]any{"seq": pos.Seq, "epoch": pos.Epoch})
		return nil
	})
}

// handleRoomHistory pages a room's history: GET /api/rooms/{room}/messages.
func handleRoomHistory(h *hub.Hub, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, err := pathRoom(r)
		if err != nil {
			return err
		}
		limit, before, err := pageParams(r)
		if err != nil {
			return err
		}
		page, err := h.History(r.Context(), room, before, limit, 0)
		if err != nil {
			return hubError(err, log)
		}
		msgs := make([]json.RawMessage, len(page.Publications))
		for i, p := range page.Publications {
			msgs[i] = p.Frame
		}
		writeJSON(w, http.StatusOK, map[string]any{"epoch": page.Position.Epoch, "seq": page.Position.Seq, "messages": msgs})
		return nil
	})
}

// pageParams reads ?limit= (1-100, default 50) and ?before= (a seq).
func pageParams(r *http.Request) (int, uint64, error) {
	limit, before := protocol.DefaultHistoryLimit, uint64(0)
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > protocol.MaxHistoryLimit {
			return 0, 0, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "limit must be 1-100")
		}
		limit = n
	}
	if s := r.URL.Query().Get("before"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "before must be a seq")
		}
		before = n
	}
	return limit, before, nil
}

// handleRoomPresence lists a page of a room's members:
// GET /api/rooms/{room}/presence?after=&limit=.
func handleRoomPresence(h *hub.Hub, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		room, err := pathRoom(r)
		if err != nil {
			return err
		}
		after, limit, err := memberPageParams(r)
		if err != nil {
			return err
		}
		page, err := h.MemberPage(r.Context(), room, after, limit)
		if err != nil {
			return hubError(err, log)
		}
		body := map[string]any{"members": page.Users, "member_count": page.Count}
		if page.More && len(page.Users) > 0 {
			body["members_next"] = page.Users[len(page.Users)-1]
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	})
}

// memberPageParams reads ?after= (a user name) and ?limit= (1-1000,
// default 1000), as a presence frame's after and limit.
func memberPageParams(r *http.Request) (string, int, error) {
	after, limit := r.URL.Query().Get("after"), protocol.MaxPresenceLimit
	if after != "" && !protocol.ValidUser(after) {
		return "", 0, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "after must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > protocol.MaxPresenceLimit {
			return "", 0, apiError(http.StatusBadRequest, protocol.CodeBadRequest, "limit must be 1-1000")
		}
		limit = n
	}
	return after, limit, nil
}

// handleUserMessage sends a DM from the backend: POST /api/users/{user}/messages.
func handleUserMessage(h *hub.Hub, limit int64, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		user, err := pathUser(r)
		if err != nil {
			return err
		}
		m, err := readMessage(w, r, limit)
		if err != nil {
			return err
		}
		if err := h.DirectMessage(r.Context(), m.From, user, m.Data, apiIdempotencyKey("dm", user, m.From, m.ID), false); err != nil {
			return hubError(err, log)
		}
		writeJSON(w, http.StatusOK, map[string]bool{"delivered": true})
		return nil
	})
}

// handleKick disconnects a user everywhere: DELETE /api/users/{user}/sessions.
func handleKick(h *hub.Hub, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		user, err := pathUser(r)
		if err != nil {
			return err
		}
		had, err := h.Kick(r.Context(), user)
		if err != nil {
			return hubError(err, log)
		}
		writeJSON(w, http.StatusOK, map[string]bool{"disconnected": had})
		return nil
	})
}

// handleNotFound answers unknown /api paths with a JSON 404.
func handleNotFound() http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		return apiError(http.StatusNotFound, "not_found", "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// apiHandler adapts a handler returning an error to http.Handler, writing
// the error as JSON.
func apiHandler(f func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			clients.WriteError(w, err)
		}
	})
}

// clusterRegistry is what a clustered broker offers for /api/stats: the
// registry entry (the counters as JSON) of every live node.
type clusterRegistry interface {
	NodeInfos(ctx context.Context) (map[string][]byte, error)
}

// handleStats reports the counters of this node, of every live node, and
// their totals: GET /api/stats. Other nodes' counters are as of their last
// heartbeat (a few seconds old); this node's are live, and its entry under
// "node" also carries its Go runtime figures.
func handleStats(h *hub.Hub, broker hub.Broker, nodeID string, log zerolog.Logger) http.Handler {
	return apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		local := nodeStats{Node: nodeID, Stats: h.Stats()}
		nodes := []nodeStats{local}
		if reg, ok := broker.(clusterRegistry); ok {
			infos, err := reg.NodeInfos(r.Context())
			if err != nil {
				return hubError(err, log)
			}
			for id, info := range infos {
				var st hub.Stats
				if id == nodeID || json.Unmarshal(info, &st) != nil {
					continue
				}
				nodes = append(nodes, nodeStats{Node: id, Stats: st})
			}
			slices.SortFunc(nodes, func(a, b nodeStats) int { return strings.Compare(a.Node, b.Node) })
		}
		var total hub.Stats
		for _, n := range nodes {
			total.Sessions += n.Sessions
			total.Users += n.Users
			total.Rooms += n.Rooms
			total.Published += n.Published
		}
		self := local
		self.Runtime = readRuntimeStats()
		writeJSON(w, http.StatusOK, map[string]any{"node": self, "nodes": nodes, "cluster": total})
		return nil
	})
}

// nodeStats is one node's entry in /api/stats.
type nodeStats struct {
	Node string `json:"node"`
	hub.Stats
	// Runtime is set on the answering node's own entry only.
	Runtime *runtimeStats `json:"runtime,omitempty"`
}

// runtimeStats are the Go runtime figures of the answering node, to watch
// for leaks: both should return near their idle values once its
// connections are gone.
type runtimeStats struct {
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heap_bytes"` // bytes in in-use heap spans (HeapInuse)
}

// readRuntimeStats reads the runtime figures. ReadMemStats stops the world
// for a moment: fine for an admin endpoint, not for a hot path.
func readRuntimeStats() *runtimeStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &runtimeStats{Goroutines: runtime.NumGoroutine(), HeapBytes: m.HeapInuse}
}
