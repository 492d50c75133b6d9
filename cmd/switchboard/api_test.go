package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

const testKey = "test-api-key"

// api calls the server API and returns the status and decoded JSON body.
func api(t *testing.T, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, url, ct)
	}
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body %q is not JSON", method, url, b)
	}
	return resp.StatusCode, m
}

func errorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestAPIKey(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	for _, key := range []string{"", "wrong", testKey + "x"} {
		code, body := api(t, "GET", base+"/api/stats", key, "")
		if code != 401 || errorCode(body) != "unauthorized" {
			t.Errorf("key %q: %d %v, want 401 unauthorized", key, code, body)
		}
	}
	if code, body := api(t, "GET", base+"/api/stats", testKey, ""); code != 200 || body["node"] == nil {
		t.Fatalf("stats with the key: %d %v", code, body)
	}
	if code, body := api(t, "GET", base+"/api/nope", testKey, ""); code != 404 || errorCode(body) != "not_found" {
		t.Fatalf("unknown endpoint: %d %v", code, body)
	}
}

func TestAPIDisabledWithoutKey(t *testing.T) {
	base, _ := startRun(t, nil)
	if code, body := api(t, "GET", base+"/api/stats", "anything", ""); code != 404 || errorCode(body) != "not_found" {
		t.Fatalf("stats without a configured key: %d %v", code, body)
	}
}

func TestAPIRoomsAndUsers(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey, "SWITCHBOARD_MAX_FRAME": "1024"})
	alice := dial(t, base, "?name=alice", nil)
	alice.send(`{"type":"join","room":"lobby"}`)
	alice.expect("joined")

	code, body := api(t, "POST", base+"/api/rooms/lobby/messages", testKey, `{"data":{"text":"deploy done"}}`)
	if code != 200 || body["seq"] != 1.0 {
		t.Fatalf("publish: %d %v", code, body)
	}
	msg := alice.expect("message")
	if msg["from"] != "system" || msg["seq"] != 1.0 {
		t.Fatalf("alice got %v", msg)
	}
	code, body = api(t, "POST", base+"/api/rooms/lobby/messages", testKey, `{"data":"x","from":"ops","id":"r1"}`)
	if code != 200 || body["seq"] != 2.0 {
		t.Fatalf("publish as ops: %d %v", code, body)
	}
	if code, body = api(t, "POST", base+"/api/rooms/lobby/messages", testKey, `{"data":"x","from":"ops","id":"r1"}`); code != 200 || body["seq"] != 2.0 {
		t.Fatalf("idempotent repeat: %d %v, want seq 2 again", code, body)
	}
	code, body = api(t, "GET", base+"/api/rooms/lobby/messages?limit=10", testKey, "")
	if msgs, _ := body["messages"].([]any); code != 200 || len(msgs) != 2 || body["epoch"] == "" {
		t.Fatalf("history: %d %v", code, body)
	}
	code, body = api(t, "GET", base+"/api/rooms/lobby/messages?before=2&limit=1", testKey, "")
	if msgs, _ := body["messages"].([]any); code != 200 || len(msgs) != 1 || msgs[0].(map[string]any)["seq"] != 1.0 {
		t.Fatalf("history before 2: %d %v", code, body)
	}
	code, body = api(t, "GET", base+"/api/rooms/lobby/presence", testKey, "")
	if members, _ := body["members"].([]any); code != 200 || len(members) != 1 || members[0] != "alice" {
		t.Fatalf("presence: %d %v", code, body)
	}

	code, body = api(t, "POST", base+"/api/users/alice/messages", testKey, `{"data":"hello from the backend"}`)
	if code != 200 {
		t.Fatalf("dm: %d %v", code, body)
	}
	if dm := alice.expect("dm"); dm["from"] != "system" || dm["to"] != "alice" {
		t.Fatalf("alice got %v", dm)
	}
	if code, body = api(t, "POST", base+"/api/users/nobody/messages", testKey, `{"data":1}`); code != 404 || errorCode(body) != "offline" {
		t.Fatalf("dm to nobody: %d %v", code, body)
	}

	bad := []struct{ method, path, body, code string }{
		{"POST", "/api/rooms/lobby/messages", `{"data":`, "bad_json"},
		{"POST", "/api/rooms/lobby/messages", `{"text":"x"}`, "bad_json"},
		{"POST", "/api/rooms/lobby/messages", `{"data":null}`, "bad_request"},
		{"POST", "/api/rooms/lobby/messages", `{"data":1,"from":"not valid"}`, "bad_request"},
		{"POST", "/api/rooms/bad%20room/messages", `{"data":1}`, "bad_request"},
		{"GET", "/api/rooms/lobby/messages?limit=500", "", "bad_request"},
		{"GET", "/api/rooms/lobby/messages?before=-1", "", "bad_request"},
	}
	for _, b := range bad {
		if code, body := api(t, b.method, base+b.path, testKey, b.body); code != 400 || errorCode(body) != b.code {
			t.Errorf("%s %s %s: %d %v, want 400 %s", b.method, b.path, b.body, code, body, b.code)
		}
	}
	big := `{"data":"` + strings.Repeat("x", 2000) + `"}`
	if code, body := api(t, "POST", base+"/api/rooms/lobby/messages", testKey, big); code != 413 {
		t.Fatalf("oversized body: %d %v, want 413", code, body)
	}

	code, body = api(t, "DELETE", base+"/api/users/alice/sessions", testKey, "")
	if code != 200 || body["disconnected"] != true {
		t.Fatalf("kick: %d %v", code, body)
	}
	if got := alice.closeStatus(); got != 4003 {
		t.Fatalf("kicked alice closed with %v, want 4003", got)
	}
}

