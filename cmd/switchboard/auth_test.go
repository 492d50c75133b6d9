package main

import (
	"encoding/base64"
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/protocol"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func sign(t testing.TB, secret string, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedToken builds a token with the given header, whatever its alg.
func unsignedToken(header, payload, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + sig
}

func TestVerifyToken(t *testing.T) {
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	auth := tokenAuth{secret: []byte(testSecret)}
	rs256 := unsignedToken(`{"alg":"RS256","typ":"JWT"}`, `{"sub":"alice","exp":`+itoa(exp)+`}`, "c2ln")
	// An RS256 header signed with HMAC over the secret: the key-confusion attack.
	confused := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": exp})
		tok.Header["alg"] = "RS256"
		s, _ := tok.SigningString()
		sig, _ := jwt.SigningMethodHS256.Sign(s, []byte(testSecret))
		return s + "." + base64.RawURLEncoding.EncodeToString(sig)
	}()

	cases := []struct {
		name    string
		token   string
		wantErr string // substring of the error; "" means valid
		user    string
	}{
		{"valid", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp}), "", "alice"},
		{"valid with name", sign(t, testSecret, jwt.MapClaims{"sub": "bob", "name": "Bob B.", "exp": exp}), "", "bob"},
		{"expired", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}), "expired", ""},
		{"expired within leeway", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-10 * time.Second).Unix()}), "", "alice"},
		{"not yet valid", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "nbf": now.Add(time.Hour).Unix()}), "not valid yet", ""},
		{"no exp", sign(t, testSecret, jwt.MapClaims{"sub": "alice"}), "invalid", ""},
		{"wrong secret", sign(t, "another-secret-another-secret-xx", jwt.MapClaims{"sub": "alice", "exp": exp}), "invalid", ""},
		{"alg none", unsignedToken(`{"alg":"none","typ":"JWT"}`, `{"sub":"alice","exp":`+itoa(exp)+`}`, ""), "invalid", ""},
		{"RS256 header", rs256, "invalid", ""},
		{"RS256 header, HMAC signature", confused, "invalid", ""},
		{"missing sub", sign(t, testSecret, jwt.MapClaims{"exp": exp}), "sub", ""},
		{"bad sub", sign(t, testSecret, jwt.MapClaims{"sub": "al ice", "exp": exp}), "sub", ""},
		{"bad rooms pattern", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": []string{"team-["}}), "pattern", ""},
		{"rooms pattern that matches no room", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": []string{"lobby", "bad room"}}), `"bad room"`, ""},
		{"empty rooms pattern", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": []string{""}}), "empty pattern", ""},
		{"dm pattern that matches no user", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "dm": []string{"team:a"}}), `"team:a"`, ""},
		{"bad dm pattern", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "dm": []string{"bob["}}), `"bob["`, ""},
		{"rooms not a list", sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": "lobby"}), "invalid", ""},
		{"garbage", "not.a.token", "invalid", ""},
		{"empty", "", "invalid", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := auth.verify(c.token)
			if c.wantErr == "" {
				if err != nil || id.User != c.user {
					t.Fatalf("verify = %+v, %v; want user %q", id, err, c.user)
				}
				return
			}
			var he *clients.HTTPError
			if !errors.As(err, &he) || he.Status != http.StatusUnauthorized || he.Code != "unauthorized" {
				t.Fatalf("verify error = %v, want a 401 unauthorized", err)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("verify error = %q, want it to mention %q", err, c.wantErr)
			}
		})
	}
}

func TestRoomGlobs(t *testing.T) {
	match := globMatcher([]string{"team-*", "lobby", "dm:alice:?", `lit\*`})
	cases := map[string]bool{
		"team-":        true,
		"team-red":     true,
		"team-red:sub": true,
		"team":         false,
		"xteam-red":    false,
		"lobby":        true,
		"lobby2":       false,
		"Lobby":        false,
		"dm:alice:b":   true,
		"dm:alice:bo":  false,
		"lit*":         true,
		"litx":         false,
	}
	for room, want := range cases {
		if got := match(room); got != want {
			t.Errorf("match(%q) = %v, want %v", room, got, want)
		}
	}
	id, err := tokenAuth{secret: []byte(testSecret)}.verify(sign(t, testSecret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(time.Hour).Unix(), "rooms": []string{}}))
	if err != nil || id.CanJoin == nil || id.CanJoin("lobby") {
		t.Fatalf("an empty rooms list must allow no room: %+v, %v", id, err)
	}
}

