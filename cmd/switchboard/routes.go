package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
	"github.com/switchboard-chat/switchboard/web"
)

// routes returns every HTTP route of the server. The server API under /api
// exists only when an API key is configured; /metrics only when metrics is
// not nil (it needs the API key, when there is one). Every route but the
// WebSocket endpoint reads its body and writes its response within
// cfg.HTTP.Request.
func routes(h *hub.Hub, broker hub.Broker, ws *clients.Server, draining *atomic.Bool, metrics http.Handler, cfg config, log zerolog.Logger) http.Handler {
	mux := http.NewServeMux()
	bounded := func(pattern string, handler http.Handler) {
		mux.Handle(pattern, boundRequest(cfg.HTTP.Request, handler))
	}
	mux.Handle("GET /ws", refuseWhileDraining(draining, ws))
	bounded("GET /healthz", handleHealthz())
	bounded("GET /readyz", handleReadyz(h, draining, log))
	if metrics != nil {
		m := metrics
		if cfg.APIKey != "" { // with a key, scrapers send it; without, /metrics is open like the rest
			m = requireKey(cfg.APIKey, "/metrics needs Authorization: Bearer <SWITCHBOARD_API_KEY>, or a private --metrics-addr", metrics)
		}
		bounded("GET /metrics", m)
	}
	bounded("/", getOnly(web.Handler()))

	api := http.NewServeMux()
	limit := int64(cfg.MaxFrame)
	api.Handle("POST /api/rooms/{room}/messages", handlePublish(h, limit, log))
	api.Handle("GET /api/rooms/{room}/messages", handleRoomHistory(h, log))
	api.Handle("PATCH /api/rooms/{room}/messages/{seq}", handleEdit(h, limit, log))
	api.Handle("DELETE /api/rooms/{room}/messages/{seq}", handleDelete(h, log))
	api.Handle("GET /api/rooms/{room}/presence", handleRoomPresence(h, log))
	api.Handle("POST /api/rooms/{room}/mutes", handleRestrict(h, hub.ModMute, log))
	api.Handle("DELETE /api/rooms/{room}/mutes/{user}", handleLift(h, hub.ModUnmute, log))
	api.Handle("POST /api/rooms/{room}/bans", handleRestrict(h, hub.ModBan, log))
	api.Handle("DELETE /api/rooms/{room}/bans/{user}", handleLift(h, hub.ModUnban, log))
	api.Handle("PUT /api/rooms/{room}/freeze", handleFreeze(h, hub.ModFreeze, log))
	api.Handle("DELETE /api/rooms/{room}/freeze", handleFreeze(h, hub.ModUnfreeze, log))
	api.Handle("GET /api/rooms/{room}/moderation", handleModeration(h, log))
	api.Handle("POST /api/users/{user}/messages", handleUserMessage(h, limit, log))
	api.Handle("DELETE /api/users/{user}/sessions", handleKick(h, log))
	api.Handle("GET /api/users/{user}/unread", handleUserUnread(h, log))
	api.Handle("GET /api/stats", handleStats(h, broker, cfg.NodeID, log))
	api.Handle("/api/", handleNotFound())
	if cfg.APIKey != "" {
		bounded("/api/", requireKey(cfg.APIKey, "the server API needs Authorization: Bearer <SWITCHBOARD_API_KEY>", api))
	} else {
		bounded("/api/", apiHandler(func(w http.ResponseWriter, r *http.Request) error {
			return apiError(http.StatusNotFound, "not_found", "the server API is disabled: set SWITCHBOARD_API_KEY")
		}))
	}
	return mux
}

// handleHealthz answers 200 while the process is alive.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz answers 200 when the node can take traffic: not draining and
// its broker reachable; 503 otherwise. The body says only which: the cause
// of an unreachable broker (addresses, ports) is logged, not shown to
// whoever asks, and logged once per outage rather than on every probe.
func handleReadyz(h *hub.Hub, draining *atomic.Bool, log zerolog.Logger) http.Handler {
	var failing atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.Ready(ctx); err != nil {
			if !failing.Swap(true) {
				log.Warn().Err(err).Msg("not ready: broker unreachable")
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		if failing.Swap(false) {
			log.Info().Msg("ready again: broker reachable")
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// refuseWhileDraining answers WebSocket upgrades with 503, a JSON error and
// Retry-After while the node drains, so that a load balancer retries them
// on another node (nginx: proxy_next_upstream http_503) and a client
// connects again.
func refuseWhileDraining(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Retry-After", "1")
			clients.WriteError(w, apiError(http.StatusServiceUnavailable, protocol.CodeUnavailable, "this node is restarting: connect again"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// getOnly answers methods other than GET and HEAD with 405.
func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			clients.WriteError(w, apiError(http.StatusMethodNotAllowed, protocol.CodeBadRequest, "method not allowed"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages are read by people: keep <, > and & as they are
	enc.Encode(v)
}
