//go:build !linux

package redistest

import "os/exec"

// killWithParent does nothing where the kernel cannot tie the server's life
// to the test process's: a test binary killed by -timeout leaves it behind.
func killWithParent(cmd *exec.Cmd) {}
