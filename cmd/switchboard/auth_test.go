package main

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/clients"
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
	match := roomMatcher([]string{"team-*", "lobby", "dm:alice:?", `lit\*`})
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
	tok, err := auth.mint("alice", "Alice", []string{"team-*"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.verify(tok)
	if err != nil || id.User != "alice" || id.Name != "Alice" || !id.CanJoin("team-1") || id.CanJoin("lobby") {
		t.Fatalf("verify(mint) = %+v, %v", id, err)
	}
	if d := time.Until(id.Expires); d <= 0 || d > time.Minute {
		t.Fatalf("expires in %v, want within a minute", d)
	}
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
