package clients_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
)

// TestErrorCodes reaches every error code a client can cause, each time
// checking that the error echoes the id and the connection stays usable.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{
		Authenticate: func(r *http.Request) (clients.Identity, error) {
			id, err := clients.Anonymous(r)
			id.CanJoin = func(room string) bool { return room != "secret" }
			id.CanDM = func(user string) bool { return user != "boss" }
			return id, err
		},
	}, options{hub: hub.Config{MaxRoomsPerSession: 2}})
	c := srv.dial("alice")
	tests := []struct {
		name, frame, want string
	}{
		{"not json", `{"type":`, `{"type":"error","code":"bad_json","message":"M"}`},
		{"not an object", `[1]`, `{"type":"error","code":"bad_json","message":"M"}`},
		{"null", `null`, `{"type":"error","code":"bad_json","message":"M"}`},
		{"no type", `{"id":"a"}`, `{"type":"error","id":"a","code":"bad_request","message":"M"}`},
		{"wrong field type", `{"type":"join","room":5,"id":"b"}`, `{"type":"error","id":"b","code":"bad_request","message":"M"}`},
		{"bad room", `{"type":"join","room":"a b","id":3}`, `{"type":"error","id":3,"code":"bad_request","message":"M"}`},
		{"send without data", `{"type":"send","room":"r","id":4}`, `{"type":"error","id":4,"code":"bad_request","message":"M"}`},
		{"refresh without auth", `{"type":"refresh","token":"t","id":5}`, `{"type":"error","id":5,"code":"bad_request","message":"M"}`},
		{"invalid id", `{"type":"ping","id":{}}`, `{"type":"error","code":"bad_request","message":"M"}`},
		{"unknown type", `{"type":"nope","id":"c"}`, `{"type":"error","id":"c","code":"unknown_type","message":"M"}`},
		{"server frame type", `{"type":"message","id":"d"}`, `{"type":"error","id":"d","code":"unknown_type","message":"M"}`},
		{"send not joined", `{"type":"send","room":"r","data":1,"id":"e"}`, `{"type":"error","id":"e","code":"not_member","message":"M"}`},
		{"leave not joined", `{"type":"leave","room":"r","id":"f"}`, `{"type":"error","id":"f","code":"not_member","message":"M"}`},
		{"typing not joined", `{"type":"typing","room":"r","id":"g"}`, `{"type":"error","id":"g","code":"not_member","message":"M"}`},
		{"dm offline", `{"type":"dm","to":"nobody","data":1,"id":"h"}`, `{"type":"error","id":"h","code":"offline","message":"M"}`},
		{"forbidden room", `{"type":"join","room":"secret","id":"i"}`, `{"type":"error","id":"i","code":"forbidden","message":"M"}`},
		{"forbidden dm", `{"type":"dm","to":"boss","data":1,"id":"k"}`, `{"type":"error","id":"k","code":"forbidden","message":"M"}`},
	}
	for _, tt := range tests {
		c.send(tt.frame)
		got := c.next()
		if g, w := norm(t, got), norm(t, []byte(tt.want)); g != w {
			t.Errorf("%s: %s\n got %s\nwant %s", tt.name, tt.frame, g, w)
		}
		if m := decode(t, got); m["type"] == "error" && m["message"] == "" {
			t.Errorf("%s: error without a message", tt.name)
		}
	}

	// The room limit.
	for _, room := range []string{"a", "b"} {
		c.send(`{"type":"join","room":"` + room + `"}`)
		c.next()
	}
	c.send(`{"type":"join","room":"c","id":"j"}`)
	c.expect(`{"type":"error","id":"j","code":"too_many","message":"M"}`)

	c.quiet() // still connected
}

