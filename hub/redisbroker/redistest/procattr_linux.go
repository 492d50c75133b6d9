package redistest

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill the server when the test process
// dies, so that a test binary killed by -timeout leaves no server behind
// (t.Cleanup does not run then).
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
