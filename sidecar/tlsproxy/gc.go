package tlsproxy

import (
	"math"
	"os"
	"runtime/debug"

	"github.com/podkit/podkit/internal/gctune"
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
	if limit, ok := gctune.CgroupMemoryLimit(cgroupRoot); ok {
		s.memoryLimit = int64(float64(limit) * memoryLimitShare)
		s.limitFrom = "cgroup"
		debug.SetMemoryLimit(s.memoryLimit)
	}
	return s
}
