package clients

import (
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestNextDelay: the delay grows under load up to its maximum, shrinks
// back to its base when the load falls, and holds in between.
func TestNextDelay(t *testing.T) {
	const base, most = 10 * time.Millisecond, 50 * time.Millisecond
	cases := []struct {
		d    time.Duration
		load float64
		want time.Duration
	}{
		{base, 1, 12500 * time.Microsecond},
		{2 * time.Millisecond, 1, 3 * time.Millisecond}, // at least adaptStep
		{45 * time.Millisecond, 0.9, most},
		{most, 1, most},
		{30 * time.Millisecond, 0.6, 30 * time.Millisecond},
		{30 * time.Millisecond, 0.2, 24 * time.Millisecond},
		{11 * time.Millisecond, 0, base},
		{base, 0, base},
	}
	for _, c := range cases {
		if got := nextDelay(c.d, base, most, c.load); got != c.want {
			t.Errorf("nextDelay(%v, load %.2f) = %v, want %v", c.d, c.load, got, c.want)
		}
	}
	// Saturated, then idle: up to the maximum and back to the base.
	d := base
	for range 20 {
		d = nextDelay(d, base, most, 1)
	}
	if d != most {
		t.Errorf("after 20 saturated samples the delay is %v, want %v", d, most)
	}
	for range 20 {
		d = nextDelay(d, base, most, 0.1)
	}
	if d != base {
		t.Errorf("after 20 idle samples the delay is %v, want %v", d, base)
	}
}

func TestAllowedCPUs(t *testing.T) {
	cases := []struct {
		status string
		want   []int // nil: unknown
	}{
		{"Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n", []int{0, 1}},
		{"Cpus_allowed_list:\t1\n", []int{1}},
		{"Cpus_allowed_list:\t0-2,5,7-8\n", []int{0, 1, 2, 5, 7, 8}},
		{"Cpus_allowed_list:\t2-1\n", nil},
		{"Cpus_allowed_list:\tx\n", nil},
		{"Name:\tx\n", nil},
	}
	for _, c := range cases {
		got := allowedCPUs([]byte(c.status))
		var list []int
		if got != nil {
			list = slices.Sorted(maps.Keys(got))
		}
		if !slices.Equal(list, c.want) {
			t.Errorf("allowedCPUs(%q) = %v, want %v", c.status, list, c.want)
		}
	}
}

func TestCPUTicks(t *testing.T) {
	stat := "cpu  10 0 10 100 5 0 0 0 0 0\n" +
		"cpu0 1 2 3 40 5 6 7 8 0 0\n" +
		"cpu1 10 0 10 60 0 0 0 0 0 0\n" +
		"intr 1 2 3\n"
	busy, all, ok := cpuTicks([]byte(stat), map[int]bool{1: true})
	if !ok || busy != 20 || all != 80 {
		t.Errorf("cpu1: busy %d, all %d, ok %v; want 20, 80, true", busy, all, ok)
	}
	busy, all, ok = cpuTicks([]byte(stat), map[int]bool{0: true, 1: true})
	if !ok || busy != 47 || all != 152 {
		t.Errorf("cpu0+1: busy %d, all %d, ok %v; want 47, 152, true", busy, all, ok)
	}
	if _, _, ok := cpuTicks([]byte(stat), map[int]bool{3: true}); ok {
		t.Error("a CPU that is not listed was found")
	}
}

// TestDelayAdaptsToLoad burns every P of the process while delayed writers
// run, and checks that the delay grows beyond its base, then that it
// returns to the base after a quiet spell. It asserts no timing: only
// that a process using all its CPU is seen as busy.
func TestDelayAdaptsToLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("burns the CPU for a few seconds")
	}
	const base, most = 10 * time.Millisecond, 50 * time.Millisecond
	w := newDelayedWriters(base, most)
	if w.load == nil {
		t.Fatal("no load sampler with a maximum above the base")
	}
	stop := make(chan struct{})
	var burners sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		burners.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1e5; i++ {
					_ = i * i
				}
			}
		})
	}
	grew := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		time.Sleep(adaptEvery + 10*time.Millisecond)
		w.start() // no writer due: only adapts
		if w.current() > base {
			grew = true
			break
		}
	}
	close(stop)
	burners.Wait()
	if !grew {
		t.Fatalf("the delay stayed at %v while the process used all its CPU", w.current())
	}
	// A quiet spell longer than adaptRestart: back to the base at once.
	w.adapt(time.Now().Add(adaptRestart + time.Second))
	if w.current() != base {
		t.Errorf("after a quiet spell the delay is %v, want %v", w.current(), base)
	}
}

// TestFixedDelay: without a maximum above the base, nothing is sampled
// and the delay stays put.
func TestFixedDelay(t *testing.T) {
	w := newDelayedWriters(10*time.Millisecond, 0)
	if w.load != nil {
		t.Error("a fixed delay samples the load")
	}
	w.adapt(time.Now())
	if w.current() != 10*time.Millisecond {
		t.Errorf("delay %v, want 10ms", w.current())
	}
}
