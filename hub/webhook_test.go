package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// eventLog records the hub's webhook events as "type data".
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) record(e hub.WebhookEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, _ := json.Marshal(e.Data)
	l.events = append(l.events, e.Type+" "+string(b))
}

// take returns the events recorded since the last call.
func (l *eventLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

// TestWebhookEventsOnce: the hub emits a user event per session, a member
// event only when the user's presence changes (their first session in, the
// last out), and a message event per message published, none for an
// idempotent repeat.
func TestWebhookEventsOnce(t *testing.T) {
	t.Parallel()
	var log eventLog
	h := newHub(t, memorybroker.Config{}, hub.Config{OnWebhookEvent: log.record})
	ctx := context.Background()

	a1 := h.connect("alice")
	a2 := h.connect("alice")
	h.join(a1, "lobby")
	h.join(a2, "lobby")
	want := []string{
		`user.connected {"user":"alice","session":"alice-1"}`,
		`user.connected {"user":"alice","session":"alice-2"}`,
		`member.joined {"room":"lobby","user":"alice"}`,
	}
	if got := log.take(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}

	pos, err := h.Send(ctx, a1, "lobby", json.RawMessage(`{"t":1}`), json.RawMessage(`"m1"`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Send(ctx, a1, "lobby", json.RawMessage(`{"t":1}`), json.RawMessage(`"m1"`)); err != nil {
		t.Fatal(err)
	}
	want = []string{fmt.Sprintf(`message.sent {"room":"lobby","seq":1,"epoch":%q,"from":"alice","data":{"t":1}}`, pos.Epoch)}
	if got := log.take(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}

	if err := h.Leave(ctx, a1, "lobby"); err != nil {
		t.Fatal(err)
	}
	if got := log.take(); len(got) != 0 {
		t.Fatalf("alice's first session left: events %q, want none (her other session is in)", got)
	}
	a2.disconnect()
	want = []string{
		`member.left {"room":"lobby","user":"alice"}`,
		`user.disconnected {"user":"alice","session":"alice-2"}`,
	}
	if got := log.take(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// TestDrainEmitsBeforeReturning: when Drain returns, the member.left and
// user.disconnected events of every session it closed have been emitted,
// even by a hook slow to take them: a shutdown stops the webhooks right
// after Drain, and would lose the late ones.
func TestDrainEmitsBeforeReturning(t *testing.T) {
	t.Parallel()
	var log eventLog
	slow := func(e hub.WebhookEvent) {
		if e.Type == hub.WebhookUserDisconnected {
			time.Sleep(20 * time.Millisecond) // a hook must not block; this one lags, to show the order
		}
		log.record(e)
	}
	h := newHub(t, memorybroker.Config{}, hub.Config{OnWebhookEvent: slow})
	const n = 5
	for i := range n {
		h.join(h.connect(fmt.Sprintf("user%d", i)), "lobby")
	}
	log.take()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Drain(ctx, protocol.CloseRestart, "service restart", hub.Pace{}); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	count := map[string]int{}
	for _, e := range log.take() {
		typ, _, _ := strings.Cut(e, " ")
		count[typ]++
	}
	if count[hub.WebhookMemberLeft] != n || count[hub.WebhookUserDisconnected] != n {
		t.Errorf("events emitted by the time Drain returned: %v, want %d member.left and %d user.disconnected", count, n, n)
	}
}

// departingPresence is the memory presence with the DepartureReporter and
// ReturnReporter capabilities of a shared one: report and returned call the
// functions the hub set.
type departingPresence struct {
	hub.Presence
	report   func(room string, users []string)
	returned func(room string, users []string)
}

func (p *departingPresence) ReportDepartures(f func(room string, users []string)) { p.report = f }
func (p *departingPresence) ReportReturns(f func(room string, users []string))    { p.returned = f }

// TestWebhookReportedMembers: departures a DepartureReporter reports (a
// crashed node's users, found by this node) are emitted as member.left,
// and returns a ReturnReporter reports (a user whose node was cut off for
// longer than the presence TTL, present again) as member.joined, one per
// user.
func TestWebhookReportedMembers(t *testing.T) {
	t.Parallel()
	var log eventLog
	b := memorybroker.New(memorybroker.Config{})
	p := &departingPresence{Presence: memorybroker.NewPresence(b)}
	newHubWith(t, b, p, hub.Config{OnWebhookEvent: log.record})
	if p.report == nil || p.returned == nil {
		t.Fatal("hub.New did not call ReportDepartures and ReportReturns")
	}
	p.report("lobby", []string{"ann", "bob"})
	p.returned("lobby", []string{"ann"})
	want := []string{
		`member.left {"room":"lobby","user":"ann"}`,
		`member.left {"room":"lobby","user":"bob"}`,
		`member.joined {"room":"lobby","user":"ann"}`,
	}
	if got := log.take(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// TestWebhookTypes: the registry lists every type once, message.sent first.
func TestWebhookTypes(t *testing.T) {
	t.Parallel()
	types := hub.WebhookTypes()
	if types[0] != hub.WebhookMessageSent || !slices.Contains(types, hub.WebhookUserDisconnected) {
		t.Fatalf("types = %q", types)
	}
	seen := map[string]bool{}
	for _, typ := range types {
		if seen[typ] {
			t.Errorf("%s registered twice", typ)
		}
		seen[typ] = true
	}
	types[0] = "changed"
	if hub.WebhookTypes()[0] != hub.WebhookMessageSent {
		t.Error("WebhookTypes returned the registry itself")
	}
}