// TestRateLimited checks that frames over the rate limit are dropped with
// one rate_limited error, echoing the id of the frame that drew it, at most
// one a second, and that the connection stays open.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	const rate, sent = 20, 400 // burst 40; 400 frames take the server 18s to earn
	srv := newServer(t, clients.Config{RateLimit: rate}, options{})
	c := srv.dial("alice")

	// A reader goroutine, so that the test can go on sending while nothing
	// comes back: a dropped frame gets no answer.
	frames := make(chan []byte)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(frames)
		for {
			f, err := c.read()
			if err != nil {
				return
			}
			select {
			case frames <- f:
			case <-done:
				return
			}
		}
	}()

	start := time.Now()
	for i := range sent {
		c.send(fmt.Sprintf(`{"type":"ping","id":%d}`, i))
	}
	// Then, until one is answered with a pong, a ping now and then: the
	// bucket refills, and the connection must still be open.
	marker := time.NewTicker(time.Second / rate * 4)
	defer marker.Stop()
	failed := time.After(timeout)
	pongs, errs, markers := 0, 0, 0
	answered := make(map[string]bool)
	for ended := false; !ended; {
		select {
		case <-marker.C:
			markers++
			c.send(fmt.Sprintf(`{"type":"ping","id":"end-%d"}`, markers))
			continue
		case <-failed:
			t.Fatalf("no pong after the flood: %d pongs, %d errors", pongs, errs)
		case f, ok := <-frames:
			if !ok {
				t.Fatal("connection closed")
			}
			m := decode(t, f)
			id := fmt.Sprint(m["id"])
			if answered[id] {
				t.Errorf("frame %s answered twice", id)
			}
			answered[id] = true
			switch {
			case m["type"] == "error":
				errs++
				if m["code"] != "rate_limited" || m["id"] == nil {
					t.Errorf("error %v, want rate_limited with the id of the dropped frame", m)
				}
			case m["type"] == "pong" && strings.HasPrefix(id, "end-"):
				ended = true
			case m["type"] == "pong":
				pongs++
			default:
				t.Errorf("unexpected %v", m)
			}
		}
	}
	elapsed := time.Since(start)
	if pongs < 2*rate || pongs >= sent {
		t.Errorf("%d pongs to %d pings, want the burst of %d and then some dropped", pongs, sent, 2*rate)
	}
	if max := int(elapsed/time.Second) + 1; errs < 1 || errs > max {
		t.Errorf("%d rate_limited errors in %v, want 1 to %d", errs, elapsed, max)
	}
}

// TestByteRateLimited checks that a frame over the byte budget is dropped
// with a rate_limited error that echoes its id, though the frame limit
// would let it through, and that the connection stays open.
func TestByteRateLimited(t *testing.T) {
	t.Parallel()
	const max = 1024 // a bucket of one max frame, refilled at 1 KiB/s
	srv := newServer(t, clients.Config{MaxFrame: max, RateLimit: 100, RateLimitBytes: max}, options{})
	c := srv.dial("alice")
	ping := func(id string) string { // a ping of 700 bytes
		p := fmt.Sprintf(`{"type":"ping","id":%q,"pad":""}`, id)
		return p[:len(p)-2] + strings.Repeat("x", 700-len(p)) + `"}`
	}
	c.send(ping("first"))
	c.expect(`{"type":"pong","id":"first"}`)
	c.send(ping("second")) // 700 more bytes within a second
	c.expect(`{"type":"error","id":"second","code":"rate_limited","message":"M"}`)
	c.send(`{"type":"ping","id":"small"}`) // what is left still takes a small one
	c.expect(`{"type":"pong","id":"small"}`)
}

// TestRateLimitAbuse floods the server for longer than it tolerates: it
// answers with rate_limited errors, at most about one a second, and then
// closes the connection with 1008, not before 5s of abuse.
func TestRateLimitAbuse(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("takes over 5s")
	}
	srv := newServer(t, clients.Config{RateLimit: 10}, options{})
	c := srv.dial("alice")

	start := time.Now()
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := c.conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"ping","id":%d}`, i))
			cancel()
			if err != nil {
				return // closed
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	code, frames := c.closeStatus()
	elapsed := time.Since(start)
	<-flooding

	if code != websocket.StatusPolicyViolation {
		t.Errorf("close status %v, want 1008", code)
	}
	srv.waitDisconnects(clients.DisconnectRateLimit, 1)
	if elapsed < 5*time.Second {
		t.Errorf("closed after %v of abuse, want at least 5s", elapsed)
	}
	errs := 0
	for _, f := range frames {
		if m := decode(t, f); m["type"] == "error" {
			errs++
			if m["code"] != "rate_limited" {
				t.Errorf("unexpected error %v", m)
			}
		}
	}
	if max := int(elapsed/time.Second) + 1; errs < 5 || errs > max {
		t.Errorf("%d rate_limited errors in %v, want 5 to %d", errs, elapsed, max)
	}
}
