package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// The soak test of issue 9: three switchboard processes and a real
// redis-server, 60 clients in 6 rooms doing random joins, leaves, sends,
// DMs and typing for 45 s while the pub/sub connections are killed, Redis
// is killed and restarted empty (a few clients losing their connection
// meanwhile) and one node is killed; then the invariant checker
// (soak_check_test.go) goes through what every client received. The
// clients are in soak_user_test.go.

const (
	soakUsers       = 60
	soakRooms       = 6
	soakTraffic     = 45 * time.Second
	soakPresenceTTL = 3 * time.Second
	// soakBudget bounds the whole test, setup included: the waits after the
	// traffic shorten themselves to stay within it.
	soakBudget = 88 * time.Second
	// soakReplyTimeout is how long a client waits for the answer to a
	// request before it drops the connection and reconnects.
	soakReplyTimeout = 10 * time.Second
)

// soakFaultAt is when each fault is injected, from the start of the traffic.
var soakFaultAt = struct{ pubsubKill, redisRestart, nodeKill time.Duration }{
	pubsubKill: 9 * time.Second, redisRestart: 19 * time.Second, nodeKill: 30 * time.Second,
}

// TestSoak runs the soak and proves, from what the clients recorded:
// (a) no client gets a message twice; (b) each room has one order: every
// client that got seq N of an epoch got the same message; (c) no gap within
// a membership, and every acknowledged message reached every client that
// was a member from its send to its ack (or recovered it), unless that
// client was told the epoch changed or got recovered:false (counted and
// logged); (d) once the traffic stops, every node's presence matches the
// users joined and every client's member list matches presence; (e) once
// the clients are gone, each node's goroutines and heap return near their
// values after startup. It is skipped with -short.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	budget := time.Now().Add(soakBudget)
	bin := buildSwitchboard(t)
	redis := redistest.Start(t)
	cl := startSoakCluster(t, bin, redis.URL(), 3)
	baseline := cl.runtimeStats(t)

	seed := uint64(time.Now().UnixNano())
	t.Logf("soak: seed %d", seed)
	sim := newSoakSim(t, cl, seed)
	sim.start()
	faults := injectFaults(t, redis, sim, time.Now())
	sim.stopTraffic()

	phase := time.Now()
	final := sim.settle(budget)
	t.Logf("soak: clients settled in %v", time.Since(phase).Round(time.Millisecond))
	rep := &soakReport{}
	rep.add("every client reconnected, rejoined and caught up after the traffic", final.unsettle)
	phase = time.Now()
	rep.add("(d) presence matches the joined users, no ghost members", checkPresence(sim, cl, budget))
	t.Logf("soak: presence checked in %v", time.Since(phase).Round(time.Millisecond))
	sim.closeAll()
	rep.add("(e) goroutines and heap back near baseline", checkRuntime(t, cl, baseline, budget))

	users := sim.records()
	rep.add("(a) no duplicate message to any client", checkDuplicates(users))
	rep.add("(b) per room one order", checkOneOrder(users))
	rep.add("(c) no gap within a membership", checkGaps(users, final.pos))
	acked, excused := checkAcked(users)
	rep.add("(c) every acknowledged message reached every member", acked)
	rep.summarize(t, users, faults, excused)
}

// TestStatsRuntime: /api/stats reports the answering node's goroutines and
// heap, in its own entry only.
func TestStatsRuntime(t *testing.T) {
	base, _ := startRun(t, map[string]string{"SWITCHBOARD_API_KEY": testKey})
	code, body := api(t, "GET", base+"/api/stats", testKey, "")
	if code != 200 {
		t.Fatalf("stats = %d %v", code, body)
	}
	node, _ := body["node"].(map[string]any)
	rt, _ := node["runtime"].(map[string]any)
	if g, _ := rt["goroutines"].(float64); g < 1 {
		t.Errorf("node.runtime.goroutines = %v, want at least 1", rt["goroutines"])
	}
	if h, _ := rt["heap_bytes"].(float64); h < 1 {
		t.Errorf("node.runtime.heap_bytes = %v, want more than 0", rt["heap_bytes"])
	}
	for _, n := range body["nodes"].([]any) {
		if _, ok := n.(map[string]any)["runtime"]; ok {
			t.Errorf("nodes entry %v has runtime; only node should", n)
		}
	}
}

