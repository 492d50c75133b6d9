package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The load of the deployment tests (deploy_test.go): clients that stay in
// one room through a load balancer, reconnecting and recovering with
// since/epoch whenever their connection ends, and a publisher that sends
// to every room through the server API, retrying with the same id. Each
// client checks that its room's seqs arrive one after the other.

// lbSim is the clients and the publisher.
type lbSim struct {
	t       *testing.T
	lb      string
	rooms   []string
	clients []*lbClient
	pub     *lbPublisher
	stop    chan struct{} // closed to end the clients
	wg      sync.WaitGroup
	final   map[string]uint64 // each room's last seq, once the publisher stopped
}

// startLBSim connects n clients to lb, spread over rooms, waits until each
// has joined, then starts the publisher. Everything stops when the test
// ends, if finish was not called.
func startLBSim(t *testing.T, lb string, n, rooms int) *lbSim {
	t.Helper()
	s := &lbSim{t: t, lb: lb, stop: make(chan struct{})}
	for i := range rooms {
		s.rooms = append(s.rooms, fmt.Sprintf("room-%d", i))
	}
	for i := range n {
		c := &lbClient{sim: s, name: fmt.Sprintf("c%02d", i), room: s.rooms[i%rooms], data: map[uint64]string{}, closes: map[int]int{}}
		s.clients = append(s.clients, c)
		s.wg.Go(c.run)
	}
	t.Cleanup(s.stopClients)
	s.waitConnected(30 * time.Second)
	nodes := map[string]int{}
	for _, c := range s.clients {
		nodes[c.lastNode()]++
	}
	t.Logf("clients per node: %v", nodes)
	if len(nodes) < 2 {
		t.Errorf("all clients landed on one node (%v): nginx does not balance", nodes)
	}
	s.pub = &lbPublisher{lb: lb, rooms: s.rooms, stop: make(chan struct{}), done: make(chan struct{})}
	go s.pub.run()
	t.Cleanup(s.pub.halt)
	return s
}

// waitConnected waits until every client is connected and in its room.
func (s *lbSim) waitConnected(within time.Duration) {
	s.t.Helper()
	eventually(s.t, within, func() error {
		var out []string
		for _, c := range s.clients {
			if !c.isLive() {
				out = append(out, c.name)
			}
		}
		if len(out) > 0 {
			return fmt.Errorf("clients not connected and joined: %v", out)
		}
		return nil
	})
}

// waitTraffic waits until the publisher has had n more messages accepted.
func (s *lbSim) waitTraffic(n int) {
	s.t.Helper()
	from := s.pub.acceptedCount()
	eventually(s.t, 30*time.Second, func() error {
		if got := s.pub.acceptedCount() - from; got < n {
			return fmt.Errorf("the publisher had %d messages accepted, want %d", got, n)
		}
		return nil
	})
}

