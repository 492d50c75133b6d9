package clients

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// remoteIP returns the IP address of the client of r, without a port: the
// socket peer's, unless the peer is inside one of the trusted prefixes.
// Then the client is the rightmost address of the Forwarded header (RFC
// 7239, its for= parameters), or of X-Forwarded-For when there is no
// Forwarded header, that is not itself trusted; the leftmost when every one
// is. A header that cannot be read that far (no for=, unknown, an
// obfuscated name, garbage) counts for nothing: the peer is the client.
// Addresses left of the client are never read, since anyone can write them.
func remoteIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseNode(r.RemoteAddr)
	if !ok {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	var hops []string
	if values := r.Header.Values("Forwarded"); len(values) > 0 {
		hops, ok = forwardedFor(values)
	} else if values := r.Header.Values("X-Forwarded-For"); len(values) > 0 {
		for _, v := range values {
			hops = append(hops, strings.Split(v, ",")...)
		}
	}
	if !ok {
		return peer.String()
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseNode(strings.TrimSpace(hops[i]))
		if !ok {
			return peer.String()
		}
		client = a
		if !isTrusted(a, trusted) {
			break
		}
	}
	return client.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseNode parses an address as proxies write it: an IP, with or without a
// port, an IPv6 one in brackets when it has one. An IPv4-mapped IPv6
// address is returned as IPv4.
func parseNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// forwardedFor returns the for= value of every element of the Forwarded
// header values, in order, unquoted. It reports false when a value is
// malformed or an element has no for=.
func forwardedFor(values []string) ([]string, bool) {
	var fors []string
	for _, v := range values {
		for rest := v; ; {
			var value string
			var ok bool
			value, rest, ok = forwardedElement(rest)
			if !ok {
				return nil, false
			}
			fors = append(fors, value)
			if rest == "" {
				break
			}
			rest = rest[1:] // the comma
		}
	}
	return fors, true
}

// forwardedElement reads one element, pairs separated by ';', from the
// start of s up to a ',' or the end, and returns its for= value and the
// rest of s, from the comma.
func forwardedElement(s string) (value, rest string, ok bool) {
	found := false
	for {
		s = strings.TrimLeft(s, " \t")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return "", "", false
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, ";,\"") {
			return "", "", false
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var v string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return "", "", false
			}
			v, s = s[1:1+end], s[end+2:]
			if strings.Contains(v, `\`) { // an address needs no escape
				return "", "", false
			}
		} else {
			end := strings.IndexAny(s, ";, \t")
			if end < 0 {
				end = len(s)
			}
			v, s = s[:end], s[end:]
		}
		if strings.EqualFold(key, "for") {
			value, found = v, true
		}
		s = strings.TrimLeft(s, " \t")
		switch {
		case s == "" || s[0] == ',':
			return value, s, found
		case s[0] != ';':
			return "", "", false
		}
		s = s[1:]
	}
}
