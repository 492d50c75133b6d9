package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// answer sends frame and returns the answer to its id: ack or error.
func (c *wsClient) answer(id, frame string) map[string]any {
	c.t.Helper()
	c.send(frame)
	return c.expectAnswer(id)
}

// wantAck fails the test unless m is an ack with seq.
func wantAck(t *testing.T, what string, m map[string]any, seq uint64) {
	t.Helper()
	if m["type"] != "ack" || seqOf(m) != seq || m["epoch"] == nil {
		t.Fatalf("%s answered %v, want ack of seq %d with its epoch", what, m, seq)
	}
}

// wantError fails the test unless m is an error with code.
func wantError(t *testing.T, what string, m map[string]any, code string) {
	t.Helper()
	if m["type"] != "error" || m["code"] != code {
		t.Fatalf("%s answered %v, want error %s", what, m, code)
	}
}

// wantChange fails the test unless m is a change (message_edited or
// message_deleted) of target with seq, by from.
func wantChange(t *testing.T, m map[string]any, typ string, seq, target uint64, from string) {
	t.Helper()
	if m["type"] != typ || seqOf(m) != seq || m["target"] != float64(target) || m["from"] != from {
		t.Fatalf("got %v, want %s #%d of %d by %s", m, typ, seq, target, from)
	}
}

// TestEditDelete: over real WebSockets, the sender edits and deletes its
// message, the room sees each change, others are refused, ids make the
// changes idempotent and history carries them in order.
func TestEditDelete(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, nil)
	alice := dial(t, base, "?name=alice", nil)
	bob := dial(t, base, "?name=bob", nil)
	alice.join("lobby")
	bob.join("lobby")
	wantAck(t, "send", alice.answer("s1", `{"type":"send","room":"lobby","data":"helo","id":"s1"}`), 1)
	bob.next("message")

	wantError(t, "bob's edit", bob.answer("b1", `{"type":"edit","room":"lobby","seq":1,"data":"mine","id":"b1"}`), "forbidden")
	wantError(t, "bob's delete", bob.answer("b2", `{"type":"delete","room":"lobby","seq":1,"id":"b2"}`), "forbidden")
	wantError(t, "edit of a future seq", alice.answer("e0", `{"type":"edit","room":"lobby","seq":9,"data":"x","id":"e0"}`), "not_found")
	wantError(t, "edit in a room not joined", alice.answer("e9", `{"type":"edit","room":"other","seq":1,"data":"x","id":"e9"}`), "not_member")
	wantError(t, "edit without seq", alice.answer("e8", `{"type":"edit","room":"lobby","data":"x","id":"e8"}`), "bad_request")

	wantAck(t, "edit", alice.answer("e1", `{"type":"edit","room":"lobby","seq":1,"data":"hello","id":"e1"}`), 2)
	m := bob.next("message_edited")
	wantChange(t, m, "message_edited", 2, 1, "alice")
	if m["data"] != "hello" || m["ts"] == nil {
		t.Fatalf("bob got %v, want the edit's data and ts", m)
	}
	wantAck(t, "edit retried", alice.answer("e1", `{"type":"edit","room":"lobby","seq":1,"data":"hello","id":"e1"}`), 2)
	wantError(t, "edit of an edit", alice.answer("e2", `{"type":"edit","room":"lobby","seq":2,"data":"x","id":"e2"}`), "not_found")

	wantAck(t, "delete", alice.answer("d1", `{"type":"delete","room":"lobby","seq":1,"id":"d1"}`), 3)
	wantChange(t, bob.next("message_deleted"), "message_deleted", 3, 1, "alice")
	wantAck(t, "delete retried", alice.answer("d1", `{"type":"delete","room":"lobby","seq":1,"id":"d1"}`), 3)
	wantError(t, "delete again", alice.answer("d2", `{"type":"delete","room":"lobby","seq":1,"id":"d2"}`), "not_found")
	wantError(t, "edit of a deleted message", alice.answer("e3", `{"type":"edit","room":"lobby","seq":1,"data":"x","id":"e3"}`), "not_found")

	h := bob.answer("h", `{"type":"history","room":"lobby","id":"h"}`)
	msgs, _ := h["messages"].([]any)
	var got []string
	for _, x := range msgs {
		f := x.(map[string]any)
		got = append(got, fmt.Sprintf("%v#%v", f["type"], f["seq"]))
	}
	if want := "[message#1 message_edited#2 message_deleted#3]"; fmt.Sprint(got) != want {
		t.Errorf("history %v, want %s", got, want)
	}
}

