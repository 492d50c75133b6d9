package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestClusterModeration: two nodes sharing a real Redis. A ban through node
// 1's API takes the member connected to node 2 out of the room with left
// banned and refuses its rejoin; a mute refuses the muted member's send; a
// freeze tells the members and refuses their sends, not the API's. Each
// takes effect on the other node within a second.
func TestClusterModeration(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 2, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	alice := dial(t, nodes[0], "?name=alice", nil)
	bob := dial(t, nodes[1], "?name=bob", nil)
	eve := dial(t, nodes[1], "?name=eve", nil)
	for _, c := range []*wsClient{alice, bob, eve} {
		c.join("lobby")
	}

	// Mute.
	code, body := api(t, "POST", nodes[0]+"/api/rooms/lobby/mutes", testKey, `{"user":"bob","duration":"10m"}`)
	until, _ := body["until"].(float64)
	if code != 200 || body["user"] != "bob" || until < float64(time.Now().Add(9*time.Minute).UnixMilli()) {
		t.Fatalf("mute: %d %v", code, body)
	}
	if m := bob.next("muted"); m["room"] != "lobby" || m["until"] != until {
		t.Fatalf("bob got %v, want muted until %v", m, until)
	}
	m := bob.answer("s1", `{"type":"send","room":"lobby","data":"x","id":"s1"}`)
	wantError(t, "muted bob's send", m, "muted")
	if m["until"] != until {
		t.Errorf("muted error %v, want until %v", m, until)
	}
	wantAck(t, "alice's send", alice.answer("a1", `{"type":"send","room":"lobby","data":"hi","id":"a1"}`), 1)
	bob.next("message")
	if code, _ := api(t, "DELETE", nodes[1]+"/api/rooms/lobby/mutes/bob", testKey, ""); code != 200 {
		t.Fatalf("unmute: %d", code)
	}
	bob.next("unmuted")
	wantAck(t, "unmuted bob's send", bob.answer("s2", `{"type":"send","room":"lobby","data":"back","id":"s2"}`), 2)

	// Freeze.
	if code, body := api(t, "PUT", nodes[1]+"/api/rooms/lobby/freeze", testKey, ""); code != 200 || body["frozen"] != true {
		t.Fatalf("freeze: %d %v", code, body)
	}
	for _, c := range []*wsClient{alice, bob} {
		if m := c.next("room_updated"); m["frozen"] != true || m["room"] != "lobby" {
			t.Fatalf("got %v, want room_updated frozen", m)
		}
	}
	wantError(t, "alice's send, frozen", alice.answer("a2", `{"type":"send","room":"lobby","data":"x","id":"a2"}`), "frozen")
	wantError(t, "alice's edit, frozen", alice.answer("a3", `{"type":"edit","room":"lobby","seq":1,"data":"x","id":"a3"}`), "frozen")
	if code, body := api(t, "POST", nodes[0]+"/api/rooms/lobby/messages", testKey, `{"data":"announcement"}`); code != 200 {
		t.Fatalf("API publish, frozen: %d %v", code, body)
	}
	if m := alice.next("message"); m["data"] != "announcement" {
		t.Fatalf("alice got %v", m)
	}
	if code, body := api(t, "GET", nodes[0]+"/api/rooms/lobby/moderation", testKey, ""); code != 200 || body["frozen"] != true {
		t.Fatalf("moderation: %d %v", code, body)
	}
	api(t, "DELETE", nodes[0]+"/api/rooms/lobby/freeze", testKey, "")
	if m := bob.next("room_updated"); m["frozen"] != false {
		t.Fatalf("bob got %v, want room_updated not frozen", m)
	}

	// Ban.
	code, body = api(t, "POST", nodes[0]+"/api/rooms/lobby/bans", testKey, `{"user":"eve","reason":"spam"}`)
	if code != 200 || body["until"] != 0.0 || body["reason"] != "spam" {
		t.Fatalf("ban: %d %v", code, body)
	}
	m, err := eve.readType("left", time.Second)
	if err != nil || m["reason"] != "banned" || m["room"] != "lobby" {
		t.Fatalf("eve on node 2 got %v, %v within 1s; want left banned", m, err)
	}
	if m := alice.next("member_left"); m["user"] != "eve" {
		t.Fatalf("alice got %v, want eve's member_left", m)
	}
	wantError(t, "eve's send after the ban", eve.answer("e1", `{"type":"send","room":"lobby","data":"x","id":"e1"}`), "not_member")
	wantError(t, "eve's rejoin", eve.answer("j1", `{"type":"join","room":"lobby","id":"j1"}`), "banned")
	eve2 := dial(t, nodes[0], "?name=eve", nil)
	wantError(t, "eve's join on node 1", eve2.answer("j2", `{"type":"join","room":"lobby","id":"j2"}`), "banned")
	code, body = api(t, "GET", nodes[1]+"/api/rooms/lobby/moderation", testKey, "")
	bans, _ := body["bans"].([]any)
	if code != 200 || len(bans) != 1 || body["frozen"] != false {
		t.Fatalf("moderation: %d %v", code, body)
	}
	api(t, "DELETE", nodes[1]+"/api/rooms/lobby/bans/eve", testKey, "")
	eve.join("lobby")
}