func TestMintedTokenVerifies(t *testing.T) {
	auth := tokenAuth{secret: []byte(testSecret)}
	tok, err := auth.mint("alice", "Alice", []string{"team-*"}, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.verify(tok)
	if err != nil || id.User != "alice" || id.Name != "Alice" || !id.CanJoin("team-1") || id.CanJoin("lobby") {
		t.Fatalf("verify(mint) = %+v, %v", id, err)
	}
	if d := time.Until(id.Expires); d <= 0 || d > time.Minute+tokenLeeway {
		t.Fatalf("expires in %v, want within a minute and the leeway", d)
	}
	if id.CanDM != nil {
		t.Fatal("a token without a dm claim must allow DMs to anyone (CanDM nil)")
	}
}

// TestVerifyExpiresWithLeeway: a token is accepted until exp + leeway, and
// the identity it grants expires at that same moment, so the session's timer
// does not close a connection whose token was just accepted.
func TestVerifyExpiresWithLeeway(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	auth := tokenAuth{secret: []byte(testSecret), now: func() time.Time { return now }, leeway: 5 * time.Second}
	exp := now.Add(-3 * time.Second)
	id, err := auth.verify(sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp.Unix()}))
	if err != nil {
		t.Fatalf("a token 3s past exp with 5s of leeway: %v", err)
	}
	if want := exp.Add(5 * time.Second); !id.Expires.Equal(want) {
		t.Fatalf("Expires = %v, want exp + leeway = %v", id.Expires, want)
	}
	if _, err := auth.verify(sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-6 * time.Second).Unix()})); err == nil {
		t.Fatal("a token 6s past exp with 5s of leeway was accepted")
	}
	def := tokenAuth{secret: []byte(testSecret), now: func() time.Time { return now }}
	id, err = def.verify(sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp.Unix()}))
	if want := exp.Add(tokenLeeway); err != nil || !id.Expires.Equal(want) {
		t.Fatalf("default leeway: Expires = %v, %v; want %v", id.Expires, err, want)
	}
}

// TestDMClaim: the dm claim limits whom the user may send DMs to, with the
// syntax of rooms.
func TestDMClaim(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	auth := tokenAuth{secret: []byte(testSecret)}
	id, err := auth.verify(sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "dm": []string{"bob", "support-*"}}))
	if err != nil || id.CanDM == nil {
		t.Fatalf("verify = %+v, %v; want CanDM set", id, err)
	}
	for user, want := range map[string]bool{"bob": true, "support-1": true, "bobby": false, "carol": false} {
		if got := id.CanDM(user); got != want {
			t.Errorf("CanDM(%q) = %v, want %v", user, got, want)
		}
	}
	id, err = auth.verify(sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "dm": []string{}}))
	if err != nil || id.CanDM == nil || id.CanDM("bob") {
		t.Fatalf("an empty dm list must allow DMs to no one: %+v, %v", id, err)
	}
}

// TestCheckGlobs: a pattern must be well formed and able to match some
// valid name.
func TestCheckGlobs(t *testing.T) {
	long := strings.Repeat("a", 65)
	cases := []struct {
		pattern  string
		room, dm bool // accepted as a rooms pattern, as a dm pattern
	}{
		{"lobby", true, true},
		{"team-*", true, true},
		{"*", true, true},
		{"**", true, true},
		{"?", true, true},
		{"[a-c]*", true, true},
		{"team-[^x]", true, true},
		{`\a`, true, true},
		{"dm:alice:?", true, false},
		{"*:*", true, false},
		{"[:]", true, false},
		{long[:32], true, true},
		{long[:33], true, false},
		{long[:64] + "*", true, false},
		{long, false, false},
		{"", false, false},
		{"bad room", false, false},
		{"a/b", false, false},
		{"lobby!", false, false},
		{`lit\*`, false, false},
		{"[!]", false, false},
		{"[^a-zA-Z0-9_.:-]", false, false},
		{"team-[", false, false},
		{"[]", false, false},
		{"[a-]", false, false},
		{`a\`, false, false},
		{"é", false, false},
	}
	for _, c := range cases {
		if err := checkGlobs([]string{c.pattern}, "room", protocol.ValidRoom); (err == nil) != c.room {
			t.Errorf("rooms pattern %q: %v, want accepted %v", c.pattern, err, c.room)
		} else if err != nil && c.pattern != "" && !strings.Contains(err.Error(), strconv.Quote(c.pattern)) {
			t.Errorf("rooms pattern %q: error %q does not name it", c.pattern, err)
		}
		if err := checkGlobs([]string{c.pattern}, "user", protocol.ValidUser); (err == nil) != c.dm {
			t.Errorf("dm pattern %q: %v, want accepted %v", c.pattern, err, c.dm)
		}
	}
}

// FuzzCheckGlobs: checkGlobs never panics, and accepts a pattern only when
// some valid room name matches it.
func FuzzCheckGlobs(f *testing.F) {
	for _, p := range []string{"lobby", "team-*", "[a-c]?", `\x`, "[^a]", "bad room", "[", "a\\"} {
		f.Add(p)
	}
	alphabet := nameAlphabet(protocol.ValidRoom)
	f.Fuzz(func(t *testing.T, p string) {
		if checkGlobs([]string{p}, "room", protocol.ValidRoom) != nil {
			return
		}
		w, _ := globWitness(p, alphabet)
		if ok, _ := path.Match(p, w); !ok || !protocol.ValidRoom(w) {
			t.Fatalf("accepted %q, but its witness %q is not a matching room name", p, w)
		}
	})
}

// FuzzVerifyToken feeds arbitrary tokens to the verifier: it must never
// panic, and must accept only tokens that carry a valid user.
func FuzzVerifyToken(f *testing.F) {
	exp := time.Now().Add(24 * time.Hour).Unix()
	f.Add(sign(f, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp}))
	f.Add(sign(f, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": []string{"team-*"}}))
	f.Add(unsignedToken(`{"alg":"none"}`, `{"sub":"alice"}`, ""))
	f.Add("a.b.c")
	f.Add("")
	auth := tokenAuth{secret: []byte(testSecret)}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := auth.verify(token)
		if err == nil && (id.User == "" || len(id.User) > 32) {
			t.Fatalf("accepted a token with user %q", id.User)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