func TestOriginCheck(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_ALLOWED_ORIGINS": "*.example.com"})
	host := strings.TrimPrefix(base, "http://")
	allowed := []string{"", "http://" + host, "http://localhost:3000", "https://app.example.com"}
	for _, o := range allowed {
		h := http.Header{}
		if o != "" {
			h.Set("Origin", o)
		}
		c := dial(t, base, "?name=alice", h)
		c.expect("welcome")
	}
	for _, o := range []string{"https://evil.com", "https://example.com.evil.com", "null"} {
		h := http.Header{"Origin": []string{o}}
		_, err := dialErr(t, base, "?name=alice", h)
		var de *dialError
		if !errors.As(err, &de) || de.status != 403 {
			t.Errorf("origin %s: %v, want 403", o, err)
		}
	}
}

func TestJWTAuth(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_JWT_SECRET": testSecret})
	exp := time.Now().Add(time.Hour).Unix()
	tok := sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": []string{"team-*"}})

	for _, q := range []string{"?name=alice", "?token=garbage", "?token=" + sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})} {
		_, err := dialErr(t, base, q, nil)
		var de *dialError
		if !errors.As(err, &de) || de.status != 401 {
			t.Errorf("%.40s: %v, want 401", q, err)
		}
	}

	c := dial(t, base, "?name=mallory&token="+tok, nil)
	if w := c.expect("welcome"); w["user"] != "alice" {
		t.Fatalf("welcome user = %v, want the token's sub alice", w["user"])
	}
	c.send(`{"type":"join","room":"lobby","id":1}`)
	if e := c.expect("error"); e["code"] != "forbidden" || e["id"] != 1.0 {
		t.Fatalf("join outside rooms: %v", e)
	}
	c.send(`{"type":"join","room":"team-red","id":2}`)
	c.expect("joined")

	h := http.Header{"Authorization": []string{"Bearer " + tok}}
	c2 := dial(t, base, "", h)
	if w := c2.expect("welcome"); w["user"] != "alice" {
		t.Fatalf("bearer welcome user = %v", w["user"])
	}
}

func TestJWTSecretTooShort(t *testing.T) {
	err := run(t.Context(), nil, func(k string) string {
		if k == "SWITCHBOARD_JWT_SECRET" {
			return "short"
		}
		return ""
	}, io.Discard, io.Discard)
	if !errors.Is(err, errUsage) {
		t.Fatalf("run with a short secret = %v, want a usage error", err)
	}
}