// TestModerationAPIErrors: bad bodies and durations are refused.
func TestModerationAPIErrors(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	for _, tt := range []struct {
		method, path, body string
		code               int
		errCode            string
	}{
		{"POST", "/api/rooms/lobby/mutes", `{"user":"bob","duration":"forever"}`, 400, "bad_request"},
		{"POST", "/api/rooms/lobby/mutes", `{"user":"bob","duration":"9000h"}`, 400, "bad_request"},
		{"POST", "/api/rooms/lobby/mutes", `{"user":"bob","reason":"x"}`, 400, "bad_request"},
		{"POST", "/api/rooms/lobby/mutes", `{"user":"b b"}`, 400, "bad_request"},
		{"POST", "/api/rooms/lobby/bans", `{"user":"bob","other":1}`, 400, "bad_json"},
		{"POST", "/api/rooms/lobby/bans", `[]`, 400, "bad_json"},
		{"DELETE", "/api/rooms/lobby/bans/b%20b", "", 400, "bad_request"},
		{"PUT", "/api/rooms/l%20l/freeze", "", 400, "bad_request"},
	} {
		code, body := api(t, tt.method, base+tt.path, testKey, tt.body)
		if e, _ := body["error"].(map[string]any); code != tt.code || e["code"] != tt.errCode {
			t.Errorf("%s %s %s: %d %v, want %d %s", tt.method, tt.path, tt.body, code, body, tt.code, tt.errCode)
		}
	}
	code, body := api(t, "GET", base+"/api/rooms/lobby/moderation", testKey, "")
	if code != 200 || body["frozen"] != false || len(body["mutes"].([]any)) != 0 || len(body["bans"].([]any)) != 0 {
		t.Errorf("moderation of an untouched room: %d %v", code, body)
	}
}

// TestOperatorClaim: a user whose token's op claim matches the room mutes,
// bans, freezes and deletes others' messages over the protocol, and writes
// to the frozen room; a user without it is refused with forbidden.
func TestOperatorClaim(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_JWT_SECRET": testSecret})
	exp := time.Now().Add(time.Hour).Unix()
	token := func(user string, op ...string) string {
		c := jwt.MapClaims{"sub": user, "exp": exp}
		if op != nil {
			c["op"] = op
		}
		return "?token=" + sign(t, testSecret, c)
	}
	olga := dial(t, base, token("olga", "team-*"), nil)
	bob := dial(t, base, token("bob"), nil)
	carl := dial(t, base, token("carl", "other"), nil)
	for _, c := range []*wsClient{olga, bob, carl} {
		c.join("team-a")
	}
	wantAck(t, "bob's send", bob.answer("b1", `{"type":"send","room":"team-a","data":"spam","id":"b1"}`), 1)

	wantError(t, "bob's mute", bob.answer("m0", `{"type":"mute","room":"team-a","user":"olga","id":"m0"}`), "forbidden")
	wantError(t, "carl's freeze", carl.answer("f0", `{"type":"freeze","room":"team-a","id":"f0"}`), "forbidden")
	wantError(t, "carl's delete", carl.answer("d0", `{"type":"delete","room":"team-a","seq":1,"id":"d0"}`), "forbidden")

	if m := olga.answer("m1", `{"type":"mute","room":"team-a","user":"bob","duration":"1h","id":"m1"}`); m["type"] != "ack" {
		t.Fatalf("olga's mute answered %v", m)
	}
	bob.next("muted")
	wantError(t, "muted bob's send", bob.answer("b2", `{"type":"send","room":"team-a","data":"x","id":"b2"}`), "muted")
	wantAck(t, "olga's delete of bob's message", olga.answer("d1", `{"type":"delete","room":"team-a","seq":1,"id":"d1"}`), 2)
	wantChange(t, bob.next("message_deleted"), "message_deleted", 2, 1, "olga")

	if m := olga.answer("f1", `{"type":"freeze","room":"team-a","id":"f1"}`); m["type"] != "ack" {
		t.Fatalf("olga's freeze answered %v", m)
	}
	carl.next("room_updated")
	wantError(t, "carl's send, frozen", carl.answer("c1", `{"type":"send","room":"team-a","data":"x","id":"c1"}`), "frozen")
	wantAck(t, "olga's send, frozen", olga.answer("o1", `{"type":"send","room":"team-a","data":"rules","id":"o1"}`), 3)

	if m := olga.answer("b3", `{"type":"ban","room":"team-a","user":"carl","reason":"rude","id":"b3"}`); m["type"] != "ack" {
		t.Fatalf("olga's ban answered %v", m)
	}
	if m := carl.next("left"); m["reason"] != "banned" {
		t.Fatalf("carl got %v, want left banned", m)
	}
	wantError(t, "carl's rejoin", carl.answer("j", `{"type":"join","room":"team-a","id":"j"}`), "banned")
	olga.answer("u1", `{"type":"unban","room":"team-a","user":"carl","id":"u1"}`)
	carl.join("team-a")
}

