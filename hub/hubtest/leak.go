package hubtest

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// RunWithLeakCheck runs a package's tests from its TestMain and returns the
// exit code, failing a passing run whose tests left goroutines behind: every
// goroutine must have an owner and an exit. Goroutines may take up to
// timeout to wind down after the last test.
//
//	func TestMain(m *testing.M) { os.Exit(hubtest.RunWithLeakCheck(m, 10*time.Second)) }
func RunWithLeakCheck(m *testing.M, timeout time.Duration) int {
	before := runtime.NumGoroutine()
	code := m.Run()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return code // the fuzzing engine keeps goroutines of its own
	}
	if code == 0 {
		if err := Settled(before, timeout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}

// Settled waits up to timeout for the number of goroutines to drop back to
// want, and otherwise returns an error listing them.
func Settled(want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("goroutine leak: %d goroutines, want at most %d:\n%s", n, want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
