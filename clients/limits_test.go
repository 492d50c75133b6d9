package clients_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/clients"
)

// smallBuffers gives the server's side of every connection a small kernel
// send buffer, so that a client that does not read blocks the server's
// writes once its own receive buffer (128 KiB by default on Linux) is full,
// rather than after the megabytes a send buffer may grow to. (A small
// receive buffer on the client would be worse than none: on loopback's
// 64 KiB segments its window updates are never large enough to be sent, so
// the server resumes only on zero-window probes, seconds apart.)
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

func withSmallBuffers(l net.Listener) net.Listener { return smallBuffers{l} }

// flood has fast send n messages of about 16 KiB to room r, one at a time,
// and checks that it gets each one and its ack: a fast reader misses
// nothing while another member of the room is too slow.
func flood(t testing.TB, fast *client, n int) {
	t.Helper()
	data := strings.Repeat("x", 16<<10)
	for i := 1; i <= n; i++ {
		fast.send(fmt.Sprintf(`{"type":"send","room":"r","data":%q,"id":%d}`, data, i))
		fast.expectAnyOrder(
			fmt.Sprintf(`{"type":"message","room":"r","seq":%d,"from":"fast","data":%q,"ts":"TS"}`, i, data),
			fmt.Sprintf(`{"type":"ack","id":%d,"seq":%d,"epoch":"E"}`, i, i),
		)
	}
}

