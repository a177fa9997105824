package tlsproxy

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Process-wide runtime settings (Config.GCPercent, Config.MaxProcs).
// The tls-proxy command applies them once, before the proxy runs, as the
// process is then the proxy's alone; New and Run leave the runtime of a
// program that embeds the proxy alone. 0 leaves a setting to the Go
// runtime and its environment variables.

// DefaultGCPercent is the garbage collector's target heap growth that
// Run sets by default: the proxy's live heap is small (a few MB plus
// buffers per connection), so with Go's default of 100 every new TLS
// connection (about 40 KB of handshake garbage) brings the next
// collection closer. 400 collects a quarter as often, for a heap up to
// five times the live one; the memory limit (see applyGC) bounds that.
const DefaultGCPercent = 400

// procsPerCPU is how many Ps (GOMAXPROCS) the proxy runs per CPU it may
// use. The proxy spends most of its CPU time in socket system calls; a P
// whose goroutine is in one is handed to another thread only when the
// runtime's monitor notices (after 20 µs or more), with thread wake-ups
// on the way in and out. With spare Ps the monitor leaves such a P alone
// and the thread keeps it on return, which takes CPU time off every
// proxied request (see bench/RESULTS.md).
const procsPerCPU = 2

// startProcs is GOMAXPROCS as the program started: the runtime's default
// or the environment's, before anything here changed it.
var startProcs = runtime.GOMAXPROCS(0)

// defaultGCPercent and defaultMaxProcs are Config's defaults: 0 (leave it
// to the runtime) when the environment sets GOGC or GOMAXPROCS.
func defaultGCPercent() int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	return DefaultGCPercent
}

// defaultMaxProcs is procsPerCPU times the CPUs, unless a cgroup CPU
// limit made the runtime choose fewer Ps than CPUs: more Ps would let
// the process run through its quota early in each period and be
// throttled for the rest, so the runtime's choice stands (and it follows
// changes of the limit).
func defaultMaxProcs() int {
	return maxProcsFor(os.Getenv("GOMAXPROCS") != "", startProcs, runtime.NumCPU())
}

func maxProcsFor(envSet bool, procs, cpus int) int {
	if envSet || procs < cpus {
		return 0
	}
	return procsPerCPU * procs
}

// runtimeSettings is what applyRuntime did, for the log.
type runtimeSettings struct {
	maxProcs int // in effect
	gcSettings
}

// applyRuntime applies cfg's process-wide settings.
func applyRuntime(cfg *Config) runtimeSettings {
	if cfg.MaxProcs > 0 {
		runtime.GOMAXPROCS(cfg.MaxProcs)
	}
	return runtimeSettings{maxProcs: runtime.GOMAXPROCS(0), gcSettings: applyGC(cfg.GCPercent, "/sys/fs/cgroup")}
}

// memoryLimitShare is the part of the cgroup's memory limit that Run
// gives the Go runtime as its soft limit when none is set (GOMEMLIMIT):
// near it the collector runs more often instead of the kernel killing
// the container.
const memoryLimitShare = 0.9

// gcSettings is what applyGC did, for the log.
type gcSettings struct {
	percent     int   // 0: left alone
	memoryLimit int64 // 0: left alone
	limitFrom   string
}

// applyGC sets the garbage collector's percent (process-wide) and, when
// the runtime has no memory limit yet (GOMEMLIMIT unset) but the process
// runs in a cgroup with one, a soft memory limit of 90% of it. percent 0
// leaves both to the Go runtime (GOGC, GOMEMLIMIT).
func applyGC(percent int, cgroupRoot string) gcSettings {
	if percent <= 0 {
		return gcSettings{}
	}
	debug.SetGCPercent(percent)
	s := gcSettings{percent: percent}
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		s.memoryLimit, s.limitFrom = cur, "GOMEMLIMIT"
		return s
	}
	if limit, ok := cgroupMemoryLimit(cgroupRoot, "/proc/self/cgroup"); ok {
		s.memoryLimit = int64(float64(limit) * memoryLimitShare)
		s.limitFrom = "cgroup"
		debug.SetMemoryLimit(s.memoryLimit)
	}
	return s
}

// cgroupMemoryLimit returns the smallest memory limit on the way from the
// process's cgroup (as procCgroup names it) up to root, under the cgroup
// v2 hierarchy mounted at root (memory.max) or the v1 memory controller
// (root/memory, memory.limit_in_bytes). ok is false when there is none.
func cgroupMemoryLimit(root, procCgroup string) (limit int64, ok bool) {
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		var dir, file string
		switch {
		case f[0] == "0" && f[1] == "":
			dir, file = root, "memory.max"
		case hasController(f[1], "memory"):
			dir, file = path.Join(root, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		if l, found := smallestLimit(dir, path.Clean("/"+f[2]), file); found && (!ok || l < limit) {
			limit, ok = l, true
		}
	}
	return limit, ok
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// smallestLimit reads file in dir/cg and every parent of it up to dir.
// In a container with its own cgroup namespace cg is "/" and dir is the
// container's own cgroup.
func smallestLimit(dir, cg, file string) (limit int64, ok bool) {
	for {
		if b, err := os.ReadFile(path.Join(dir, cg, file)); err == nil {
			v := strings.TrimSpace(string(b))
			// "max" (v2) or a page-rounded huge number (v1) mean none.
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < 1<<60 && (!ok || n < limit) {
				limit, ok = n, true
			}
		}
		if cg == "/" {
			return limit, ok
		}
		cg = path.Dir(cg)
	}
}
