package clients_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
)

// TestNoLeakAfterDisconnect checks that a session's goroutines end when its
// client goes, whether it closes cleanly, vanishes, or is closed by the
// server. It is not parallel: it counts every goroutine of the process.
func TestNoLeakAfterDisconnect(t *testing.T) {
	srv := newServer(t, clients.Config{MaxFrame: 1024}, options{})
	before := runtime.NumGoroutine()

	alice, bob, carol := srv.dial("alice"), srv.dial("bob"), srv.dial("carol")
	for _, c := range []*client{alice, bob, carol} {
		c.send(`{"type":"join","room":"r"}`)
		c.sync()
	}
	alice.send(`{"type":"send","room":"r","data":"bye"}`)
	for _, c := range []*client{alice, bob, carol} {
		c.next()
	}
	alice.conn.Close(websocket.StatusNormalClosure, "") // clean close
	bob.conn.CloseNow()                                 // gone without a close frame
	carol.send(`{"type":"ping","pad":"` + strings.Repeat("x", 2000) + `"}`)
	if code, _ := carol.closeStatus(); code != websocket.StatusMessageTooBig { // closed by the server
		t.Errorf("carol: close status %v, want 1009", code)
	}

	deadline := time.Now().Add(timeout)
	for srv.hub.Stats().Sessions > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still connected", srv.hub.Stats().Sessions)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.handlers.Wait()
	if err := hubtest.Settled(before, timeout); err != nil {
		t.Error(err)
	}
}
