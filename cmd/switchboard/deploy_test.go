package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// The deployment of issue 11, tested with real processes: the compose file
// and the nginx config of deploy/ are checked by docker-compose and nginx
// themselves, and a cluster of redis-server, three switchboard processes and
// nginx (the config compose uses, rendered by deploy/nginx/render.sh) is
// restarted node by node, and has a node killed, under traffic. The clients
// and the publisher are in deploy_client_test.go.

// repoRoot is the repository's root, from this package's directory.
const repoRoot = "../.."

// needTool returns the path of a program the test needs. When it is missing
// the test is skipped, or fails when CI is "true", as redistest does for
// redis-server: CI cannot silently skip.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found on PATH; install it (apt-get install %s) to run this test", name, pkg)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// TestComposeConfig: compose.yaml is valid for Debian's docker-compose
// (1.29), without a .env, and defines the cluster's services.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	compose := needTool(t, "docker-compose", "docker-compose")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(compose, append([]string{"-f", "compose.yaml", "config"}, args...)...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "SWITCHBOARD_JWT_SECRET=", "SWITCHBOARD_API_KEY=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose config %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("-q"); strings.TrimSpace(out) != "" {
		t.Errorf("docker-compose config -q printed:\n%s", out)
	}
	services := strings.Fields(run("--services"))
	slices.Sort(services)
	if want := []string{"nginx", "node-1", "node-2", "node-3", "redis"}; !slices.Equal(services, want) {
		t.Errorf("services = %v, want %v", services, want)
	}
}

// renderNginx renders deploy/nginx/switchboard.conf into dir as a
// standalone config listening on listen, with upstreams, and returns its
// path.
func renderNginx(t *testing.T, dir, listen string, upstreams ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "deploy/nginx/render.sh"), append([]string{dir, listen}, upstreams...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render.sh: %v\n%s", err, exitStderr(err))
	}
	return strings.TrimSpace(string(out))
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestNginxConfig: the rendered config passes nginx -t and keeps the
// upstream parameters of the source for each server given.
func TestNginxConfig(t *testing.T) {
	t.Parallel()
	nginx := needTool(t, "nginx", "nginx")
	dir := t.TempDir()
	conf := renderNginx(t, dir, "127.0.0.1:18080", "127.0.0.1:18081", "127.0.0.1:18082")
	out, err := exec.Command(nginx, "-t", "-e", "stderr", "-p", dir, "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"listen 127.0.0.1:18080;",
		"server 127.0.0.1:18081 max_fails=1 fail_timeout=2s;",
		"server 127.0.0.1:18082 max_fails=1 fail_timeout=2s;",
		"daemon off;",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered config lacks %q", want)
		}
	}
	if strings.Contains(text, "node-1:8080") {
		t.Error("rendered config still has the compose upstream node-1:8080")
	}
}

// lbCluster is redis-server, switchboard nodes and nginx in front of them.
type lbCluster struct {
	t        *testing.T
	bin      string
	redisURL string
	addrs    []string    // each node's address, kept across restarts
	metrics  []string    // each node's --metrics-addr URL, kept across restarts
	nodes    []*soakNode // each node's current process
	lb       string      // nginx's base URL
	nginx    *exec.Cmd
	nginxLog string
	nodeLogs []string // every node process's log, restarts included
}

// startLBCluster starts Redis, n nodes and nginx, and waits until nginx
// answers. Logs are shown if the test fails.
func startLBCluster(t *testing.T, n int) *lbCluster {
	t.Helper()
	nginx := needTool(t, "nginx", "nginx")
	cl := &lbCluster{t: t, bin: buildSwitchboard(t), redisURL: redistest.Start(t).URL()}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range cl.nodeLogs {
				t.Logf("log %s:\n%s", filepath.Base(p), logExcerpt(p))
			}
			b, _ := os.ReadFile(cl.nginxLog)
			t.Logf("nginx log (errors):\n%s", grepLines(string(b), "[error]", "[crit]", "[alert]", "[emerg]"))
		}
	})
	for i := range n {
		cl.addrs = append(cl.addrs, freeAddr(t))
		cl.metrics = append(cl.metrics, "http://"+freeAddr(t)+"/metrics")
		cl.nodes = append(cl.nodes, nil)
		cl.startNode(i)
	}
	cl.startNginx(nginx)
	return cl
}

// startNode starts node i on its address and waits until it is ready.
func (cl *lbCluster) startNode(i int) {
	cl.t.Helper()
	nd := startNodeAt(cl.t, cl.bin, fmt.Sprintf("node-%d", i+1), cl.redisURL, cl.addrs[i],
		"SWITCHBOARD_TRUSTED_PROXIES=127.0.0.1",
		"SWITCHBOARD_METRICS_ADDR="+strings.TrimSuffix(strings.TrimPrefix(cl.metrics[i], "http://"), "/metrics"))
	cl.nodes[i] = nd
	cl.nodeLogs = append(cl.nodeLogs, nd.logPath)
}

func (cl *lbCluster) startNginx(bin string) {
	t := cl.t
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := renderNginx(t, dir, addr, cl.addrs...)
	cl.nginxLog = filepath.Join(dir, "nginx.log")
	logFile, err := os.Create(cl.nginxLog)
	if err != nil {
		t.Fatal(err)
	}
	cl.nginx = exec.Command(bin, "-e", "stderr", "-p", dir, "-c", conf)
	cl.nginx.Stdout, cl.nginx.Stderr = logFile, logFile
	if err := cl.nginx.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cl.nginx.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() { stopProcess(cl.nginx, exited, 10*time.Second) })
	cl.lb = "http://" + addr
	eventually(t, 15*time.Second, func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(cl.nginxLog)
			t.Fatalf("nginx exited at startup:\n%s", b)
		default:
		}
		if code, err := getErr(cl.lb + "/readyz"); code != 200 {
			return fmt.Errorf("nginx %s/readyz = %d, %v", cl.lb, code, err)
		}
		return nil
	})
}

