package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// syncBuffer is a bytes.Buffer safe for a server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// rawRequest writes a request on conn and reads its response.
func rawRequest(t *testing.T, conn net.Conn, br *bufio.Reader, req string) *http.Response {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// waitClosed reads conn until the server closes it, failing after 10 s.
func waitClosed(t *testing.T, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the connection open")
	}
	if err == nil {
		t.Fatal("the server sent unexpected bytes")
	}
}

// TestHTTPIdleTimeout: a keep-alive connection that sends no new request is
// closed by the server after the idle timeout.
func TestHTTPIdleTimeout(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.HTTP.Idle = 300 * time.Millisecond
	base, _ := startServe(t, cfg, io.Discard)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if resp := rawRequest(t, conn, br, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("healthz: %d, close %v; want 200 keep-alive", resp.StatusCode, resp.Close)
	}
	waitClosed(t, conn, br)
}

// TestHTTPRequestDeadline: a request whose body trickles in is answered
// 408 and its connection closed after the request deadline, instead of
// holding a connection and a goroutine for as long as the client likes.
func TestHTTPRequestDeadline(t *testing.T) {
	cfg := testConfig(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	cfg.HTTP.Request = 300 * time.Millisecond
	base, _ := startServe(t, cfg, io.Discard)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	// Content-Length promises 100 bytes; 10 arrive.
	resp := rawRequest(t, conn, br, "POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testKey+
		"\r\nContent-Length: 100\r\n\r\n{\"data\":1,")
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body: %d, want 408", resp.StatusCode)
	}
	waitClosed(t, conn, br)
}

// TestHTTPLimitsSpareWebSockets: the HTTP limits end idle or slow requests,
// never a WebSocket connection, which outlives them all.
func TestHTTPLimitsSpareWebSockets(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.HTTP = httpLimits{ReadHeader: 200 * time.Millisecond, Idle: 200 * time.Millisecond, Request: 200 * time.Millisecond, MaxHeaderBytes: 4096}
	base, _ := startServe(t, cfg, io.Discard)
	c := dial(t, base, "?name=alice", nil)
	c.expect("welcome")
	time.Sleep(time.Second) // five times every limit
	c.send(`{"type":"join","room":"lobby","id":1}`)
	if m, err := c.read(); err != nil || m["type"] != "joined" {
		t.Fatalf("after a second: %v, %v; want joined", m, err)
	}
}

// TestHTTPHeaderLimit: a request header beyond the cap gets 431; one the
// size of a large JWT is served.
func TestHTTPHeaderLimit(t *testing.T) {
	base, _ := startRun(t, nil)
	for _, c := range []struct {
		size int
		want int
	}{
		{8 << 10, 200},
		{100 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		req, _ := http.NewRequest("GET", base+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("x", c.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("header of %d bytes: %d, want %d", c.size, resp.StatusCode, c.want)
		}
	}
}

// TestReadyzHidesCause: while Redis is down /readyz says only
// "unavailable": the cause, with Redis's address, goes to the log, once.
func TestReadyzHidesCause(t *testing.T) {
	redis := redistest.Start(t)
	var logs syncBuffer
	base, _ := startServe(t, testConfig(t, map[string]string{"SWITCHBOARD_REDIS_URL": redis.URL()}), &logs)
	redis.Stop()
	_, port, _ := net.SplitHostPort(redis.Addr())
	var body string
	eventually(t, 15*time.Second, func() error {
		code, b := get(t, base+"/readyz")
		if code != 503 {
			return fmt.Errorf("readyz = %d while Redis is down, want 503", code)
		}
		body = b
		return nil
	})
	if strings.TrimSpace(body) != `{"status":"unavailable"}` || strings.Contains(body, port) || strings.Contains(body, "127.0.0.1") {
		t.Fatalf("readyz body = %s, want only {\"status\":\"unavailable\"}", body)
	}
	for range 3 {
		get(t, base+"/readyz")
	}
	if n := strings.Count(logs.String(), "not ready"); n != 1 {
		t.Fatalf("the cause was logged %d times over several probes, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), port) {
		t.Fatalf("the log does not name the cause:\n%s", logs.String())
	}
}
