//go:build !unix

package clients

import "time"

// processCPU is not measured on this platform: the write delay does not
// adapt to the process's load.
func processCPU() (time.Duration, bool) { return 0, false }
