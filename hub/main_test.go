package hub_test

import (
	"os"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/hub/hubtest"
)

// TestMain fails the package when goroutines started by its tests outlive
// them.
func TestMain(m *testing.M) { os.Exit(hubtest.RunWithLeakCheck(m, 10*time.Second)) }
