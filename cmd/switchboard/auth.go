package main

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/protocol"
)

// minSecretLen is the shortest JWT secret accepted: HS256 needs at least 256
// bits of key to be as strong as its hash.
const minSecretLen = 32

// tokenLeeway is the clock skew tolerated on exp and nbf: a token is
// accepted until exp + tokenLeeway, and a connection it opened is closed
// with 4001 at that same moment, not at exp.
const tokenLeeway = 30 * time.Second

// claims are the JWT claims Switchboard reads. sub and exp are required.
type claims struct {
	// Name is an optional display name.
	Name string `json:"name,omitempty"`
	// Rooms lists glob patterns ("team-*") of the rooms the user may join;
	// absent means every room.
	Rooms []string `json:"rooms,omitempty"`
	// DM lists glob patterns ("bob", "support-*") of the users the user may
	// send direct messages to; absent means anyone.
	DM []string `json:"dm,omitempty"`
	// Op lists glob patterns of the rooms the user operates: mutes, bans,
	// freezes and deletes any message in, over the protocol, and writes
	// to while they are frozen or the user muted. Absent means none.
	Op []string `json:"op,omitempty"`
	jwt.RegisteredClaims
}

// tokenAuth verifies HS256 tokens signed with one shared secret.
type tokenAuth struct {
	secret []byte
	now    func() time.Time // for tests; time.Now when nil
	leeway time.Duration    // for tests; tokenLeeway when 0
}

// verify checks a token and returns the identity it grants. The identity
// expires at exp plus the leeway, the last moment verify accepts the token,
// so that a token accepted at the upgrade or in a refresh is not then
// rejected by the session's expiry timer.
func (a tokenAuth) verify(token string) (clients.Identity, error) {
	leeway := a.leeway
	if leeway == 0 {
		leeway = tokenLeeway
	}
	var c claims
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithLeeway(leeway),
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
	if err := checkGlobs(c.Rooms, "room", protocol.ValidRoom); err != nil {
		return clients.Identity{}, unauthorized("token rooms: " + err.Error())
	}
	if err := checkGlobs(c.DM, "user", protocol.ValidUser); err != nil {
		return clients.Identity{}, unauthorized("token dm: " + err.Error())
	}
	if err := checkGlobs(c.Op, "room", protocol.ValidRoom); err != nil {
		return clients.Identity{}, unauthorized("token op: " + err.Error())
	}
	id := clients.Identity{User: c.Subject, Name: c.Name, Expires: c.ExpiresAt.Add(leeway)}
	if c.Rooms != nil {
		id.CanJoin = globMatcher(c.Rooms)
	}
	if c.DM != nil {
		id.CanDM = globMatcher(c.DM)
	}
	if c.Op != nil {
		id.CanModerate = globMatcher(c.Op)
	}
	return id, nil
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

// mint signs a token for user, valid for ttl, limited to rooms and to DMs
// to dm when they are not nil.
func (a tokenAuth) mint(user, name string, rooms, dm []string, ttl time.Duration) (string, error) {
	return a.mintOp(user, name, rooms, dm, nil, ttl)
}

// mintOp is mint with the op claim: the rooms the user operates, when not
// nil.
func (a tokenAuth) mintOp(user, name string, rooms, dm, op []string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := claims{Name: name, Rooms: rooms, DM: dm, Op: op, RegisteredClaims: jwt.RegisteredClaims{
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
