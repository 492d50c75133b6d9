package clients

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestRemoteIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	tests := []struct {
		name    string
		peer    string
		trusted []netip.Prefix
		xff     []string
		fwd     []string
		want    string
	}{
		{"peer", "192.0.2.1:5000", trusted, nil, nil, "192.0.2.1"},
		{"peer v6", "[2001:db8::1]:5000", trusted, nil, nil, "2001:db8::1"},
		{"peer without port", "192.0.2.1", trusted, nil, nil, "192.0.2.1"},
		{"untrusted peer: header ignored", "192.0.2.1:5000", trusted, []string{"198.51.100.7"}, nil, "192.0.2.1"},
		{"no trusted proxies: header ignored", "10.0.0.1:5000", nil, []string{"198.51.100.7"}, nil, "10.0.0.1"},
		{"trusted peer without header", "10.0.0.1:5000", trusted, nil, nil, "10.0.0.1"},
		{"xff", "10.0.0.1:5000", trusted, []string{"198.51.100.7"}, nil, "198.51.100.7"},
		{"xff rightmost untrusted", "10.0.0.1:5000", trusted, []string{"203.0.113.9, 198.51.100.7, 10.1.2.3"}, nil, "198.51.100.7"},
		{"xff several lines", "10.0.0.1:5000", trusted, []string{"203.0.113.9", "198.51.100.7,10.1.2.3"}, nil, "198.51.100.7"},
		{"xff spoofed left part ignored", "10.0.0.1:5000", trusted, []string{"1.2.3.4, 198.51.100.7"}, nil, "198.51.100.7"},
		{"xff all trusted: leftmost", "10.0.0.1:5000", trusted, []string{"10.9.9.9, 10.1.2.3"}, nil, "10.9.9.9"},
		{"xff v6", "[fd00::1]:5000", trusted, []string{"2001:db8::7"}, nil, "2001:db8::7"},
		{"xff with port", "10.0.0.1:5000", trusted, []string{"198.51.100.7:1234"}, nil, "198.51.100.7"},
		{"xff v6 with port", "10.0.0.1:5000", trusted, []string{"[2001:db8::7]:1234"}, nil, "2001:db8::7"},
		{"xff v4-mapped v6", "10.0.0.1:5000", trusted, []string{"::ffff:198.51.100.7"}, nil, "198.51.100.7"},
		{"xff garbage", "10.0.0.1:5000", trusted, []string{"not an ip"}, nil, "10.0.0.1"},
		{"xff garbage rightmost", "10.0.0.1:5000", trusted, []string{"198.51.100.7, garbage"}, nil, "10.0.0.1"},
		{"xff garbage left of the client", "10.0.0.1:5000", trusted, []string{"garbage, 198.51.100.7"}, nil, "198.51.100.7"},
		{"xff empty", "10.0.0.1:5000", trusted, []string{""}, nil, "10.0.0.1"},
		{"xff empty element", "10.0.0.1:5000", trusted, []string{"198.51.100.7,,"}, nil, "10.0.0.1"},
		{"forwarded", "10.0.0.1:5000", trusted, nil, []string{"for=198.51.100.7"}, "198.51.100.7"},
		{"forwarded case and space", "10.0.0.1:5000", trusted, nil, []string{"Proto=https; FOR = 198.51.100.7 ;by=10.0.0.1"}, "198.51.100.7"},
		{"forwarded quoted v4 port", "10.0.0.1:5000", trusted, nil, []string{`for="198.51.100.7:47011"`}, "198.51.100.7"},
		{"forwarded quoted v6", "10.0.0.1:5000", trusted, nil, []string{`for="[2001:db8:cafe::17]"`}, "2001:db8:cafe::17"},
		{"forwarded quoted v6 port", "10.0.0.1:5000", trusted, nil, []string{`for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"forwarded chain", "10.0.0.1:5000", trusted, nil, []string{`for=203.0.113.9, for="198.51.100.7";proto=http, for=10.1.2.3`}, "198.51.100.7"},
		{"forwarded several lines", "10.0.0.1:5000", trusted, nil, []string{`for=203.0.113.9`, `for=198.51.100.7, for="[fd00::3]"`}, "198.51.100.7"},
		{"forwarded before xff", "10.0.0.1:5000", trusted, []string{"203.0.113.1"}, []string{"for=198.51.100.7"}, "198.51.100.7"},
		{"forwarded unknown", "10.0.0.1:5000", trusted, nil, []string{"for=unknown"}, "10.0.0.1"},
		{"forwarded obfuscated", "10.0.0.1:5000", trusted, nil, []string{"for=_hidden"}, "10.0.0.1"},
		{"forwarded without for", "10.0.0.1:5000", trusted, nil, []string{"proto=https"}, "10.0.0.1"},
		{"forwarded unterminated quote", "10.0.0.1:5000", trusted, nil, []string{`for="198.51.100.7`}, "10.0.0.1"},
		{"forwarded bad bracket", "10.0.0.1:5000", trusted, nil, []string{`for="[2001:db8::1"`}, "10.0.0.1"},
		{"forwarded bad port", "10.0.0.1:5000", trusted, nil, []string{`for="[2001:db8::1]x"`}, "10.0.0.1"},
		{"forwarded garbage", "10.0.0.1:5000", trusted, nil, []string{`;;==,"`}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.fwd {
				r.Header.Add("Forwarded", v)
			}
			if got := remoteIP(r, tt.trusted); got != tt.want {
				t.Errorf("remoteIP(peer %s, X-Forwarded-For %q, Forwarded %q) = %s, want %s", tt.peer, tt.xff, tt.fwd, got, tt.want)
			}
		})
	}
}

// FuzzRemoteIP feeds arbitrary Forwarded and X-Forwarded-For headers from a
// trusted and an untrusted peer: remoteIP never fails, always answers a
// valid address, believes no header from an untrusted peer, and without
// headers answers the peer.
func FuzzRemoteIP(f *testing.F) {
	f.Add(`for=192.0.2.60;proto=http;by=203.0.113.43`, "203.0.113.195, 10.1.2.3")
	f.Add(`for="[2001:db8:cafe::17]:4711"`, "")
	f.Add(`for=unknown, for=_hidden`, "garbage,,")
	f.Add("", "2001:db8::1")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, fwd, xff string) {
		for _, peer := range []string{"10.0.0.1:5000", "192.0.2.1:5000"} {
			r := &http.Request{RemoteAddr: peer, Header: http.Header{}}
			if fwd != "" {
				r.Header.Set("Forwarded", fwd)
			}
			if xff != "" {
				r.Header.Set("X-Forwarded-For", xff)
			}
			got := remoteIP(r, trusted)
			if _, err := netip.ParseAddr(got); err != nil {
				t.Fatalf("peer %s: remoteIP = %q, not an address", peer, got)
			}
			host := peer[:len(peer)-len(":5000")]
			if peer == "192.0.2.1:5000" && got != host {
				t.Fatalf("untrusted peer: remoteIP = %q, want the peer %s", got, host)
			}
			if got != host && fwd == "" && xff == "" {
				t.Fatalf("remoteIP = %q without headers, want the peer %s", got, host)
			}
		}
	})
}