func TestTokenCommand(t *testing.T) {
	var out strings.Builder
	env := func(k string) string {
		if k == "SWITCHBOARD_JWT_SECRET" {
			return testSecret
		}
		return ""
	}
	if err := run(t.Context(), []string{"token", "--user", "alice", "--rooms", "team-*,lobby", "--ttl", "10m"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	id, err := tokenAuth{secret: []byte(testSecret)}.verify(strings.TrimSpace(out.String()))
	if err != nil || id.User != "alice" || !id.CanJoin("lobby") || !id.CanJoin("team-x") || id.CanJoin("other") {
		t.Fatalf("minted token: %+v, %v", id, err)
	}
	if id.CanDM != nil {
		t.Fatal("a token minted without --dm must allow DMs to anyone")
	}
	if err := run(t.Context(), []string{"token", "--user", "alice"}, func(string) string { return "" }, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("token without a secret = %v, want a usage error", err)
	}

	out.Reset()
	if err := run(t.Context(), []string{"token", "--user", "alice", "--dm", "bob, support-*"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	id, err = tokenAuth{secret: []byte(testSecret)}.verify(strings.TrimSpace(out.String()))
	if err != nil || id.CanJoin != nil || id.CanDM == nil || !id.CanDM("bob") || !id.CanDM("support-7") || id.CanDM("carol") {
		t.Fatalf("token --dm: %+v, %v", id, err)
	}

	// Invalid globs are refused, naming the bad pattern, not minted into a
	// token that silently allows less than intended.
	bad := []struct{ flag, value, want string }{
		{"--rooms", "lobby,,bad room", "empty pattern"},
		{"--rooms", "lobby,bad room", `"bad room"`},
		{"--rooms", "team-[", `"team-["`},
		{"--rooms", ",", "empty pattern"},
		{"--dm", "bob,team:a", `"team:a"`},
		{"--dm", "bob,", "empty pattern"},
	}
	for _, b := range bad {
		out.Reset()
		err := run(t.Context(), []string{"token", "--user", "alice", b.flag, b.value}, env, &out, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), b.flag) {
			t.Errorf("token %s %q = %v, want a usage error naming %s", b.flag, b.value, err, b.want)
		}
		if out.Len() != 0 {
			t.Errorf("token %s %q printed a token", b.flag, b.value)
		}
	}
}

// TestTokenWithinLeeway: a token a little past its exp (within the clock
// skew leeway) that is accepted at the upgrade, or in a refresh, keeps its
// connection open rather than closing it with 4001 at once.
func TestTokenWithinLeeway(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_JWT_SECRET": testSecret})
	late := sign(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-10 * time.Second).Unix()})
	c := dial(t, base, "?token="+late, nil)
	if m, err := c.read(); err != nil || m["type"] != "welcome" {
		t.Fatalf("first frame = %v, %v; want welcome", m, err)
	}
	c.send(`{"type":"join","room":"lobby","id":1}`)
	if m, err := c.read(); err != nil || m["type"] != "joined" {
		t.Fatalf("after welcome: %v, %v; want joined", m, err)
	}

	r := dial(t, base, "?token="+sign(t, testSecret, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}), nil)
	r.expect("welcome")
	r.send(`{"type":"refresh","token":"` + sign(t, testSecret, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(-10 * time.Second).Unix()}) + `","id":1}`)
	if m, err := r.read(); err != nil || m["type"] != "refreshed" {
		t.Fatalf("refresh within the leeway: %v, %v", m, err)
	}
	r.send(`{"type":"join","room":"lobby","id":2}`)
	if m, err := r.read(); err != nil || m["type"] != "joined" {
		t.Fatalf("after the refresh: %v, %v; want joined", m, err)
	}
}

