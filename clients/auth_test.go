package clients_test

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/clients"
)

// authConfig authenticates ?name= users with a token that expires at exp
// and allows every room, and refreshes tokens named in refresh.
func authConfig(exp time.Time, refresh map[string]clients.Identity) clients.Config {
	return clients.Config{
		Authenticate: func(r *http.Request) (clients.Identity, error) {
			id, err := clients.Anonymous(r)
			id.Expires = exp
			return id, err
		},
		Refresh: func(token string) (clients.Identity, error) {
			id, ok := refresh[token]
			if !ok {
				return clients.Identity{}, errors.New("unknown token")
			}
			return id, nil
		},
	}
}

// TestRefreshNarrowsRooms checks that a refresh whose token allows fewer
// rooms takes the session out of the others, each with a left frame of
// reason forbidden, before the refreshed answer; the rest of the room hears
// it left, and the new token's rules apply from then on.
func TestRefreshNarrowsRooms(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour)
	srv := newServer(t, authConfig(exp, map[string]clients.Identity{
		"narrow": {User: "alice", Expires: exp.Add(time.Hour), CanJoin: func(room string) bool { return room == "a" }},
		"bob":    {User: "bob", Expires: exp.Add(time.Hour)},
	}), options{})
	alice, bob := srv.dial("alice"), srv.dial("bob")
	for _, room := range []string{"a", "b", "c"} {
		alice.send(`{"type":"join","room":"` + room + `"}`)
		alice.next()
	}
	bob.send(`{"type":"join","room":"b"}`)
	bob.next()
	alice.expect(`{"type":"member_joined","room":"b","user":"bob","member_count":2}`)

	alice.send(`{"type":"refresh","token":"bob","id":"r0"}`)
	alice.expect(`{"type":"error","id":"r0","code":"forbidden","message":"M"}`)
	alice.send(`{"type":"refresh","token":"narrow","id":"r1"}`)
	var left []string
	for range 2 {
		left = append(left, norm(t, alice.next()))
	}
	sort.Strings(left)
	for i, room := range []string{"b", "c"} {
		if want := norm(t, []byte(`{"type":"left","room":"`+room+`","reason":"forbidden"}`)); left[i] != want {
			t.Errorf("frame %s, want %s", left[i], want)
		}
	}
	alice.expect(fmt.Sprintf(`{"type":"refreshed","id":"r1","exp":%d}`, exp.Add(time.Hour).Unix()))
	bob.expect(`{"type":"member_left","room":"b","user":"alice","member_count":1}`)

	alice.send(`{"type":"send","room":"b","data":1,"id":"s"}`)
	alice.expect(`{"type":"error","id":"s","code":"not_member","message":"M"}`)
	alice.send(`{"type":"join","room":"c","id":"j"}`)
	alice.expect(`{"type":"error","id":"j","code":"forbidden","message":"M"}`)
	alice.send(`{"type":"send","room":"a","data":1,"id":"s2"}`)
	alice.expectAnyOrder(`{"type":"message","room":"a","seq":1,"from":"alice","data":1,"ts":"TS"}`, `{"type":"ack","id":"s2","seq":1,"epoch":"E"}`)
	alice.quiet()
	bob.quiet()
}

// TestTokenExpiry checks that a session is closed with 4001 when its token
// expires, not before, and only after its welcome; and that a refresh moves
// the expiry, also to none at all.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(300 * time.Millisecond)
	srv := newServer(t, authConfig(exp, map[string]clients.Identity{
		"forever": {User: "carol"},
	}), options{})
	alice := srv.dial("alice") // fails unless welcome comes first
	carol := srv.dial("carol")
	carol.send(`{"type":"refresh","token":"forever","id":1}`)
	carol.expect(`{"type":"refreshed","id":1,"exp":0}`)

	code, frames := alice.closeStatus()
	if now := time.Now(); now.Before(exp) {
		t.Errorf("closed %v before the token expired", exp.Sub(now))
	}
	if code != websocket.StatusCode(4001) || len(frames) != 0 {
		t.Errorf("close status %v after %d frames, want 4001 and none", code, len(frames))
	}
	time.Sleep(time.Until(exp) + 100*time.Millisecond)
	carol.quiet() // still open
}
