package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// Server is a redis-server process run for a test. Its methods are safe for
// concurrent use.
type Server struct {
	t    testing.TB
	port int
	dir  string
	args []string // more redis-server arguments

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *syncBuffer   // the server's log, shown when it fails to start
}

// Start starts a redis-server on a free 127.0.0.1 port and waits until it
// answers PING. The server is killed when the test ends.
//
// When redis-server is not on PATH the test is skipped, or fails when the
// environment variable CI is "true", so that CI cannot silently skip the
// Redis tests.
func Start(t testing.TB) *Server {
	t.Helper()
	path := lookPath(t, "redis-server")
	s := &Server{t: t, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		err := s.start(path)
		if err == nil {
			return s
		}
		if attempt == 2 {
			t.Fatalf("redistest: %v", err)
		}
		// Another process may have taken the port between freePort and
		// the server's bind: try another one.
	}
}

// lookPath returns the path of a Redis program, skipping the test when it
// is missing, or failing it when CI is "true".
func lookPath(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found on PATH; install Redis " +
			"(apt-get install redis-server, brew install redis) to run these tests"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns the server's URL for database 0, redis://127.0.0.1:PORT/0.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Client returns a go-redis client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop kills the server (SIGKILL, as in a crash) and waits for it to exit.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Start starts a stopped server again on the same port and directory. It
// runs without automatic persistence, so it comes back empty, or with what
// the last SAVE (or BGSAVE) wrote before Stop: a snapshot older than what
// it had acknowledged, as after a crash. It fails the test if the server
// does not come up.
func (s *Server) Start() {
	s.t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	if err := s.start(path); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// start runs redis-server and waits for it to answer PING.
func (s *Server) start(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("server on port %d is already running", s.port)
	}
	cmd := exec.Command(path,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--loglevel", "warning",
	)
	cmd.Args = append(cmd.Args, s.args...)
	s.out = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	if err := waitPing(s.Addr(), done); err != nil {
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server on port %d: %w\n%s", s.port, err, s.out.String())
	}
	s.cmd, s.done = cmd, done
	return nil
}

// waitPing polls addr with PING until it answers PONG, the process exits
// (done is closed) or startTimeout passes.
func waitPing(addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(addr) == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("exited before answering PING")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v", startTimeout)
		}
	}
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a process's
// stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
