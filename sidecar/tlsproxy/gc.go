package tlsproxy

import (
	"os"

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

// gcSettings is what applyGC did, for the log.
type gcSettings struct {
	percent     int   // 0: left to GOGC; gctune.Off: off
	memoryLimit int64 // 0: left alone
	limitFrom   string
}

// applyGC sets the garbage collector's percent and soft memory limit
// (process-wide) as gctune decides them: percent as --gc-percent (0: GOGC
// if set, else DefaultGCPercent; gctune.Off: off), and, when GOMEMLIMIT
// is unset, 90% of the cgroup's memory limit if there is one.
func applyGC(percent int, cgroupRoot string) gcSettings {
	s := gctune.Resolve(percent, 0, DefaultGCPercent, os.Getenv, cgroupRoot)
	s.Apply()
	return gcSettings{percent: s.Percent, memoryLimit: s.MemoryLimit, limitFrom: s.LimitFrom}
}
