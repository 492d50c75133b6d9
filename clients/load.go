package clients

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuLoad measures how busy the node's CPUs are, for the adaptive write
// delay: the larger of the process's CPU time per GOMAXPROCS (a node
// limited by a cgroup quota, on a host with idle cores, is still busy) and,
// on Linux, the busy share of the CPUs the process may run on (a core
// shared with another busy process, such as Redis, is busy too). Each
// sample covers the time since the previous one. It is not safe for
// concurrent use.
type cpuLoad struct {
	procs int          // GOMAXPROCS
	cpus  map[int]bool // the CPUs the process may run on; nil: unknown, machine load not read

	at        time.Time
	proc      time.Duration // the process's CPU time at the last sample
	busy, all uint64        // the CPUs' busy and total ticks at the last sample
}

func newCPULoad() *cpuLoad {
	l := &cpuLoad{procs: runtime.GOMAXPROCS(0)}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		l.cpus = allowedCPUs(b)
	}
	return l
}

// sample returns the load since the previous sample, as a fraction of the
// node's capacity (0 to 1); ok is false for the first sample, which only
// sets the baseline, and when nothing could be read.
func (l *cpuLoad) sample(now time.Time) (load float64, ok bool) {
	proc, procOK := processCPU()
	var busy, all uint64
	machineOK := false
	if l.cpus != nil {
		if b, err := os.ReadFile("/proc/stat"); err == nil {
			busy, all, machineOK = cpuTicks(b, l.cpus)
		}
	}
	first := l.at.IsZero()
	wall := now.Sub(l.at)
	if !first && wall > 0 {
		if procOK && proc >= l.proc {
			load = float64(proc-l.proc) / (float64(wall) * float64(l.procs))
			ok = true
		}
		if machineOK && all > l.all && busy >= l.busy {
			load = max(load, float64(busy-l.busy)/float64(all-l.all))
			ok = true
		}
	}
	l.at, l.proc, l.busy, l.all = now, proc, busy, all
	return min(load, 1), ok
}

// allowedCPUs reads the Cpus_allowed_list line of /proc/self/status
// ("0-3,8"): the CPUs the process may run on, nil when absent or malformed.
func allowedCPUs(status []byte) map[int]bool {
	for line := range bytes.Lines(status) {
		list, found := bytes.CutPrefix(line, []byte("Cpus_allowed_list:"))
		if !found {
			continue
		}
		cpus := map[int]bool{}
		for part := range strings.SplitSeq(strings.TrimSpace(string(list)), ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			from, err1 := strconv.Atoi(lo)
			to := from
			var err2 error
			if isRange {
				to, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil || from < 0 || to < from || to-from > 4096 {
				return nil
			}
			for c := from; c <= to; c++ {
				cpus[c] = true
			}
		}
		if len(cpus) == 0 {
			return nil
		}
		return cpus
	}
	return nil
}

// cpuTicks sums, over the cpuN lines of /proc/stat whose N is in cpus, the
// busy ticks (all but idle and iowait) and all ticks.
func cpuTicks(stat []byte, cpus map[int]bool) (busy, all uint64, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !strings.HasPrefix(fields[0], "cpu") || fields[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(fields[0][3:])
		if err != nil || !cpus[n] {
			continue
		}
		for i, f := range fields[1:] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return 0, 0, false
			}
			all += v
			if i != 3 && i != 4 { // idle, iowait
				busy += v
			}
		}
		ok = true
	}
	return busy, all, ok
}