// buildSwitchboard builds this package's binary, without the race
// detector so that three nodes are cheap, and returns its path.
func buildSwitchboard(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// soakNode is one switchboard process.
type soakNode struct {
	id, base, logPath string
	cmd               *exec.Cmd
	exited            chan struct{}
	alive             atomic.Bool
}

type soakCluster struct {
	nodes []*soakNode
}

// startSoakCluster starts n switchboard processes sharing the Redis at url
// and waits until each is healthy and ready. Their logs are shown if the
// test fails.
func startSoakCluster(t *testing.T, bin, url string, n int) *soakCluster {
	t.Helper()
	cl := &soakCluster{}
	for i := range n {
		cl.nodes = append(cl.nodes, startSoakNode(t, bin, fmt.Sprintf("node-%d", i+1), url))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range cl.nodes {
				t.Logf("log of %s (warnings and errors, then the last lines):\n%s", nd.id, logExcerpt(nd.logPath))
			}
		}
	})
	return cl
}

func startSoakNode(t *testing.T, bin, id, redisURL string) *soakNode {
	t.Helper()
	return startNodeAt(t, bin, id, redisURL, freeAddr(t))
}

// startNodeAt starts a switchboard process as startSoakNode does, on addr
// and with extra environment, and waits until it is healthy and ready.
func startNodeAt(t *testing.T, bin, id, redisURL, addr string, env ...string) *soakNode {
	t.Helper()
	nd := &soakNode{id: id, base: "http://" + addr, logPath: filepath.Join(t.TempDir(), id+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(nd.logPath)
	if err != nil {
		t.Fatal(err)
	}
	nd.cmd = exec.Command(bin)
	nd.cmd.Env = append(os.Environ(),
		"SWITCHBOARD_ADDR="+addr,
		"SWITCHBOARD_NODE_ID="+id,
		"SWITCHBOARD_REDIS_URL="+redisURL,
		"SWITCHBOARD_API_KEY="+testKey,
		"SWITCHBOARD_RATE_LIMIT=0",
		"SWITCHBOARD_MAX_CONNECTIONS_PER_IP=0",
		"SWITCHBOARD_HISTORY_SIZE=2000",
		"SWITCHBOARD_PRESENCE_TTL="+soakPresenceTTL.String(),
		"SWITCHBOARD_LOG_FORMAT=json",
		"SWITCHBOARD_LOG_LEVEL=info",
	)
	nd.cmd.Env = append(nd.cmd.Env, env...)
	nd.cmd.Stdout, nd.cmd.Stderr = logFile, logFile
	if err := nd.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", id, err)
	}
	nd.alive.Store(true)
	go func() {
		nd.cmd.Wait()
		logFile.Close()
		close(nd.exited)
	}()
	t.Cleanup(nd.kill)
	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, 15*time.Second, func() error {
			select {
			case <-nd.exited:
				t.Fatalf("%s exited at startup:\n%s", id, logExcerpt(nd.logPath))
			default:
			}
			if code, err := getErr(nd.base + path); code != 200 {
				return fmt.Errorf("%s%s = %d, %v", id, path, code, err)
			}
			return nil
		})
	}
	return nd
}

// kill SIGKILLs the node, as in a crash, and waits for it to exit.
func (nd *soakNode) kill() {
	nd.alive.Store(false)
	nd.cmd.Process.Kill()
	<-nd.exited
}

// live returns the nodes not killed.
func (cl *soakCluster) live() []*soakNode {
	var out []*soakNode
	for _, nd := range cl.nodes {
		if nd.alive.Load() {
			out = append(out, nd)
		}
	}
	return out
}

// nodeRuntime is a node's goroutines and heap, from /api/stats.
type nodeRuntime struct {
	connections, goroutines int
	heap                    uint64
}

// runtimeStats reads every live node's runtime figures.
func (cl *soakCluster) runtimeStats(t *testing.T) map[string]nodeRuntime {
	t.Helper()
	out := map[string]nodeRuntime{}
	for _, nd := range cl.live() {
		rt, err := nd.runtime()
		if err != nil {
			t.Fatal(err)
		}
		out[nd.id] = rt
	}
	return out
}