// stopProcess SIGTERMs a process and waits for exited, SIGKILLing it after
// within. It reports whether it exited in time.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}, within time.Duration) bool {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return true
	case <-time.After(within):
		cmd.Process.Kill()
		<-exited
		return false
	}
}

// restart stops node i with SIGTERM, as an orchestrator does, waits for it
// to exit, and starts it again with the same id and address. Before the
// signal, node i's /metrics (on its --metrics-addr, which stays up during
// the drain) must show the traffic it served; after it, the drain.
func (cl *lbCluster) restart(i int) {
	t := cl.t
	t.Helper()
	nd := cl.nodes[i]
	m := scrape(t, cl.metrics[i], "")
	for _, name := range []string{"switchboard_connections", "switchboard_messages_delivered_total", "switchboard_fanout_latency_seconds"} {
		if v, _ := m.lookup(name); v <= 0 {
			t.Errorf("%s: %s = %v before its restart, want > 0 (it serves clients)", nd.id, name, v)
		}
	}
	if v, _ := m.lookup("switchboard_frames_received_total", "type", "join"); v <= 0 {
		t.Errorf("%s: no join frames counted", nd.id)
	}
	nd.alive.Store(false)
	nd.cmd.Process.Signal(syscall.SIGTERM)
	eventually(t, 10*time.Second, func() error { // within the 5 s drain delay
		m, err := scrapeErr(cl.metrics[i], "")
		if err != nil {
			return err
		}
		draining, _ := m.lookup("switchboard_draining")
		ready, _ := m.lookup("switchboard_ready")
		if draining != 1 || ready != 0 {
			return fmt.Errorf("%s after SIGTERM: draining %v, ready %v; want 1, 0", nd.id, draining, ready)
		}
		return nil
	})
	select { // one signal only: a second would cut the drain short
	case <-nd.exited:
	case <-time.After(45 * time.Second):
		t.Errorf("%s did not exit within 45 s of SIGTERM", nd.id)
		nd.cmd.Process.Kill()
		<-nd.exited
	}
	cl.startNode(i)
}

// waitServing waits until node i has published a message, that is until
// nginx routes the publisher's requests to it again: as in a rolling
// restart runbook, the next node is stopped only then (see fail_timeout in
// deploy/nginx/switchboard.conf).
func (cl *lbCluster) waitServing(i int) {
	cl.t.Helper()
	nd := cl.nodes[i]
	eventually(cl.t, 30*time.Second, func() error {
		var body struct {
			Node struct {
				Messages int `json:"messages"`
			} `json:"node"`
		}
		if err := apiGet(nd.base+"/api/stats", &body); err != nil {
			return err
		}
		if body.Node.Messages == 0 {
			return fmt.Errorf("%s has published nothing since its restart: nginx does not route to it", nd.id)
		}
		return nil
	})
}

func grepLines(text string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("… %d more", len(out)-40))
	}
	return "  " + strings.Join(out, "\n  ")
}

const (
	lbClients = 50
	lbRooms   = 5
)

// TestRollingRestart restarts every node in turn (SIGTERM, wait, start)
// while 50 clients in 5 rooms, connected through nginx, receive what a
// publisher sends through nginx without pause. The clients reconnect
// through nginx and recover with since/epoch: at the end each has every
// message of its room exactly once and in order. It prints a "rolling: …"
// summary with how long the clients were disconnected.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("rolling restart through nginx: skipped with -short")
	}
	cl := startLBCluster(t, 3)
	sim := startLBSim(t, cl.lb, lbClients, lbRooms)
	sim.waitTraffic(20)
	begin := time.Now()
	for i := range cl.nodes {
		at := time.Now()
		cl.restart(i)
		t.Logf("rolling: node-%d restarted in %v", i+1, time.Since(at).Round(time.Millisecond))
		cl.waitServing(i)
		sim.waitConnected(30 * time.Second)
		sim.waitTraffic(10)
	}
	took := time.Since(begin)
	sim.finish()
	sim.check()
	if sim.disconnectedClients() < lbClients {
		t.Errorf("%d of %d clients were disconnected by the restarts: every client should have been", sim.disconnectedClients(), lbClients)
	}
	sim.summarize("rolling", fmt.Sprintf("3 nodes restarted one by one in %v", took.Round(100*time.Millisecond)))
}

// TestNodeSIGKILLBehindNginx kills a node (SIGKILL, as in a crash) under
// the same load: its clients reconnect through nginx, whose passive check
// moves them to the live nodes, and recover every message from history
// (the nodes keep 2000 messages per room, startNodeAt's history size: far
// more than the test publishes).
func TestNodeSIGKILLBehindNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("node kill behind nginx: skipped with -short")
	}
	cl := startLBCluster(t, 3)
	sim := startLBSim(t, cl.lb, lbClients, lbRooms)
	sim.waitTraffic(20)
	victim := cl.nodes[1]
	victim.kill()
	sim.waitConnected(30 * time.Second)
	sim.waitTraffic(50)
	sim.finish()
	sim.check()
	if n := sim.disconnectedClients(); n == 0 {
		t.Errorf("no client was disconnected by the kill of %s: the test tested nothing", victim.id)
	}
	for _, c := range sim.clients {
		if c.lastNode() == victim.id {
			t.Errorf("%s is still on the killed %s", c.name, victim.id)
		}
	}
	sim.summarize("sigkill", "node-2 killed")
}
