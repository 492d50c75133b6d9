package clients_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/bits"
	"net"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/clients"
	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// benchWindow is how many messages the fan-out benchmark's publisher lets
// be in flight (published but not yet read by every client). Like a busy
// room it keeps the server's queues non-empty, so writes can be coalesced,
// without letting a backlog grow that would only measure queueing.
const benchWindow = 32

// BenchmarkFanout measures what the users of one busy room get: a real hub
// and clients.Server behind an httptest server, n WebSocket clients on
// loopback in one room, each reading on its own goroutine. Each op
// publishes one message of 100 bytes (hub.Publish, at most benchWindow in
// flight) and the benchmark ends when every client has read every message.
// It reports deliveries/s and the p99 latency from publish to read. Client
// and server share the process, so ns/op counts both sides' CPU.
//
//	go test -run '^$' -bench Fanout -benchtime 2000x -count 3 ./clients/
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchFanout(b, n, clients.Config{}) })
	}
	// The server's default: busy connections' writers wait up to 10 ms.
	b.Run("clients=1000,delay=10ms", func(b *testing.B) {
		benchFanout(b, 1000, clients.Config{WriteDelay: 10 * time.Millisecond})
	})
}

func benchFanout(b *testing.B, n int, cfg clients.Config) {
	h, url := benchServer(b, cfg)
	ctx := context.Background()
	var delivered atomic.Int64 // frames read by all clients
	var want atomic.Int64      // the publisher waits for delivered to reach it
	progress := make(chan struct{}, 1)
	readers := make([]*benchReader, n)
	var wg sync.WaitGroup
	dialAll(b, n, func(i int) {
		c := dialJoined(b, url, fmt.Sprintf("u%d", i))
		r := &benchReader{conn: c, delivered: &delivered, want: &want, progress: progress}
		readers[i] = r
		wg.Add(1)
		go func() { defer wg.Done(); r.run() }()
	})
	defer func() {
		for _, r := range readers {
			r.conn.CloseNow()
		}
		wg.Wait()
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i >= benchWindow {
			waitDelivered(b, &delivered, &want, progress, int64(i-benchWindow+1)*int64(n))
		}
		if _, err := h.Publish(ctx, "bench", "pub", benchPayload(), ""); err != nil {
			b.Fatal(err)
		}
	}
	waitDelivered(b, &delivered, &want, progress, int64(b.N)*int64(n))
	b.StopTimer()
	var hist latencyHist
	for _, r := range readers {
		hist.merge(&r.hist)
	}
	b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(hist.quantile(0.99))/1e6, "p99-ms")
	b.ReportMetric(float64(hist.count)/float64(hist.messages), "frames/msg")
}

// benchServer starts a hub on the memory broker and a clients.Server on a
// loopback httptest server, stopped when b ends. It returns the ws:// URL.
func benchServer(b *testing.B, cfg clients.Config) (*hub.Hub, string) {
	b.Helper()
	mb := memorybroker.New(memorybroker.Config{})
	h := hub.New(mb, memorybroker.NewPresence(mb), hub.Config{Logger: zerolog.Nop(), MaxReplayBytes: 1 << 19})
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	cfg.Logger = zerolog.Nop()
	if cfg.ObserveLatency == nil {
		// As in production, where a histogram observes every write: a
		// stand-in of two atomic adds.
		var sum, n atomic.Int64
		cfg.ObserveLatency = func(d time.Duration) { sum.Add(int64(d)); n.Add(1) }
	}
	ts := httptest.NewServer(clients.NewServer(h, cfg))
	b.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		h.Close(ctx, protocol.CloseGoingAway, "bench over")
		mb.Close(ctx)
	})
	return h, "ws" + strings.TrimPrefix(ts.URL, "http")
}

// dialAll runs dial for 0…n-1 on a few goroutines.
func dialAll(b *testing.B, n int, dial func(i int)) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				dial(i)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// dialJoined connects as name and joins room bench, reading up to the
// joined frame.
func dialJoined(b *testing.B, url, name string) *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url+"?name="+name, nil)
	if err != nil {
		b.Errorf("dial: %v", err)
		return nil
	}
	conn.SetReadLimit(-1)
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"bench"}`)); err != nil {
		b.Errorf("join: %v", err)
	}
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			b.Errorf("read joined: %v", err)
			return conn
		}
		if bytes.Contains(msg, []byte(`"type":"joined"`)) {
			return conn
		}
	}
}

// benchPayload is 100 bytes of JSON carrying the time it was made.
func benchPayload() []byte {
	p := fmt.Appendf(nil, `{"t":%d,"pad":"`, time.Now().UnixNano())
	p = append(p, strings.Repeat("x", 100-len(p)-2)...)
	return append(p, `"}`...)
}

