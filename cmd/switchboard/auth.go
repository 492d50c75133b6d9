package main

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/protocol"
)

// minSecretLen is the shortest JWT secret accepted: HS256 needs at least 256
// bits of key to be as strong as its hash.
const minSecretLen = 32

// tokenLeeway is the clock skew tolerated on exp and nbf.
const tokenLeeway = 30 * time.Second

// claims are the JWT claims Switchboard reads. sub and exp are required.
type claims struct {
	// Name is an optional display name.
	Name string `json:"name,omitempty"`
	// Rooms lists glob patterns ("team-*") of the rooms the user may join;
	// absent means every room.
	Rooms []string `json:"rooms,omitempty"`
	jwt.RegisteredClaims
}

// tokenAuth verifies HS256 tokens signed with one shared secret.
type tokenAuth struct {
	secret []byte
	now    func() time.Time // for tests; time.Now when nil
}

// verify checks a token and returns the identity it grants.
func (a tokenAuth) verify(token string) (clients.Identity, error) {
	var c claims
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithExpirationRequired(),
	}
	if a.now != nil {
		opts = append(opts, jwt.WithTimeFunc(a.now))
	}
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil }, opts...)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return clients.Identity{}, unauthorized("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return clients.Identity{}, unauthorized("token not valid yet")
	case err != nil:
		return clients.Identity{}, unauthorized("invalid token")
	case !protocol.ValidUser(c.Subject):
		return clients.Identity{}, unauthorized("token sub must be a user name: 1-32 of A-Z a-z 0-9 _ . -")
	}
	for _, p := range c.Rooms {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return clients.Identity{}, unauthorized(fmt.Sprintf("token rooms has an invalid pattern %q", p))
		}
	}
	id := clients.Identity{User: c.Subject, Name: c.Name, Expires: c.ExpiresAt.Time}
	if c.Rooms != nil {
		id.CanJoin = roomMatcher(c.Rooms)
	}
	return id, nil
}

// roomMatcher returns a function reporting whether a room matches any of the
// glob patterns (path.Match syntax: * ? [a-z] \ escapes). Room names have no
// '/', so * matches any run of characters.
func roomMatcher(patterns []string) func(string) bool {
	return func(room string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, room); ok {
				return true
			}
		}
		return false
	}
}

// identify authenticates an upgrade request by its token, from ?token= or an
// Authorization: Bearer header. ?name= is ignored.
func (a tokenAuth) identify(r *http.Request) (clients.Identity, error) {
	token := r.URL.Query().Get("token")
	if token == "" {
		token = bearer(r)
	}
	if token == "" {
		return clients.Identity{}, unauthorized("a token is required: ?token=… or Authorization: Bearer …")
	}
	return a.verify(token)
}

// mint signs a token for user, valid for ttl, limited to rooms when given.
func (a tokenAuth) mint(user, name string, rooms []string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := claims{Name: name, Rooms: rooms, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
}

// bearer returns the token of an Authorization: Bearer header, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// keyMatches reports whether the request carries the API key, compared in
// constant time.
func keyMatches(r *http.Request, key []byte) bool {
	return subtle.ConstantTimeCompare([]byte(bearer(r)), key) == 1
}

func unauthorized(msg string) error {
	return &clients.HTTPError{Status: http.StatusUnauthorized, Code: protocol.CodeUnauthorized, Message: msg}
}