// joinSlowThenFast joins a client that does not read yet and then a fast
// one to room r.
func joinSlowThenFast(t testing.TB, srv *server) (slow, fast *client) {
	t.Helper()
	slow = srv.dialWith("slow", nil)
	slow.send(`{"type":"join","room":"r"}`)
	deadline := time.Now().Add(timeout)
	for {
		members, err := srv.hub.Members(context.Background(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if len(members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow client did not join")
		}
		time.Sleep(time.Millisecond)
	}
	fast = srv.dial("fast")
	fast.send(`{"type":"join","room":"r"}`)
	fast.expect(`{"type":"joined","room":"r","members":["fast","slow"],"member_count":2,"seq":0,"epoch":"E"}`)
	return slow, fast
}

// TestSlowReader checks that a client reading slower than the room is fed
// is closed with 1013 once its queue overflows, without slowing the others:
// a fast reader in the same room gets every message. The slow client reads
// only when the fast one is done, long after its queue overflowed; it then
// gets the frames that were in flight, in order, and the close.
func TestSlowReader(t *testing.T) {
	t.Parallel()
	// 1 MiB: several times what the socket buffers and the queue hold. The
	// client must start reading within 5s of the overflow: the close frame
	// is written after the write in flight, and its own write times out
	// after 5s (a fixed timeout of the WebSocket library).
	const n = 64
	srv := newServer(t, clients.Config{QueueBytes: 64 << 10, WriteTimeout: timeout},
		options{listener: withSmallBuffers})
	slow, fast := joinSlowThenFast(t, srv)
	flood(t, fast, n)

	code, frames := slow.closeStatus()
	if code != websocket.StatusTryAgainLater {
		t.Errorf("slow client: close status %v, want 1013", code)
	}
	want := []string{"welcome", "joined", "member_joined"}
	for i, f := range frames {
		m := decode(t, f)
		if i < len(want) {
			if m["type"] != want[i] {
				t.Fatalf("slow client: frame %d is %v, want %s", i, m, want[i])
			}
			continue
		}
		if m["type"] != "message" || fmt.Sprint(m["seq"]) != fmt.Sprint(i-len(want)+1) {
			t.Fatalf("slow client: frame %d is %s %v, want message %d", i, m["type"], m["seq"], i-len(want)+1)
		}
	}
	if got := len(frames) - len(want); got >= n {
		t.Errorf("slow client got all %d messages: the test did not overflow its queue", got)
	}
	fast.expect(`{"type":"member_left","room":"r","user":"slow","member_count":1}`)
	fast.quiet()
	srv.waitDisconnects(clients.DisconnectQueueOverflow, 1)
}

// TestStuckReader checks that a client that never reads is dropped once a
// write to it times out, and that the room hears it left, while a fast
// reader gets every message.
func TestStuckReader(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{QueueBytes: 64 << 10, WriteTimeout: 500 * time.Millisecond},
		options{listener: withSmallBuffers})
	stuck, fast := joinSlowThenFast(t, srv)
	data := strings.Repeat("x", 16<<10)
	left := false
	for i := 1; !left; i++ {
		if i > 10000 {
			t.Fatal("the stuck client is still in the room")
		}
		fast.send(fmt.Sprintf(`{"type":"send","room":"r","data":%q,"id":%d}`, data, i))
		// The message and its ack come in either order.
		for got, acked, seen := "", false, false; !acked || !seen; {
			m := decode(t, fast.next())
			got = fmt.Sprint(m["type"])
			acked = acked || got == "ack"
			seen = seen || got == "message"
			switch {
			case got == "member_left" && m["user"] == "slow":
				left = true
			case got == "message" && fmt.Sprint(m["seq"]) != fmt.Sprint(i):
				t.Fatalf("message %v, want %d", m["seq"], i)
			case got != "message" && got != "ack" && got != "member_left":
				t.Fatalf("unexpected %s", clip(fmt.Sprint(m)))
			}
		}
	}
	fast.quiet()
	code, _ := stuck.closeStatus()
	t.Logf("the stuck client, reading at last, sees close status %v", code)
}

func TestFrameTooBig(t *testing.T) {
	t.Parallel()
	const max = 1024
	srv := newServer(t, clients.Config{MaxFrame: max}, options{})
	c := srv.dial("alice")
	frame := func(size int) string { // a ping of size bytes
		const empty = `{"type":"ping","id":1,"pad":""}`
		return empty[:len(empty)-2] + strings.Repeat("x", size-len(empty)) + `"}`
	}
	if f := frame(max); len(f) != max {
		t.Fatalf("frame of %d bytes, want %d", len(f), max)
	}
	c.send(frame(max))
	c.expect(`{"type":"pong","id":1}`)

	c.send(frame(max + 1))
	if code, frames := c.closeStatus(); code != websocket.StatusMessageTooBig || len(frames) != 0 {
		t.Errorf("close status %v after %d frames, want 1009 and none", code, len(frames))
	}
}

func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	c := srv.dial("alice")
	c.send("{\"type\":\"ping\",\"id\":\"\xff\"}") // the client library does not check
	if code, frames := c.closeStatus(); code != websocket.StatusInvalidFramePayloadData || len(frames) != 0 {
		t.Errorf("close status %v after %d frames, want 1007 and none", code, len(frames))
	}
}

func TestBinaryFrame(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	c := srv.dial("alice")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if code, frames := c.closeStatus(); code != websocket.StatusUnsupportedData || len(frames) != 0 {
		t.Errorf("close status %v after %d frames, want 1003 and none", code, len(frames))
	}
}

// TestHistoryFitsQueue checks that asking for history never gets a client
// closed as too slow: when the messages asked for are more than its queue
// takes, the answer has the newest that fit, and the client pages back with
// before, getting every message once.
func TestHistoryFitsQueue(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, char string }{
		{"plain", "x"},
		{"html", "<"}, // sent as is, one byte each (it once grew to six: \u003c)
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, clients.Config{QueueBytes: 64 << 10}, options{})
			bob := srv.dial("bob")
			bob.send(`{"type":"join","room":"r"}`)
			bob.next()
			data := strings.Repeat(tt.char, 8<<10)
			const n = 10 // 80 KiB of data, more than the queue
			for range n {
				bob.send(fmt.Sprintf(`{"type":"send","room":"r","data":%q}`, data))
				bob.next()
			}

			alice := srv.dial("alice")
			next, pages := uint64(n), 0 // the seq the next page must end with
			for before := uint64(0); next > 0; pages++ {
				if pages > n {
					t.Fatalf("still paging after %d pages", pages)
				}
				alice.send(fmt.Sprintf(`{"type":"history","room":"r","limit":100,"before":%d}`, before))
				var page struct{ Messages []struct{ Seq uint64 } }
				if err := json.Unmarshal(alice.next(), &page); err != nil {
					t.Fatal(err)
				}
				if len(page.Messages) == 0 {
					t.Fatalf("empty page before %d", before)
				}
				for i := len(page.Messages) - 1; i >= 0; i-- {
					if got := page.Messages[i].Seq; got != next {
						t.Fatalf("page %d has message %d, want %d", pages, got, next)
					}
					next--
				}
				before = page.Messages[0].Seq
			}
			if pages < 2 {
				t.Errorf("%d pages: the test did not exceed the queue", pages)
			}
			alice.quiet()
		})
	}
}

