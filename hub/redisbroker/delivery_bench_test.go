package redisbroker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
	"github.com/switchboard-chat/switchboard/protocol"
)

// benchRooms is how many rooms BenchmarkDelivery publishes to.
const benchRooms = 50

// BenchmarkDelivery measures what a node subscribed to many rooms gets from
// Redis: one broker publishes b.N messages (100-byte payloads) spread over
// benchRooms rooms, one publisher goroutine per room, and a second broker,
// subscribed to every room, delivers them to a Handler that does per
// delivery the work of a fan-out to `recipients` sessions (hashing the
// frame once per recipient, about 100-200 ns each, like an enqueue). It
// reports deliveries per second and the publish-to-delivery latency (p50,
// p99): the time from just before Publish to the Handler's call. Allocations
// count both brokers and go-redis.
//
// Run it with a fixed count so that setup is not repeated:
//
//	go test -run '^$' -bench Delivery -benchtime 20000x -count 5 ./hub/redisbroker/
func BenchmarkDelivery(b *testing.B) {
	for _, recipients := range []int{10, 500} {
		b.Run(fmt.Sprintf("rooms=%d/recipients=%d", benchRooms, recipients), func(b *testing.B) {
			benchDelivery(b, recipients)
		})
	}
}

func benchDelivery(b *testing.B, recipients int) {
	srv := redistest.Start(b)
	prefix := uniquePrefix()
	pub := newBroker(b, srv, Config{KeyPrefix: prefix})
	sub := newBroker(b, srv, Config{KeyPrefix: prefix})
	perRoom := (b.N + benchRooms - 1) / benchRooms
	h := newWorkHandler(b.N, perRoom, recipients)
	for br, hh := range map[*Broker]hub.Handler{pub: hubtest.NewRecorder(), sub: h} {
		if err := br.Start(context.Background(), hh); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { br.Close(context.Background()) })
	}
	reqs := make([]hub.PublishRequest, benchRooms)
	for i := range reqs {
		room := benchRoom(i)
		if err := sub.SubscribeRoom(b.Context(), room); err != nil {
			b.Fatal(err)
		}
		m, err := protocol.NewMessage(room, "alice", []byte(`{"text":"`+strings.Repeat("x", 89)+`"}`), 1)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = hub.PublishRequest{Message: m}
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range benchRooms {
		n := min(perRoom, max(b.N-i*perRoom, 0))
		wg.Go(func() {
			for seq := range n {
				h.sent[i][seq].Store(time.Now().UnixNano())
				if _, _, err := pub.Publish(b.Context(), benchRoom(i), reqs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-h.done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d delivered after a minute", h.delivered.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	lat := h.latencies()
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
}

func benchRoom(i int) string { return fmt.Sprintf("room%d", i) }

// workHandler is a Handler that hashes each frame once per recipient and
// records each publication's latency. Per room it is used by one goroutine
// at a time, as a Broker calls it.
type workHandler struct {
	recipients int
	sent       [][]atomic.Int64 // by room index and seq-1: unix ns before Publish
	lat        [][]int64        // by room index: latencies in ns
	want       int64            // deliveries expected
	delivered  atomic.Int64
	doneOnce   sync.Once
	done       chan struct{}
	sink       atomic.Uint64
}

func newWorkHandler(want, perRoom, recipients int) *workHandler {
	h := &workHandler{recipients: recipients, want: int64(want), done: make(chan struct{})}
	h.sent = make([][]atomic.Int64, benchRooms)
	h.lat = make([][]int64, benchRooms)
	for i := range benchRooms {
		h.sent[i] = make([]atomic.Int64, perRoom)
		h.lat[i] = make([]int64, 0, perRoom)
	}
	return h
}

// HandlePublication implements hub.Handler.
func (h *workHandler) HandlePublication(room string, p hub.Publication) {
	var sum [32]byte
	for range h.recipients {
		sum = sha256.Sum256(p.Frame)
	}
	h.sink.Add(uint64(sum[0]))
	i, err := strconv.Atoi(strings.TrimPrefix(room, "room"))
	if err == nil && i < len(h.sent) && p.Seq >= 1 && int(p.Seq) <= len(h.sent[i]) {
		h.lat[i] = append(h.lat[i], time.Now().UnixNano()-h.sent[i][p.Seq-1].Load())
	}
	if h.delivered.Add(1) == h.want {
		h.doneOnce.Do(func() { close(h.done) })
	}
}

// HandleRoomEvent implements hub.Handler.
func (h *workHandler) HandleRoomEvent(string, hub.Event) {}

// HandleUserEvent implements hub.Handler.
func (h *workHandler) HandleUserEvent(string, hub.Event) {}

// latencies returns every recorded latency, sorted. Call it once delivery
// is done.
func (h *workHandler) latencies() []int64 {
	var all []int64
	for _, l := range h.lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		return []int64{0}
	}
	return all
}