// FuzzDecodeAPIMessage feeds arbitrary bodies to the API body decoder: it
// must never panic, and what it accepts must be valid.
func FuzzDecodeAPIMessage(f *testing.F) {
	f.Add([]byte(`{"data":{"text":"hi"}}`))
	f.Add([]byte(`{"data":1,"from":"ops","id":"x"}`))
	f.Add([]byte(`{"data":null}`))
	f.Add([]byte(`{"data":1}{"data":2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeAPIMessage(body)
		if err != nil {
			return
		}
		if m.Data == nil || m.From == "" || len(m.ID) > 64 || !json.Valid(m.Data) {
			t.Fatalf("accepted %q as %+v", body, m)
		}
	})
}

// startAuthServer serves /ws with token auth of the given leeway, on a hub
// with the memory broker, and returns the base URL: run has the fixed 30 s
// leeway, too long to wait for in a test.
func startAuthServer(t *testing.T, leeway time.Duration) string {
	t.Helper()
	broker := memorybroker.New(memorybroker.Config{})
	h := hub.New(broker, memorybroker.NewPresence(broker), hub.Config{})
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	auth := tokenAuth{secret: []byte(testSecret), leeway: leeway}
	ws := clients.NewServer(h, clients.Config{Authenticate: auth.identify, Refresh: auth.verify})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", ws)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close(ctx, protocol.CloseGoingAway, "test over")
		srv.Close()
		broker.Close(ctx)
	})
	return srv.URL
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	const leeway = 3 * time.Second
	base := startAuthServer(t, leeway)
	token := func(user string, exp time.Time, rooms ...string) string {
		c := jwt.MapClaims{"sub": user, "exp": exp.Unix()}
		if rooms != nil {
			c["rooms"] = rooms
		}
		return sign(t, testSecret, c)
	}

	// Not refreshed: a token a second past its exp, within the leeway, gets
	// its welcome and works, and is closed with 4001 once exp + leeway passes.
	exp := time.Now().Add(-time.Second)
	c := dial(t, base, "?token="+token("alice", exp), nil)
	if m, err := c.read(); err != nil || m["type"] != "welcome" {
		t.Fatalf("first frame = %v, %v; want welcome", m, err)
	}
	c.send(`{"type":"join","room":"lobby","id":1}`)
	c.expect("joined")
	if got := c.closeStatus(); got != 4001 {
		t.Fatalf("expired session closed with %v, want 4001", got)
	}
	if deadline := time.Unix(exp.Unix(), 0).Add(leeway - 50*time.Millisecond); time.Now().Before(deadline) {
		t.Fatalf("closed before exp + leeway (%v)", deadline)
	}

	// Refreshed in time: stays open past the first expiry.
	exp = time.Now().Add(time.Second)
	r := dial(t, base, "?token="+token("bob", exp, "team-*"), nil)
	r.expect("welcome")
	r.send(`{"type":"refresh","token":"` + token("mallory", time.Now().Add(time.Hour)) + `","id":1}`)
	if e := r.expect("error"); e["code"] != "forbidden" {
		t.Fatalf("refresh with another user's token = %v", e)
	}
	r.send(`{"type":"refresh","token":"garbage","id":2}`)
	if e := r.expect("error"); e["code"] != "unauthorized" {
		t.Fatalf("refresh with garbage = %v", e)
	}
	r.send(`{"type":"refresh","token":"` + token("bob", time.Now().Add(time.Hour), "lobby") + `","id":3}`)
	if ok := r.expect("refreshed"); ok["id"] != 3.0 || ok["exp"] == nil {
		t.Fatalf("refreshed = %v", ok)
	}
	time.Sleep(time.Until(exp.Add(leeway)) + 500*time.Millisecond)
	r.send(`{"type":"join","room":"lobby","id":4}`)
	r.expect("joined") // the new token's rooms apply
	r.send(`{"type":"history","room":"team-x","id":5}`)
	if e := r.expect("error"); e["code"] != "forbidden" {
		t.Fatalf("history outside the refreshed rooms = %v", e)
	}
}

func TestConnectionLimits(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_MAX_CONNECTIONS_PER_IP": "2"})
	a := dial(t, base, "?name=a", nil)
	a.expect("welcome")
	b := dial(t, base, "?name=b", nil)
	b.expect("welcome")
	_, err := dialErr(t, base, "?name=c", nil)
	var de *dialError
	if !errors.As(err, &de) || de.status != 429 {
		t.Fatalf("third connection from one IP: %v, want 429", err)
	}
	a.c.Close(1000, "")
	eventually(t, 5*time.Second, func() error {
		c, err := dialErr(t, base, "?name=c", nil)
		if err != nil {
			return err
		}
		c.expect("welcome")
		return nil
	})

	full, _ := startRun(t, map[string]string{"SWITCHBOARD_MAX_CONNECTIONS": "1"})
	dial(t, full, "?name=a", nil).expect("welcome")
	if _, err := dialErr(t, full, "?name=b", nil); !errors.As(err, &de) || de.status != 503 {
		t.Fatalf("connection over the node's limit: %v, want 503", err)
	}
}

// TestAPIIdempotencyScoped: an API id makes a retry of the same request
// safe, but must not swallow a different request that reuses it: another
// room, another endpoint, another recipient or another sender.
func TestAPIIdempotencyScoped(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	alice := dial(t, base, "?name=alice", nil)
	alice.send(`{"type":"join","room":"alpha"}`)
	alice.expect("joined")
	alice.send(`{"type":"join","room":"beta"}`)
	alice.expect("joined")
	bob := dial(t, base, "?name=bob", nil)
	bob.expect("welcome")

	publish := func(room, body string, wantSeq float64) {
		t.Helper()
		code, resp := api(t, "POST", base+"/api/rooms/"+room+"/messages", testKey, body)
		if code != 200 || resp["seq"] != wantSeq {
			t.Fatalf("publish %s to %s: %d %v, want seq %v", body, room, code, resp, wantSeq)
		}
	}
	publish("beta", `{"data":"first"}`, 1)
	if m := alice.expect("message"); m["room"] != "beta" || m["data"] != "first" {
		t.Fatalf("alice got %v", m)
	}
	publish("alpha", `{"data":"to alpha","id":"x"}`, 1)
	if m := alice.expect("message"); m["room"] != "alpha" || m["data"] != "to alpha" {
		t.Fatalf("alice got %v", m)
	}
	publish("beta", `{"data":"to beta","id":"x"}`, 2)
	if m := alice.expect("message"); m["room"] != "beta" || m["data"] != "to beta" || m["seq"] != 2.0 {
		t.Fatalf("the same id for another room: alice got %v, want beta's message", m)
	}
	publish("beta", `{"data":"from ops","from":"ops","id":"x"}`, 3)
	if m := alice.expect("message"); m["from"] != "ops" || m["seq"] != 3.0 {
		t.Fatalf("the same id from another sender: alice got %v", m)
	}
	publish("beta", `{"data":"to beta","id":"x"}`, 2) // a true retry still answers like the first

	dm := func(user string, c *wsClient) {
		t.Helper()
		if code, resp := api(t, "POST", base+"/api/users/"+user+"/messages", testKey, `{"data":"dm `+user+`","id":"x"}`); code != 200 || resp["delivered"] != true {
			t.Fatalf("dm %s: %d %v", user, code, resp)
		}
		if m := c.expect("dm"); m["data"] != "dm "+user {
			t.Fatalf("the same id for a DM to %s: got %v", user, m)
		}
	}
	dm("alice", alice)
	dm("bob", bob)
	if code, resp := api(t, "POST", base+"/api/users/bob/messages", testKey, `{"data":"dm bob","id":"x"}`); code != 200 || resp["delivered"] != true {
		t.Fatalf("dm retry: %d %v", code, resp)
	}
	if code, resp := api(t, "POST", base+"/api/users/bob/messages", testKey, `{"data":"next","id":"y"}`); code != 200 || resp["delivered"] != true {
		t.Fatalf("dm y: %d %v", code, resp)
	}
	if m := bob.expect("dm"); m["data"] != "next" {
		t.Fatalf("a retried DM was delivered again: bob got %v before the next DM", m)
	}
}

// TestAPIErrorsHideInternals: a malformed body is answered in the API's
// terms, without Go type names from the decoder.
func TestAPIErrorsHideInternals(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	for body, want := range map[string]string{
		`{"data":1,"from":5}`: `"from"`,
		`{"data":1,"id":{}}`:  `"id"`,
		`[]`:                  "JSON object",
		`xx`:                  "byte 1",
		`{"data":`:            "ends early",
		`{"text":1}`:          `unknown field "text"`,
	} {
		code, resp := api(t, "POST", base+"/api/rooms/lobby/messages", testKey, body)
		e, _ := resp["error"].(map[string]any)
		msg, _ := e["message"].(string)
		if code != 400 || e["code"] != "bad_json" || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %v, want 400 bad_json mentioning %s", body, code, resp, want)
		}
		for _, internal := range []string{"Go ", "apiMessage", "main.", "json:"} {
			if strings.Contains(msg, internal) {
				t.Errorf("%s: message %q shows %q", body, msg, internal)
			}
		}
	}
}
