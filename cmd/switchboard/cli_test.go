package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runBinary runs the switchboard binary bin with args and only the
// environment env (plus PATH and HOME), and returns its exit code, stdout
// and stderr. It fails the test if the process does not exit within 20 s.
func runBinary(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		code = exit.ExitCode()
	default:
		t.Fatalf("switchboard %q: %v\nstderr: %s", args, err, errOut.String())
	}
	return code, out.String(), errOut.String()
}

// TestCLIErrors: the built binary, as a person runs it. A usage error (a
// bad flag or environment value, an unknown flag) exits 2 with exactly one
// line on stderr naming the flag or variable, the value and the form
// wanted, and pointing to --help; never the usage itself. A port in use is
// not a usage error: exit 1, and the line says what to set. --help prints
// the usage to stdout and exits 0.
func TestCLIErrors(t *testing.T) {
	bin := buildSwitchboard(t)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())

	cases := []struct {
		env  []string
		args []string
		code int
		want []string // in the one line, besides "switchboard: "
	}{
		{args: []string{"--addr", busy.Addr().String()}, code: 1,
			want: []string{"port " + busyPort + " is in use", "--addr", "SWITCHBOARD_ADDR"}},
		{args: []string{"--rate-limit=abc"}, code: 2, want: []string{`--rate-limit "abc"`, "whole number", "switchboard --help"}},
		{args: []string{"--drain-delay=5"}, code: 2, want: []string{`--drain-delay "5"`, "duration like 5s", "switchboard --help"}},
		{args: []string{"--redis-cluster=maybe"}, code: 2, want: []string{`--redis-cluster "maybe"`, "true or false"}},
		{args: []string{"--addr"}, code: 2, want: []string{"--addr needs a value", "switchboard --help"}},
		{args: []string{"--no-such-flag"}, code: 2, want: []string{"unknown flag --no-such-flag", "switchboard --help"}},
		{args: []string{"extra"}, code: 2, want: []string{`unexpected argument "extra"`}},
		{args: []string{"--addr", "8080"}, code: 2, want: []string{`--addr "8080"`, "host:port"}},
		{args: []string{"--redis-url", "redis://alice:s3cret@host:port/0"}, code: 2, want: []string{"--redis-url", "invalid port"}},
		{env: []string{"SWITCHBOARD_RATE_LIMIT=abc"}, code: 2, want: []string{`SWITCHBOARD_RATE_LIMIT "abc"`, "whole number", "switchboard --help"}},
		{env: []string{"SWITCHBOARD_HISTORY_TTL=1d"}, code: 2, want: []string{`SWITCHBOARD_HISTORY_TTL "1d"`, "duration like 5s"}},
		{args: []string{"token", "--ttl", "x"}, code: 2, want: []string{`--ttl "x"`, "duration", "switchboard token --help"}},
		{args: []string{"healthcheck", "--timeout=3"}, code: 2, want: []string{`--timeout "3"`, "duration", "switchboard healthcheck --help"}},
		{args: []string{"bench", "--conns", "many"}, code: 2, want: []string{`--conns "many"`, "whole number", "switchboard bench --help"}},
		{args: []string{"bench", "--bogus"}, code: 2, want: []string{"unknown flag --bogus", "switchboard bench --help"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(append(c.env, c.args...), " "), func(t *testing.T) {
			code, stdout, stderr := runBinary(t, bin, c.env, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			line, rest, _ := strings.Cut(stderr, "\n")
			if rest != "" || !strings.HasPrefix(line, "switchboard: ") {
				t.Fatalf("stderr:\n%s\nwant one line starting with \"switchboard: \"", stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q does not say %q", line, w)
				}
			}
			if strings.Contains(line, "usage") || strings.Contains(line, "s3cret") {
				t.Errorf("stderr %q: want no \"usage\" label and no password", line)
			}
		})
	}

	for _, args := range [][]string{{"--help"}, {"-h"}, {"token", "--help"}, {"healthcheck", "-h"}, {"bench", "--help"}} {
		code, stdout, stderr := runBinary(t, bin, nil, args...)
		if code != 0 || !strings.HasPrefix(stdout, "Usage: switchboard") || stderr != "" {
			t.Errorf("switchboard %q: exit %d, stdout %.40q…, stderr %q; want 0, the usage on stdout, nothing on stderr",
				args, code, stdout, stderr)
		}
	}
}

// TestStartupLine: once it listens, the server logs one line a person can
// act on, readable in the console format: the URL to open (the port it
// bound, localhost for every interface) and the mode. Console output to
// anything but a terminal has no colour codes, even when the console
// format is asked for.
func TestStartupLine(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	addr := freeAddr(t)
	_, stop := startServer(t, addr, func(ctx context.Context) error {
		return run(ctx, []string{"--addr", addr, "--log-format", "console"}, func(string) string { return "" }, &logs, &logs)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("INF listening: open http://%s to chat (memory: ", addr)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, logs.String())
	}
	if strings.Contains(logs.String(), "\x1b[") {
		t.Errorf("console log to a non-terminal has colour codes:\n%q", logs.String())
	}
}

// TestLogDurationsHaveUnits: a duration in the log names its unit: a
// session's duration and the shutdown's are in fields ending in _ms.
func TestLogDurationsHaveUnits(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	cfg := testConfig(t, nil)
	base, stop := startServe(t, cfg, &logs)
	c := dial(t, base, "?name=alice", nil)
	c.expect("welcome")
	c.c.Close(1000, "bye")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`"duration_ms":[0-9.]+,[^\n]*"message":"disconnected"`,
		`"took_ms":[0-9.]+`,
	} {
		if !regexp.MustCompile(re).MatchString(logs.String()) {
			t.Errorf("log does not match %s:\n%s", re, logs.String())
		}
	}
	if m := regexp.MustCompile(`"(duration|took|delay|drop_after)":`).FindString(logs.String()); m != "" {
		t.Errorf("log has a duration without unit, %s:\n%s", m, logs.String())
	}
}
