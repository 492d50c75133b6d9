package clients_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/protocol"
)

// readMessage reads one WebSocket message of c, unsplit.
func readMessage(t testing.TB, c *client) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, msg, err := c.conn.Read(ctx)
	if err != nil {
		t.Fatalf("%s: read: %v", c.name, err)
	}
	return msg
}

// seqs returns the seq of each message frame of a WebSocket message.
func seqs(t testing.TB, msg []byte) []string {
	t.Helper()
	var out []string
	for f := range bytes.SplitSeq(msg, []byte("\n")) {
		m := decode(t, f)
		if m["type"] != "message" {
			t.Fatalf("frame %s, want a message", clip(string(f)))
		}
		out = append(out, fmt.Sprint(m["seq"]))
	}
	return out
}

// TestIdleSessionHasNoWriter checks that an idle session is one goroutine
// (its read loop): its writer exits once the welcome is written, and the
// keepalive is the server's. Then a burst after the idle spell is
// delivered whole and in order by a writer started on demand. It is not
// parallel: it counts every goroutine of the process.
func TestIdleSessionHasNoWriter(t *testing.T) {
	const n = 20
	srv := newServer(t, clients.Config{}, options{})
	before := runtime.NumGoroutine()
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = srv.dial(fmt.Sprintf("u%d", i))
	}
	// n read loops and the server's keepalive; the clients run none.
	want := before + n + 1
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle sessions run %d goroutines, want at most %d", n, runtime.NumGoroutine()-before, want-before)
		}
		time.Sleep(10 * time.Millisecond)
	}

	c := cs[0]
	c.send(`{"type":"join","room":"r"}`)
	c.next()
	const burst = 200
	for i := range burst {
		if _, err := srv.hub.Publish(context.Background(), "r", "api", json.RawMessage(fmt.Sprint(i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= burst; i++ {
		m := decode(t, c.next())
		if m["type"] != "message" || fmt.Sprint(m["seq"]) != fmt.Sprint(i) {
			t.Fatalf("frame %d after idle is %v, want message %d", i, m, i)
		}
	}
	c.quiet()
}

// bigSend is a send of about 512 KiB to room r: more than the socket
// buffers of a test server with small buffers hold, so its write to a
// client that does not read stays in flight.
func bigSend(id int) string {
	return fmt.Sprintf(`{"type":"send","room":"r","id":%d,"data":%q}`, id, strings.Repeat("x", 512<<10))
}

// TestCoalescing checks that the frames queued while a write is in flight
// go out together in the next message, joined with '\n', and that a frame
// waiting alone goes out alone.
func TestCoalescing(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{MaxFrame: 1 << 20, QueueBytes: 4 << 20, WriteTimeout: timeout},
		options{listener: withSmallBuffers})
	bob, alice := srv.pair()
	if m := decode(t, readMessage(t, bob)); m["type"] != "member_joined" {
		t.Fatalf("bob got %v, want member_joined", m)
	}

	// Bob does not read: the big message's write to him stays in flight
	// while three small ones are queued behind it.
	alice.send(bigSend(1))
	alice.next()
	alice.next()
	for i := 2; i <= 4; i++ {
		alice.send(fmt.Sprintf(`{"type":"send","room":"r","id":%d,"data":%d}`, i, i))
		alice.next()
		alice.next() // the ack: the message is published
	}
	if got := seqs(t, readMessage(t, bob)); len(got) != 1 || got[0] != "1" {
		t.Fatalf("first message holds %v, want the big one alone", got)
	}
	// With the hub's fan-out inside Publish, all three are queued before
	// Bob reads; the check allows a fan-out that lags the ack a little.
	var got []string
	messages := 0
	for len(got) < 3 {
		got = append(got, seqs(t, readMessage(t, bob))...)
		messages++
	}
	if strings.Join(got, ",") != "2,3,4" || messages > 2 {
		t.Errorf("the frames queued during the write came as %v in %d messages, want 2,3,4 in one", got, messages)
	}

	alice.send(`{"type":"send","room":"r","data":5}`)
	alice.next()
	if got := seqs(t, readMessage(t, bob)); len(got) != 1 || got[0] != "5" {
		t.Errorf("a lone frame came as %v, want message 5 alone", got)
	}
}

// TestCloseWhileWriting checks that a session closed while its writer is
// in the middle of a write gets the frame in flight and then the close
// frame, from that same writer, and ends.
func TestCloseWhileWriting(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{MaxFrame: 1 << 20, QueueBytes: 4 << 20, WriteTimeout: timeout},
		options{listener: withSmallBuffers})
	bob, alice := srv.pair()
	alice.send(bigSend(1))
	alice.next()
	alice.next()
	if kicked, err := srv.hub.Kick(context.Background(), "bob"); err != nil || !kicked {
		t.Fatalf("kick: %v %v", kicked, err)
	}
	code, frames := bob.closeStatus()
	if code != 4003 {
		t.Errorf("close status %v, want 4003", code)
	}
	if len(frames) != 2 || decode(t, frames[1])["seq"] == nil {
		t.Errorf("bob got %d frames before the close, want member_joined and the message in flight", len(frames))
	}
	alice.expect(`{"type":"member_left","room":"r","user":"bob","member_count":1}`)
}

// TestKeepaliveDropsDeadPeer checks that the server's keepalive closes a
// connection whose peer does not answer pings (a client that never reads
// never sends a pong), and keeps one that does.
func TestKeepaliveDropsDeadPeer(t *testing.T) {
	t.Parallel()
	const interval = 100 * time.Millisecond
	srv := newServer(t, clients.Config{PingInterval: interval}, options{})
	live := srv.dial("live")
	live.send(`{"type":"join","room":"r"}`)
	live.next()
	col := collect(live) // reads, so it answers pings
	dead := srv.dialWith("dead", nil)
	dead.send(`{"type":"join","room":"r"}`)
	col.until(func(frames []map[string]any) bool {
		for _, f := range frames {
			if f["type"] == "member_joined" {
				return true
			}
		}
		return false
	})
	col.until(func(frames []map[string]any) bool {
		for _, f := range frames {
			if f["type"] == "member_left" && f["user"] == "dead" {
				return true
			}
		}
		return false
	})
	// Several intervals later the live client is still served.
	time.Sleep(5 * interval)
	col.sync()
	if n := srv.hub.Stats().Sessions; n != 1 {
		t.Errorf("%d sessions, want the live one", n)
	}
}

// TestWriteDelay checks that with WriteDelay a connection that just had a
// write waits for more frames to share the next one, while a frame after a
// quiet spell goes out alone at once.
func TestWriteDelay(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{WriteDelay: 300 * time.Millisecond}, options{})
	bob, alice := srv.pair()
	if m := decode(t, readMessage(t, bob)); m["type"] != "member_joined" {
		t.Fatalf("bob got %v, want member_joined", m)
	}
	time.Sleep(time.Second) // a quiet spell: bob's next frame goes out at once

	alice.send(`{"type":"send","room":"r","data":1}`)
	if got := seqs(t, readMessage(t, bob)); len(got) != 1 || got[0] != "1" {
		t.Fatalf("after a quiet spell bob got %v, want message 1 alone", got)
	}
	// Bob was just written to: the next frame waits for the others.
	for i := 2; i <= 4; i++ {
		alice.send(fmt.Sprintf(`{"type":"send","room":"r","data":%d}`, i))
	}
	if got := seqs(t, readMessage(t, bob)); strings.Join(got, ",") != "2,3,4" {
		t.Errorf("a busy connection got %v in one message, want 2,3,4", got)
	}
}

// TestWriteDelayClose checks that a session closed while its writer waits
// for WriteDelay still gets its close frame, and that the hub's Close
// waits for that writer instead of leaving it behind.
func TestWriteDelayClose(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{WriteDelay: 300 * time.Millisecond}, options{})
	bob, alice := srv.pair()
	readMessage(t, bob) // member_joined: bob was just written to
	alice.send(`{"type":"send","room":"r","data":1}`)
	alice.next() // sent: bob's frame is queued, his writer waits
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.hub.Close(ctx, protocol.CloseRestart, "restarting"); err != nil {
		t.Fatalf("hub close: %v", err)
	}
	if code, _ := bob.closeStatus(); code != protocol.CloseRestart {
		t.Errorf("bob's connection ended with %v, want %d", code, protocol.CloseRestart)
	}
}