// TestOpClaimVerified: the op claim is checked like rooms and reaches the
// identity as CanModerate.
func TestOpClaimVerified(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	auth := tokenAuth{secret: []byte(testSecret)}
	id, err := auth.verify(sign(t, testSecret, jwt.MapClaims{"sub": "olga", "exp": exp, "op": []string{"team-*"}}))
	if err != nil || id.CanModerate == nil || !id.CanModerate("team-a") || id.CanModerate("lobby") {
		t.Fatalf("verify = %+v, %v; want CanModerate of team-* only", id, err)
	}
	if id, err = auth.verify(sign(t, testSecret, jwt.MapClaims{"sub": "olga", "exp": exp})); err != nil || id.CanModerate != nil {
		t.Fatalf("without op: %+v, %v; want no CanModerate", id, err)
	}
	if _, err = auth.verify(sign(t, testSecret, jwt.MapClaims{"sub": "olga", "exp": exp, "op": []string{"a b"}})); err == nil {
		t.Fatal("a bad op glob was accepted")
	}
	tok, err := auth.mintOp("olga", "", nil, nil, []string{"team-*"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if id, err = auth.verify(tok); err != nil || id.CanModerate == nil || !id.CanModerate("team-x") {
		t.Fatalf("minted op token: %+v, %v", id, err)
	}
}

// TestTokenOpFlag: switchboard token --op mints the op claim, and refuses
// a bad glob.
func TestTokenOpFlag(t *testing.T) {
	var out strings.Builder
	env := func(k string) string {
		if k == "SWITCHBOARD_JWT_SECRET" {
			return testSecret
		}
		return ""
	}
	if err := run(t.Context(), []string{"token", "--user", "olga", "--op", "team-*, lobby"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	id, err := tokenAuth{secret: []byte(testSecret)}.verify(strings.TrimSpace(out.String()))
	if err != nil || id.CanModerate == nil || !id.CanModerate("lobby") || !id.CanModerate("team-b") || id.CanModerate("other") || id.CanJoin != nil {
		t.Fatalf("token --op: %+v, %v", id, err)
	}
	out.Reset()
	err = run(t.Context(), []string{"token", "--user", "olga", "--op", "bad room"}, env, &out, io.Discard)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--op") || out.Len() != 0 {
		t.Errorf("token --op 'bad room' = %v, printed %q; want a usage error naming --op", err, out.String())
	}
}

// TestJoinedStanding: a user who joins (or reloads the page) while muted in
// a frozen room learns both from the joined answer, without waiting for an
// event or a refused write; once lifted, a join says nothing of them.
func TestJoinedStanding(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	code, body := api(t, "POST", base+"/api/rooms/lobby/mutes", testKey, `{"user":"bob","duration":"10m"}`)
	if code != 200 {
		t.Fatalf("mute: %d %v", code, body)
	}
	if code, _ := api(t, "PUT", base+"/api/rooms/lobby/freeze", testKey, ""); code != 200 {
		t.Fatalf("freeze: %d", code)
	}
	bob := dial(t, base, "?name=bob", nil)
	j := bob.join("lobby")
	if j["muted"] != true || j["muted_until"] != body["until"] || j["frozen"] != true {
		t.Errorf("bob's joined %v: want muted until %v and frozen", j, body["until"])
	}
	eve := dial(t, base, "?name=eve", nil)
	if j := eve.join("lobby"); j["muted"] != nil || j["frozen"] != true {
		t.Errorf("eve's joined %v: want frozen, not muted", j)
	}

	api(t, "DELETE", base+"/api/rooms/lobby/mutes/bob", testKey, "")
	api(t, "DELETE", base+"/api/rooms/lobby/freeze", testKey, "")
	bob2 := dial(t, base, "?name=bob", nil)
	if j := bob2.join("lobby"); j["muted"] != nil || j["frozen"] != nil || j["muted_until"] != nil {
		t.Errorf("joined after the mute and freeze were lifted: %v", j)
	}
}
