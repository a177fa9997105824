package workqueue

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultGCPercent is the coordinator's garbage collection target when
// neither --gc-percent nor GOGC says otherwise. The coordinator's heap is
// mostly its items, and each request allocates a few kilobytes in
// net/http and encoding/json; with Go's default of 100 the collector runs
// every few hundred milliseconds at 1,000 jobs/s, and leases handed out
// while it marks wait several times longer (bench/RESULTS.md, queue). At
// 400 it runs a quarter as often, for a heap of up to five times the live
// data; the memory limit (--memory-limit, by default 90% of the
// container's) bounds that.
const DefaultGCPercent = 400

// gcSettings is what the coordinator sets in the Go runtime: gcPercent
// and memLimit when set (0 leaves the runtime's own value, from GOGC or
// GOMEMLIMIT), and where each came from, for the log.
type gcSettings struct {
	gcPercent   int
	percentFrom string
	memLimit    int64
	limitFrom   string
}

// resolveGC decides the collector settings: the flags, else GOGC and
// GOMEMLIMIT from the environment (which the runtime has applied
// already), else DefaultGCPercent and 90% of the cgroup memory limit
// found under cgroupRoot, if there is one.
func resolveGC(c Config, getenv func(string) string, cgroupRoot string) gcSettings {
	var s gcSettings
	switch {
	case c.GCPercent > 0:
		s.gcPercent, s.percentFrom = c.GCPercent, "--gc-percent"
	case getenv("GOGC") != "":
		s.percentFrom = "GOGC"
	default:
		s.gcPercent, s.percentFrom = DefaultGCPercent, "default"
	}
	switch {
	case c.MemoryLimit > 0:
		s.memLimit, s.limitFrom = int64(c.MemoryLimit), "--memory-limit"
	case getenv("GOMEMLIMIT") != "":
		s.limitFrom = "GOMEMLIMIT"
	default:
		if l, ok := cgroupMemoryLimit(cgroupRoot); ok {
			s.memLimit, s.limitFrom = l/10*9, "90% of the cgroup memory limit"
		} else {
			s.limitFrom = "none (no cgroup memory limit)"
		}
	}
	return s
}

// apply sets s in the runtime and returns a func that restores the
// previous settings.
func (s gcSettings) apply() (restore func()) {
	prevPercent, prevLimit := -2, int64(-1)
	if s.gcPercent > 0 {
		prevPercent = debug.SetGCPercent(s.gcPercent)
	}
	if s.memLimit > 0 {
		prevLimit = debug.SetMemoryLimit(s.memLimit)
	}
	return func() {
		if prevPercent != -2 {
			debug.SetGCPercent(prevPercent)
		}
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
	}
}

// cgroupMemoryLimit returns the memory limit of this process's cgroup (the
// smallest along its path; cgroup v2, else v1) under root (normally
// /sys/fs/cgroup).
func cgroupMemoryLimit(root string) (int64, bool) {
	f, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	return cgroupLimitFrom(f, root)
}

// cgroupLimitFrom is cgroupMemoryLimit over the contents of
// /proc/self/cgroup.
func cgroupLimitFrom(procCgroup []byte, root string) (int64, bool) {
	var v2, v1 string
	haveV2, haveV1 := false, false
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, haveV2 = parts[2], true
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1, haveV1 = parts[2], true
			}
		}
	}
	// The smallest limit from the cgroup up to the root of the hierarchy.
	walk := func(base, path, file string, unlimited func(string) bool) (int64, bool) {
		best, found := int64(0), false
		for p := filepath.Clean("/" + path); ; p = filepath.Dir(p) {
			b, err := os.ReadFile(filepath.Join(base, p, file))
			if err == nil {
				s := strings.TrimSpace(string(b))
				if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && !unlimited(s) && (!found || n < best) {
					best, found = n, true
				}
			}
			if p == "/" {
				return best, found
			}
		}
	}
	if haveV2 {
		if l, ok := walk(root, v2, "memory.max", func(s string) bool { return s == "max" }); ok {
			return l, true
		}
	}
	if haveV1 {
		// cgroup v1 says "no limit" with a huge number (page-rounded
		// MaxInt64).
		return walk(filepath.Join(root, "memory"), v1, "memory.limit_in_bytes", func(s string) bool {
			n, _ := strconv.ParseInt(s, 10, 64)
			return n >= 1<<62
		})
	}
	return 0, false
}
