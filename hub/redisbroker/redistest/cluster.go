package redistest

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds how long a cluster may take to be created or to
// recover its state after a restart.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster of masters without replicas, each a Server
// started with cluster mode on, run for a test. It keeps serving the slots
// of the masters that are up while one is down
// (cluster-require-full-coverage no).
type Cluster struct {
	t       testing.TB
	Masters []*Server
}

// StartCluster starts n (at least 3) redis-servers in cluster mode on free
// ports whose cluster bus ports (port+10000) are free too, joins them into
// one cluster with redis-cli --cluster create, each master owning an equal
// share of the slots, and waits until every node reports cluster_state:ok.
// The servers are killed when the test ends. Missing redis-server or
// redis-cli skips the test, or fails it when CI is "true".
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	path := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")
	c := &Cluster{t: t}
	for range n {
		c.Masters = append(c.Masters, startClusterNode(t, path))
	}
	args := []string{"--cluster", "create"}
	for _, m := range c.Masters {
		args = append(args, m.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// startClusterNode starts one cluster-mode server.
func startClusterNode(t testing.TB, path string) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	for attempt := 0; ; attempt++ {
		s.port = freeClusterPort(t)
		s.args = []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", s.dir + "/nodes.conf",
			"--cluster-require-full-coverage", "no",
			"--cluster-node-timeout", "3000",
		}
		err := s.start(path)
		if err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatalf("redistest: %v", err)
		}
	}
}

// freeClusterPort returns a port that, with its cluster bus port+10000,
// was free a moment ago.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for {
		port := freePort(t)
		if port+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
}

// URL returns the cluster's URL as redis.ParseClusterURL takes it: the
// first master as host, the others as addr parameters.
func (c *Cluster) URL() string {
	u := "redis://" + c.Masters[0].Addr()
	for i, m := range c.Masters[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + m.Addr()
	}
	return u
}

// Client returns a go-redis cluster client, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addrs := make([]string, len(c.Masters))
	for i, m := range c.Masters {
		addrs[i] = m.Addr()
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// MasterOf returns the index of the master that owns key's slot: the one
// that answers a command on key rather than redirecting it (MOVED).
func (c *Cluster) MasterOf(t testing.TB, key string) int {
	t.Helper()
	for i, m := range c.Masters {
		cl := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
		err := cl.Exists(context.Background(), key).Err()
		cl.Close()
		if err == nil {
			return i
		}
	}
	t.Fatalf("redistest: no master serves the slot of %q", key)
	return -1
}

// WaitOK waits until every master that runs reports cluster_state:ok, and
// fails the test after clusterTimeout.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for _, m := range c.Masters {
		m.mu.Lock()
		up := m.cmd != nil
		m.mu.Unlock()
		if !up {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: m.Addr()})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				c.t.Fatalf("redistest: %s: no cluster_state:ok within %v: %v\n%s", m.Addr(), clusterTimeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
}