// TestWithinLimitsNoOverflow checks that traffic the rate limits let through
// cannot overflow a healthy recipient's queue: a sender sends 64 KiB DMs and
// room messages full of < > & as fast as the server takes them, at the
// limits the server runs with by default (20 frames/s, 256 KiB/s), and the
// recipient, reading steadily at 1 MiB/s (an 8 Mbit/s link, four times the
// byte limit) over small socket buffers, gets every one and is never closed
// as too slow. (Once, 8 such DMs in a burst closed the recipient with 1013:
// the frame limit let them all through, and each grew sixfold as < became
// \u003c.)
//
// The sender sends everything not yet acknowledged at once, learns from the
// acks what got through, and pauses over a second before the next round,
// as the limiter asks of a client it should not close for abuse.
func TestWithinLimitsNoOverflow(t *testing.T) {
	t.Parallel()
	const dms, sends = 8, 4
	srv := newServer(t, clients.Config{RateLimit: 20, RateLimitBytes: 256 << 10},
		options{listener: withSmallBuffers})
	bob, alice := srv.pair()
	bob.expect(`{"type":"member_joined","room":"r","user":"alice","member_count":2}`)
	received, sender := collectAt(bob, 1<<20), collect(alice)

	data := strings.Repeat("<>&", 21600) // a frame of just under 64 KiB
	var ids []string
	pending := make(map[string]string) // id → frame not yet acknowledged
	for i := range dms {
		id := fmt.Sprintf("dm-%d", i)
		ids, pending[id] = append(ids, id), fmt.Sprintf(`{"type":"dm","to":"bob","id":%q,"data":%q}`, id, data)
	}
	for i := range sends {
		id := fmt.Sprintf("send-%d", i)
		ids, pending[id] = append(ids, id), fmt.Sprintf(`{"type":"send","room":"r","id":%q,"data":%q}`, id, data)
	}
	if n := len(pending["dm-0"]); n > 64<<10 {
		t.Fatalf("frame of %d bytes, more than the 64 KiB limit", n)
	}
	for round := 0; len(pending) > 0; round++ {
		if round > 4*len(ids) {
			t.Fatalf("%d frames still unacknowledged after %d rounds", len(pending), round)
		}
		if round > 0 {
			time.Sleep(1100 * time.Millisecond)
		}
		for _, id := range ids {
			if f, ok := pending[id]; ok {
				alice.send(f)
			}
		}
		for _, f := range sender.sync() {
			if id, _ := f["id"].(string); f["type"] == "ack" {
				delete(pending, id)
			}
		}
	}

	count := func(frames []map[string]any) (dm, msg int) {
		for _, f := range frames {
			switch {
			case f["type"] == "dm" && f["data"] == data:
				dm++
			case f["type"] == "message" && f["data"] == data:
				msg++
			}
		}
		return dm, msg
	}
	received.until(func(frames []map[string]any) bool {
		dm, msg := count(frames)
		return dm >= dms && msg >= sends
	})
	if dm, msg := count(received.sync()); dm != dms || msg != sends {
		t.Errorf("bob got %d DMs and %d messages, want %d and %d, once each", dm, msg, dms, sends)
	}
}
