package clients_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/clients"
)

// TestFrameBeforeUpgrade checks that a client that sends its first frame
// in the same packet as the upgrade request, not waiting for the 101, is
// answered: the bytes net/http read past the request reach the session.
// (Once, with smaller buffers of our own, they were dropped and the frame
// after them misread.)
func TestFrameBeforeUpgrade(t *testing.T) {
	t.Parallel()
	srv := newServer(t, clients.Config{}, options{})
	addr := strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/ws")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := `{"type":"ping","id":"early"}`
	// A masked text frame; the mask key 0 leaves the payload as it is.
	frame := append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
	req := fmt.Sprintf("GET /ws?name=early HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	if _, err := c.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(`{"type":"pong","id":"early"}`)) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("no pong to the early ping: %v; read %q", err, got)
		}
	}
}