// waitDelivered waits until delivered reaches n.
func waitDelivered(b *testing.B, delivered, want *atomic.Int64, progress <-chan struct{}, n int64) {
	want.Store(n)
	deadline := time.After(timeout)
	for delivered.Load() < n {
		select {
		case <-progress:
		case <-deadline:
			b.Fatalf("%d deliveries after %v, want %d", delivered.Load(), timeout, n)
		}
	}
}

// benchReader is one client of the fan-out benchmark.
type benchReader struct {
	conn      *websocket.Conn
	delivered *atomic.Int64
	want      *atomic.Int64
	progress  chan<- struct{}
	hist      latencyHist // owned by run until it returns
}

// run reads messages until the connection ends, counting message frames
// and their latency.
func (r *benchReader) run() {
	marker := []byte(`"t":`)
	for {
		_, msg, err := r.conn.Read(context.Background())
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		got := 0
		for f := range bytes.SplitSeq(msg, []byte("\n")) {
			if !bytes.HasPrefix(f, []byte(`{"type":"message"`)) {
				continue
			}
			got++
			i := bytes.Index(f, marker)
			if i < 0 {
				continue
			}
			rest := f[i+len(marker):]
			end := bytes.IndexByte(rest, ',')
			if t, err := strconv.ParseInt(string(rest[:max(end, 0)]), 10, 64); err == nil {
				r.hist.add(now - t)
			}
		}
		if got == 0 {
			continue
		}
		r.hist.messages++
		if r.delivered.Add(int64(got)) >= r.want.Load() {
			select {
			case r.progress <- struct{}{}:
			default:
			}
		}
	}
}

// latencyHist is a log-linear histogram of nanoseconds: 8 buckets per
// power of two, so a quantile is within 12.5%.
type latencyHist struct {
	buckets  [64 * 8]uint32
	count    int // frames recorded
	messages int // WebSocket messages they came in
}

func (h *latencyHist) add(ns int64) {
	if ns < 1 {
		ns = 1
	}
	e := bits.Len64(uint64(ns)) - 1
	m := 0
	if e >= 3 {
		m = int(uint64(ns)>>(e-3)) & 7
	}
	h.buckets[e*8+m]++
	h.count++
}

func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
	h.count += o.count
	h.messages += o.messages
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *latencyHist) quantile(q float64) int64 {
	target := uint64(q * float64(h.count))
	var seen uint64
	for i, c := range h.buckets {
		seen += uint64(c)
		if seen > target {
			e, m := i/8, i%8
			if e < 3 {
				return int64(1) << (e + 1)
			}
			return int64(8+m+1) << (e - 3)
		}
	}
	return 0
}

// BenchmarkIdleSessions measures the memory the server holds per idle
// connection: n clients connect, get their welcome and then stay silent;
// the benchmark reports the growth of HeapInuse + StackInuse per
// connection. Each client is a bare TCP socket that did the WebSocket
// handshake by hand, so the client side adds only its socket (a net.TCPConn
// and its poll descriptor, a few hundred bytes) to the figure; kernel
// socket buffers are not counted.
//
//	go test -run '^$' -bench IdleSessions -benchtime 1x -count 3 ./clients/
func BenchmarkIdleSessions(b *testing.B) {
	const n = 2000
	h, url := benchServer(b, clients.Config{})
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
	b.ReportAllocs()
	var perConn float64
	for i := 0; i < b.N; i++ {
		before := inUse()
		conns := make([]net.Conn, n)
		dialAll(b, n, func(i int) { conns[i] = dialRaw(b, addr) })
		deadline := time.Now().Add(timeout)
		for h.Stats().Sessions < n {
			if time.Now().After(deadline) {
				b.Fatalf("%d sessions, want %d", h.Stats().Sessions, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // let the welcomes be written
		perConn = float64(inUse()-before) / n
		for _, c := range conns {
			c.Close()
		}
		for h.Stats().Sessions > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ReportMetric(perConn, "B/conn")
	b.ReportMetric(0, "ns/op")
}

// inUse is the heap and stack memory in use after a full collection.
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// dialRaw opens a WebSocket connection with a hand-written handshake and
// returns the bare socket.
func dialRaw(b *testing.B, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Errorf("dial: %v", err)
		return nil
	}
	fmt.Fprintf(c, "GET /?name=idle HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	// A small reader, dropped after the handshake: the client keeps only
	// its socket.
	br := bufio.NewReaderSize(c, 16)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		b.Errorf("handshake: %q %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Errorf("handshake: %v", err)
			break
		}
		if line == "\r\n" {
			break
		}
	}
	return c
}
