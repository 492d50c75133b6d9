package main

import (
	"slices"
	"testing"
)

// TestPresencePaging: the presence frame and the API's presence endpoint
// page through a room's members with after and limit, with the count and
// members_next; joined and member events carry the count.
func TestPresencePaging(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	var ann *wsClient
	for i, user := range []string{"cat", "ann", "bob"} {
		c := dial(t, base, "?name="+user, nil)
		c.send(`{"type":"join","room":"r","id":"j"}`)
		if j := c.expectAnswer("j"); j["member_count"] != float64(i+1) || j["members_next"] != nil {
			t.Fatalf("%s joined %v", user, j)
		}
		if user == "ann" {
			ann = c
		}
	}
	if ev := ann.expect("member_joined"); ev["user"] != "bob" || ev["member_count"] != 3.0 {
		t.Fatalf("ann got %v, want bob's member_joined with member_count 3", ev)
	}

	pages := []struct {
		frame, query string
		members      []string
		next         any
	}{
		{`{"type":"presence","room":"r","id":"p"}`, "", []string{"ann", "bob", "cat"}, nil},
		{`{"type":"presence","room":"r","limit":2,"id":"p"}`, "?limit=2", []string{"ann", "bob"}, "bob"},
		{`{"type":"presence","room":"r","after":"bob","limit":2,"id":"p"}`, "?after=bob&limit=2", []string{"cat"}, nil},
		{`{"type":"presence","room":"r","after":"b","limit":1,"id":"p"}`, "?after=b&limit=1", []string{"bob"}, "bob"},
		{`{"type":"presence","room":"r","after":"cat","id":"p"}`, "?after=cat", []string{}, nil},
	}
	for _, p := range pages {
		ann.send(p.frame)
		got := ann.expectAnswer("p")
		if !slices.Equal(members(got), p.members) || got["member_count"] != 3.0 || got["members_next"] != p.next {
			t.Errorf("%s answered %v, want %q with members_next %v", p.frame, got, p.members, p.next)
		}
		code, body := api(t, "GET", base+"/api/rooms/r/presence"+p.query, testKey, "")
		if code != 200 || !slices.Equal(members(body), p.members) || body["member_count"] != 3.0 || body["members_next"] != p.next {
			t.Errorf("GET presence%s: %d %v, want %q with members_next %v", p.query, code, body, p.members, p.next)
		}
	}

	for _, frame := range []string{
		`{"type":"presence","room":"r","limit":0,"id":"p"}`,
		`{"type":"presence","room":"r","limit":1001,"id":"p"}`,
		`{"type":"presence","room":"r","after":"no one","id":"p"}`,
	} {
		ann.send(frame)
		if got := ann.expectAnswer("p"); got["type"] != "error" || got["code"] != "bad_request" {
			t.Errorf("%s answered %v, want bad_request", frame, got)
		}
	}
	for _, query := range []string{"?limit=0", "?limit=1001", "?limit=x", "?after=no%20one"} {
		if code, body := api(t, "GET", base+"/api/rooms/r/presence"+query, testKey, ""); code != 400 || errorCode(body) != "bad_request" {
			t.Errorf("GET presence%s: %d %v, want 400 bad_request", query, code, body)
		}
	}
}