// finish stops the publisher, reads each room's last seq through the load
// balancer, waits until every client has received up to it, and stops the
// clients.
func (s *lbSim) finish() {
	s.t.Helper()
	s.pub.halt()
	s.final = map[string]uint64{}
	for _, room := range s.rooms {
		eventually(s.t, 15*time.Second, func() error {
			var body struct {
				Seq uint64 `json:"seq"`
			}
			if err := apiGet(s.lb+"/api/rooms/"+room+"/messages?limit=1", &body); err != nil {
				return err
			}
			s.final[room] = body.Seq
			return nil
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for !s.caughtUp() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	s.stopClients()
}

func (s *lbSim) caughtUp() bool {
	for _, c := range s.clients {
		if c.progress() < s.final[c.room] {
			return false
		}
	}
	return true
}

// stopClients ends the clients' loops and waits for them.
func (s *lbSim) stopClients() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// check fails the test unless every client received its room's seqs 1 to
// the last, each once and in order, with the publisher's message at each
// accepted seq.
func (s *lbSim) check() {
	s.t.Helper()
	accepted := s.pub.acceptedList()
	if len(s.pub.failed) > 0 {
		s.t.Errorf("publishes never accepted: %v", s.pub.failed)
	}
	for _, c := range s.clients {
		c.mu.Lock()
		for _, v := range c.violations[:min(len(c.violations), 10)] {
			s.t.Errorf("%s in %s: %s", c.name, c.room, v)
		}
		if c.last != s.final[c.room] {
			s.t.Errorf("%s in %s: last seq %d, want %d", c.name, c.room, c.last, s.final[c.room])
		}
		missed := 0
		for _, p := range accepted {
			if p.room == c.room && (c.data[p.seq] != p.id || p.epoch != c.epoch) {
				missed++
			}
		}
		if missed > 0 {
			s.t.Errorf("%s in %s: %d accepted messages missing or different", c.name, c.room, missed)
		}
		c.mu.Unlock()
	}
}

// disconnectedClients returns how many clients lost a connection.
func (s *lbSim) disconnectedClients() int {
	n := 0
	for _, c := range s.clients {
		c.mu.Lock()
		if len(c.down) > 0 {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// summarize logs, and prints as one line starting with name (for
// scripts/test.sh), the traffic and how long the clients were disconnected.
func (s *lbSim) summarize(name, what string) {
	var down []time.Duration
	closes := map[int]int{}
	connects := 0
	for _, c := range s.clients {
		c.mu.Lock()
		down = append(down, c.down...)
		for k, v := range c.closes {
			closes[k] += v
		}
		connects += len(c.nodes)
		c.mu.Unlock()
	}
	slices.Sort(down)
	p50, worst := time.Duration(0), time.Duration(0)
	if len(down) > 0 {
		p50, worst = down[len(down)/2], down[len(down)-1]
	}
	s.t.Logf("%s: closes by code %v (-1: no close frame)", name, closes)
	line := fmt.Sprintf("%s: %d clients in %d rooms through nginx, %s; %d messages accepted (%d failed attempts retried), %d connections; disconnected %d times, p50 %v, max %v",
		name, len(s.clients), len(s.rooms), what, s.pub.acceptedCount(), s.pub.failures, connects,
		len(down), p50.Round(time.Millisecond), worst.Round(time.Millisecond))
	s.t.Log(line)
	fmt.Println(line)
}

// lbClient is one client in one room. Fields below mu are guarded by it.
type lbClient struct {
	sim        *lbSim
	name, room string

	mu         sync.Mutex
	live       bool              // connected and joined
	epoch      string            // the room's epoch, once joined
	last       uint64            // the last seq received
	data       map[uint64]string // seq → the publisher's id in the message
	nodes      []string          // the welcome node of each connection
	closes     map[int]int       // how each connection ended
	lostAt     time.Time         // when the joined connection was lost
	down       []time.Duration   // from each loss to the next recovered join
	violations []string
}

// run connects, joins and reads until the simulation stops: at once again
// after a close 1001 or 1012 (a node shutting down or draining), after a
// short backoff otherwise.
func (c *lbClient) run() {
	var backoff time.Duration
	for {
		select {
		case <-c.sim.stop:
			return
		case <-time.After(backoff):
		}
		select {
		case <-c.sim.stop:
			return
		default:
		}
		status, joined := c.session()
		switch {
		case !joined:
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
		case status == websocket.StatusGoingAway || status == websocket.StatusServiceRestart:
			backoff = 0
		default:
			backoff = 100 * time.Millisecond
		}
	}
}

// session is one connection: dial through the load balancer, join (with
// since/epoch after the first), read until it ends. It returns the close
// status and whether the join succeeded.
func (c *lbClient) session() (websocket.StatusCode, bool) {
	conn, err := dialErr(c.sim.t, c.sim.lb, "?name="+c.name, nil)
	if err != nil {
		return -1, false
	}
	defer conn.c.CloseNow()
	w, err := conn.nextErr("welcome")
	if err != nil {
		return -1, false
	}
	if !c.join(conn, str(w["node"])) {
		return -1, false
	}
	for {
		select {
		case <-c.sim.stop:
			return websocket.StatusNormalClosure, true
		case b, ok := <-conn.frames:
			if !ok {
				status := websocket.CloseStatus(conn.err)
				c.mu.Lock()
				c.live, c.lostAt = false, time.Now()
				c.closes[int(status)]++
				c.mu.Unlock()
				return status, true
			}
			c.handle(b)
		}
	}
}

// join joins the room, recovering from the last seq once there is one,
// and reports whether it succeeded.
func (c *lbClient) join(conn *wsClient, node string) bool {
	c.mu.Lock()
	frame := fmt.Sprintf(`{"type":"join","room":%q}`, c.room)
	recovering := c.epoch != ""
	if recovering {
		frame = joinSince(c.room, c.last, c.epoch)
	}
	c.mu.Unlock()
	if conn.write(frame) != nil {
		return false
	}
	m, err := conn.nextErr("joined")
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = append(c.nodes, node)
	switch {
	case !recovering:
		c.epoch, c.last = str(m["epoch"]), seqOf(m)
	case m["recovered"] != true:
		c.violations = append(c.violations, fmt.Sprintf("rejoin since %d on %s: %v", c.last, node, m))
		c.epoch, c.last = str(m["epoch"]), seqOf(m)
	}
	if !c.lostAt.IsZero() {
		c.down = append(c.down, time.Since(c.lostAt))
		c.lostAt = time.Time{}
	}
	c.live = true
	return true
}

// handle checks one frame: a message must be the room's next seq.
func (c *lbClient) handle(b []byte) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.violate("frame %s: %v", b, err)
		return
	}
	switch m["type"] {
	case "message":
		seq := seqOf(m)
		data, _ := m["data"].(map[string]any)
		c.mu.Lock()
		defer c.mu.Unlock()
		if seq != c.last+1 {
			c.violations = append(c.violations, fmt.Sprintf("seq %d after %d", seq, c.last))
		}
		if seq > c.last {
			c.last = seq
			c.data[seq] = str(data["k"])
		}
	case "epoch", "error":
		c.violate("unexpected %s", b)
	}
}

func (c *lbClient) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

func (c *lbClient) isLive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

func (c *lbClient) progress() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (c *lbClient) lastNode() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.nodes) == 0 {
		return ""
	}
	return c.nodes[len(c.nodes)-1]
}

// lbPublisher publishes to the rooms in turn through the load balancer's
// server API, each message with an id, repeating a failed call with the
// same id until it is accepted (the API is idempotent by id).
type lbPublisher struct {
	lb    string
	rooms []string
	stop  chan struct{} // closed by halt
	done  chan struct{} // closed when run returns

	mu       sync.Mutex
	accepted []lbPub
	failures int      // calls that failed and were repeated
	failed   []string // ids never accepted
}

// lbPub is an accepted message.
type lbPub struct {
	room, id, epoch string
	seq             uint64
}

// run publishes until halted, one message about every 20 ms.
func (p *lbPublisher) run() {
	defer close(p.done)
	client := &http.Client{Timeout: 5 * time.Second}
	for n := 1; ; n++ {
		select {
		case <-p.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		room, id := p.rooms[n%len(p.rooms)], fmt.Sprintf("p-%d", n)
		p.publish(client, room, id)
	}
}

// publish sends one message, repeating it for up to 20 s until accepted.
func (p *lbPublisher) publish(client *http.Client, room, id string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		pub, err := p.post(client, room, id)
		p.mu.Lock()
		switch {
		case err == nil:
			p.accepted = append(p.accepted, pub)
		case time.Now().After(deadline):
			p.failed = append(p.failed, fmt.Sprintf("%s: %v", id, err))
		default:
			p.failures++
		}
		p.mu.Unlock()
		if err == nil || time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *lbPublisher) post(client *http.Client, room, id string) (lbPub, error) {
	body := fmt.Sprintf(`{"data":{"k":%q},"from":"pub","id":%q}`, id, id)
	req, err := http.NewRequest("POST", p.lb+"/api/rooms/"+room+"/messages", strings.NewReader(body))
	if err != nil {
		return lbPub{}, err
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return lbPub{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return lbPub{}, fmt.Errorf("publish: %d %s", resp.StatusCode, b)
	}
	var ans struct {
		Seq   uint64 `json:"seq"`
		Epoch string `json:"epoch"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return lbPub{}, fmt.Errorf("publish: %s: %w", b, err)
	}
	return lbPub{room: room, id: id, epoch: ans.Epoch, seq: ans.Seq}, nil
}

// halt stops the publisher and waits for it; a message in flight is
// finished first.
func (p *lbPublisher) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *lbPublisher) acceptedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.accepted)
}

func (p *lbPublisher) acceptedList() []lbPub {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.accepted)
}