func (nd *soakNode) runtime() (nodeRuntime, error) {
	var body struct {
		Node struct {
			Connections int `json:"connections"`
			Runtime     *struct {
				Goroutines int    `json:"goroutines"`
				HeapBytes  uint64 `json:"heap_bytes"`
			} `json:"runtime"`
		} `json:"node"`
	}
	if err := apiGet(nd.base+"/api/stats", &body); err != nil {
		return nodeRuntime{}, err
	}
	if body.Node.Runtime == nil {
		return nodeRuntime{}, fmt.Errorf("%s: /api/stats has no node.runtime", nd.id)
	}
	return nodeRuntime{body.Node.Connections, body.Node.Runtime.Goroutines, body.Node.Runtime.HeapBytes}, nil
}

// apiGet calls GET url on the server API and decodes its JSON answer into
// v. Unlike api it returns its failure, for polling.
func apiGet(url string, v any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// logExcerpt returns a node log's warning and error lines (at most 40) and
// its last 10 lines.
func logExcerpt(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var warn []string
	for _, l := range lines {
		if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
			warn = append(warn, l)
		}
	}
	if len(warn) > 40 {
		warn = append(warn[:40], fmt.Sprintf("… %d more", len(warn)-40))
	}
	tail := lines[max(0, len(lines)-10):]
	return "  " + strings.Join(warn, "\n  ") + "\n  ---\n  " + strings.Join(tail, "\n  ")
}

// soakFaults records the faults injected.
type soakFaults struct {
	pubsubKilled             int64 // pub/sub connections killed
	redisDown, redisUp, node time.Time
	dropped                  int // client connections dropped while Redis was down
	nodeID                   string
}

func (f soakFaults) String() string {
	return fmt.Sprintf("3 faults (pubsub kill of %d connections, redis restart with %d clients cut off, node kill of %s)",
		f.pubsubKilled, f.dropped, f.nodeID)
}

// soakCutOff is how many clients lose their connection while Redis is down:
// they come back to a new epoch, so their rejoins answer recovered:false.
const soakCutOff = 3

// injectFaults injects the three faults at their soakFaultAt times from
// begin and returns when the traffic is over.
func injectFaults(t *testing.T, redis *redistest.Server, sim *soakSim, begin time.Time) soakFaults {
	t.Helper()
	var f soakFaults
	rdb := redis.Client(t)
	sleepUntil(begin.Add(soakFaultAt.pubsubKill))
	n, err := rdb.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Result()
	if err != nil {
		t.Errorf("CLIENT KILL TYPE pubsub: %v", err)
	}
	f.pubsubKilled = n
	t.Logf("soak: +%v killed %d pub/sub connections", time.Since(begin).Round(time.Millisecond), n)

	sleepUntil(begin.Add(soakFaultAt.redisRestart))
	f.redisDown = time.Now()
	redis.Stop()
	f.dropped = sim.cutOff(soakCutOff)
	time.Sleep(time.Second)
	redis.Start()
	f.redisUp = time.Now()
	t.Logf("soak: +%v Redis killed, restarted empty %v later", f.redisDown.Sub(begin).Round(time.Millisecond), f.redisUp.Sub(f.redisDown).Round(time.Millisecond))

	sleepUntil(begin.Add(soakFaultAt.nodeKill))
	victim := sim.cl.nodes[len(sim.cl.nodes)-1]
	victim.kill()
	f.node, f.nodeID = time.Now(), victim.id
	t.Logf("soak: +%v %s killed", f.node.Sub(begin).Round(time.Millisecond), victim.id)

	sleepUntil(begin.Add(soakTraffic))
	return f
}

func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// soakSim runs the simulated users.
type soakSim struct {
	t       *testing.T
	cl      *soakCluster
	users   []*soakUser
	rooms   []string
	stop    chan struct{} // closed when the traffic ends
	wg      sync.WaitGroup
	begin   time.Time   // when the traffic started
	closing atomic.Bool // set when the test closes the connections
}

