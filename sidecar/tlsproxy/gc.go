package tlsproxy

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// The garbage collector's settings are process-wide (Config.GCPercent).
// The tls-proxy command applies them once, before the proxy runs, as the
// process is then the proxy's alone; New and Run leave the runtime of a
// program that embeds the proxy alone.
//
// GOMAXPROCS is left to the runtime (the CPUs, or the cgroup's CPU
// limit): with socket I/O in raw system calls (rawSock) the scheduler has
// no hand-offs left for more Ps than CPUs to save, and twice the CPUs
// measured the same as the default.

// DefaultGCPercent is the garbage collector's target heap growth that
// the tls-proxy command sets by default: the proxy's live heap is small (a few MB plus
// buffers per connection), so with Go's default of 100 every new TLS
// connection (about 40 KB of handshake garbage) brings the next
// collection closer. 400 collects a quarter as often, for a heap up to
// five times the live one; the memory limit (see applyGC) bounds that.
const DefaultGCPercent = 400

// defaultGCPercent is Config's default: 0 (leave it to the runtime) when
// the environment sets GOGC.
func defaultGCPercent() int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	return DefaultGCPercent
}

// memoryLimitShare is the part of the cgroup's memory limit that the
// tls-proxy command gives the Go runtime as its soft limit when none is set (GOMEMLIMIT):
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