// TestAPIEditDelete: the server API edits and deletes any message, as
// system or as the from it names, idempotently with an id.
func TestAPIEditDelete(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	bob := dial(t, base, "?name=bob", nil)
	bob.join("lobby")
	wantAck(t, "send", bob.answer("s1", `{"type":"send","room":"lobby","data":"spam","id":"s1"}`), 1)

	url := base + "/api/rooms/lobby/messages/1"
	code, body := api(t, "PATCH", url, testKey, `{"data":"[removed]","id":"p1"}`)
	if code != 200 || body["seq"] != 2.0 || body["epoch"] == nil {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	wantChange(t, bob.next("message_edited"), "message_edited", 2, 1, "system")
	if code, body = api(t, "PATCH", url, testKey, `{"data":"[removed]","id":"p1"}`); code != 200 || body["seq"] != 2.0 {
		t.Fatalf("PATCH retried: %d %v", code, body)
	}
	for _, q := range []string{"?from=mod&id=x1", "?from=mod&id=x1"} {
		if code, body = api(t, "DELETE", url+q, testKey, ""); code != 200 || body["seq"] != 3.0 {
			t.Fatalf("DELETE%s: %d %v", q, code, body)
		}
	}
	wantChange(t, bob.next("message_deleted"), "message_deleted", 3, 1, "mod")
	for _, tt := range []struct {
		method, url, body string
		code              int
		errCode           string
	}{
		{"DELETE", url, "", 404, "not_found"},
		{"PATCH", url, `{"data":1}`, 404, "not_found"},
		{"PATCH", base + "/api/rooms/lobby/messages/2", `{"data":1}`, 404, "not_found"},
		{"DELETE", base + "/api/rooms/empty/messages/1", "", 404, "not_found"},
		{"DELETE", base + "/api/rooms/lobby/messages/0", "", 400, "bad_request"},
		{"DELETE", base + "/api/rooms/lobby/messages/x", "", 400, "bad_request"},
		{"DELETE", url + "?from=a%20b", "", 400, "bad_request"},
		{"PATCH", base + "/api/rooms/lobby/messages/1", `{}`, 400, "bad_request"},
	} {
		if code, body := api(t, tt.method, tt.url, testKey, tt.body); code != tt.code || errorCode(body) != tt.errCode {
			t.Errorf("%s %s %s: %d %v, want %d %s", tt.method, tt.url, tt.body, code, body, tt.code, tt.errCode)
		}
	}
}

// TestClusterEditRecovery: alice, away while bob on another node sends,
// edits and deletes, rejoins on that node with since and gets every change
// once, in order, then the live ones.
func TestClusterEditRecovery(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	nodes := startCluster(t, redis.URL(), 2, nil)
	alice := dial(t, nodes[0], "?name=alice", nil)
	j := alice.join("lobby")
	epoch, since := j["epoch"].(string), seqOf(j)
	alice.c.CloseNow()

	bob := dial(t, nodes[1], "?name=bob", nil)
	bob.join("lobby")
	wantAck(t, "send", bob.answer("s1", `{"type":"send","room":"lobby","data":"helo","id":"s1"}`), since+1)
	wantAck(t, "edit", bob.answer("e1", fmt.Sprintf(`{"type":"edit","room":"lobby","seq":%d,"data":"hello","id":"e1"}`, since+1)), since+2)
	wantAck(t, "delete", bob.answer("d1", fmt.Sprintf(`{"type":"delete","room":"lobby","seq":%d,"id":"d1"}`, since+1)), since+3)

	again := dial(t, nodes[1], "?name=alice", nil)
	again.send(joinSince("lobby", since, epoch))
	if j := again.next("joined"); j["recovered"] != true || seqOf(j) != since+3 {
		t.Fatalf("rejoin answered %v, want recovered at seq %d", j, since+3)
	}
	if m := again.next("message", "message_edited", "message_deleted"); m["type"] != "message" || seqOf(m) != since+1 {
		t.Fatalf("first replayed %v, want message %d", m, since+1)
	}
	wantChange(t, again.next("message", "message_edited", "message_deleted"), "message_edited", since+2, since+1, "bob")
	wantChange(t, again.next("message", "message_edited", "message_deleted"), "message_deleted", since+3, since+1, "bob")
	wantAck(t, "live send", bob.answer("s2", `{"type":"send","room":"lobby","data":"again","id":"s2"}`), since+4)
	wantAck(t, "live edit", bob.answer("e2", fmt.Sprintf(`{"type":"edit","room":"lobby","seq":%d,"data":"again!","id":"e2"}`, since+4)), since+5)
	if m := again.next("message", "message_edited", "message_deleted"); m["type"] != "message" || seqOf(m) != since+4 {
		t.Fatalf("live %v, want message %d", m, since+4)
	}
	wantChange(t, again.next("message", "message_edited", "message_deleted"), "message_edited", since+5, since+4, "bob")
	if m, err := again.readType("message_edited", 300*time.Millisecond); err == nil {
		t.Fatalf("a change came twice: %v", m)
	}
}