func newSoakSim(t *testing.T, cl *soakCluster, seed uint64) *soakSim {
	s := &soakSim{t: t, cl: cl, stop: make(chan struct{})}
	for i := range soakRooms {
		s.rooms = append(s.rooms, fmt.Sprintf("soak-%d", i))
	}
	for i := range soakUsers {
		s.users = append(s.users, newSoakUser(s, i, rand.New(rand.NewPCG(seed, uint64(i)))))
	}
	return s
}

// start connects every user to its first node and starts its driver.
func (s *soakSim) start() {
	s.begin = time.Now()
	for _, u := range s.users {
		s.wg.Go(u.drive)
	}
}

// stopTraffic ends the random actions: each user then reconnects and
// rejoins if it must, and waits.
func (s *soakSim) stopTraffic() {
	close(s.stop)
	s.wg.Wait()
}

// soakFinal is the state once the traffic is over and delivery settled.
type soakFinal struct {
	pos      map[string]roomPos // each room's last position, as the server API reads it
	unsettle []string           // users not connected and in all their rooms in time
}

// roomPos is a position in a room's history.
type roomPos struct {
	epoch string
	seq   uint64
}

// settle waits until every user is connected and in all its rooms, and
// has received each room's last message; it then reads the rooms' final
// positions. Users still behind at the deadline are left to the checker.
func (s *soakSim) settle(budget time.Time) soakFinal {
	deadline := earliest(time.Now().Add(15*time.Second), budget)
	var f soakFinal
	for {
		f = soakFinal{pos: s.positions()}
		var behind []string
		for _, u := range s.users {
			if why := u.behind(f.pos); why != "" {
				behind = append(behind, u.name+": "+why)
			}
		}
		if len(behind) == 0 || time.Now().After(deadline) {
			f.unsettle = behind
			return f
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// positions reads every room's position through a live node's API.
func (s *soakSim) positions() map[string]roomPos {
	out := map[string]roomPos{}
	for _, room := range s.rooms {
		var body struct {
			Epoch string `json:"epoch"`
			Seq   uint64 `json:"seq"`
		}
		for _, nd := range s.cl.live() {
			if apiGet(nd.base+"/api/rooms/"+room+"/messages?limit=1", &body) == nil {
				out[room] = roomPos{body.Epoch, body.Seq}
				break
			}
		}
	}
	return out
}

// cutOff drops the connections of the first n users, as a network would;
// they reconnect by themselves. It returns how many were connected.
func (s *soakSim) cutOff(n int) int {
	cut := 0
	for _, u := range s.users[:n] {
		u.mu.Lock()
		c := u.conn
		u.mu.Unlock()
		if c != nil {
			c.c.CloseNow()
			cut++
		}
	}
	return cut
}

// closeAll closes every user's connection and waits for its reader.
func (s *soakSim) closeAll() {
	s.closing.Store(true)
	for _, u := range s.users {
		u.close()
	}
}

// records returns the users' records, once their readers have exited.
func (s *soakSim) records() []*soakUser { return s.users }

// members returns, per room, the users joined to it in their own view.
func (s *soakSim) members() map[string][]string {
	out := map[string][]string{}
	for _, room := range s.rooms {
		out[room] = []string{}
	}
	for _, u := range s.users {
		u.mu.Lock()
		for room, st := range u.rooms {
			if st.live {
				out[room] = append(out[room], u.name)
			}
		}
		u.mu.Unlock()
	}
	for _, m := range out {
		slices.Sort(m)
	}
	return out
}

// at formats a time as an offset from the start of the traffic.
func (s *soakSim) at(t time.Time) string {
	return "+" + t.Sub(s.begin).Round(time.Millisecond).String()
}

// describe tells how and when a delivery arrived.
func (s *soakSim) describe(d soakDelivery) string {
	return fmt.Sprintf("%s on connection %d at %s", d.via, d.conn, s.at(d.at))
}

// describeSegment tells a membership segment's extent.
func (s *soakSim) describeSegment(g *soakSegment) string {
	out := fmt.Sprintf("from seq %d at %s", g.from, s.at(g.start))
	if g.end.IsZero() {
		return out + " to the end"
	}
	return out + fmt.Sprintf(" until %s (%s)", s.at(g.end), g.reason)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
