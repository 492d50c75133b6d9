package main

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/protocol"
)

// originChecker returns the check run on every WebSocket upgrade. A request
// without an Origin header (a non-browser client such as wscat) is allowed.
// A browser's Origin is allowed when its host is the host the request was
// made to, when it is localhost, or when it matches one of patterns
// (path.Match globs over "host" or "host:port", e.g. "*.example.com").
func originChecker(patterns []string) func(r *http.Request) error {
	return func(r *http.Request) error {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return nil
		}
		u, err := url.Parse(origin)
		if err == nil && u.Host != "" && originAllowed(u, r.Host, patterns) {
			return nil
		}
		return &clients.HTTPError{Status: http.StatusForbidden, Code: protocol.CodeForbidden,
			Message: "origin " + origin + " is not allowed; see SWITCHBOARD_ALLOWED_ORIGINS"}
	}
}

func originAllowed(u *url.URL, requestHost string, patterns []string) bool {
	host, name := strings.ToLower(u.Host), strings.ToLower(u.Hostname())
	if host == strings.ToLower(requestHost) {
		return true
	}
	switch name {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	for _, p := range patterns {
		p = strings.ToLower(p)
		if ok, _ := path.Match(p, host); ok {
			return true
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
