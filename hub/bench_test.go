package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

// countingSession is a Session that only counts the frames it gets, so the
// benchmark measures the hub's fan-out and nothing else.
type countingSession struct {
	id, user string
	frames   atomic.Int64
}

func (s *countingSession) ID() string        { return s.id }
func (s *countingSession) User() string      { return s.user }
func (s *countingSession) Enqueue([]byte)    { s.frames.Add(1) }
func (s *countingSession) Close(int, string) {}

// BenchmarkFanout publishes one message to a room of n local members. The
// frame is encoded once, so allocations per publish must not grow with n.
// The run ends when the broker delivered every message (it delivers from
// goroutines of its own), so ns/op is the publish and its fan-out.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			ctx := context.Background()
			mb := memorybroker.New(memorybroker.Config{})
			h := hub.New(mb, memorybroker.NewPresence(mb), hub.Config{})
			if err := h.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer closeBroker(b, mb)
			sessions := make([]*countingSession, n)
			for i := range sessions {
				s := &countingSession{id: fmt.Sprint(i), user: fmt.Sprint("user", i)}
				sessions[i] = s
				if err := h.Connect(ctx, s); err != nil {
					b.Fatal(err)
				}
				if err := h.Join(ctx, s, hub.JoinRequest{Room: "lobby"}); err != nil {
					b.Fatal(err)
				}
			}
			flushBroker(b, mb)
			data := json.RawMessage(`{"text":"hello, world"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := h.Send(ctx, sessions[0], "lobby", data, nil); err != nil {
					b.Fatal(err)
				}
			}
			flushBroker(b, mb)
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
