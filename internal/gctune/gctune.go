// Package gctune sets the Go garbage collector for a component that has
// the process to itself: a higher GOGC than Go's 100 for proxies and
// coordinators whose live heap is small and whose garbage comes per
// request, bounded by a soft memory limit of 90% of the container's
// (cgroup) limit. Flags win over GOGC and GOMEMLIMIT, which win over
// the defaults.
//
// It is the one place that interprets --gc-percent, for every component
// that has it. The flag takes what GOGC takes: a percentage, or "off"
// (Off: no collection until the memory limit nears, as GOGC=off). Its
// default, 0, means "not set": GOGC from the environment if set, else the
// component's default. GOGC=0 (collect continuously) is not offered by
// the flag; set GOGC=0 in the environment to get it.
package gctune

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Off is the --gc-percent value that turns the collector off, as GOGC=off
// (any negative Config value means the same, as for debug.SetGCPercent).
const Off = -1

// MaxPercent is the largest --gc-percent accepted.
const MaxPercent = 100000

// PercentUsage is the help text of a --gc-percent flag whose component
// collects at defaultPercent unless told otherwise.
func PercentUsage(defaultPercent int) string {
	return fmt.Sprintf("garbage collection target percentage `N|off`, as GOGC (off: no collection until near the memory limit); 0: GOGC if set, else %d", defaultPercent)
}

// PercentFlag returns the flag.Value of --gc-percent, stored in p: a
// percentage from 0 (not set) to MaxPercent, or "off" (Off).
func PercentFlag(p *int) flag.Value { return (*percentValue)(p) }

type percentValue int

func (v *percentValue) String() string {
	if v == nil {
		return "0"
	}
	if *v < 0 {
		return "off"
	}
	return strconv.Itoa(int(*v))
}

func (v *percentValue) Set(s string) error {
	if strings.EqualFold(s, "off") {
		*v = Off
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a percentage (0 to %d) or off", s, MaxPercent)
	}
	if err := CheckPercent(n); err != nil {
		return err
	}
	*v = percentValue(n)
	return nil
}

// FormatPercent shows a percent for the log and help: "off" or the number.
func FormatPercent(p int) string {
	v := percentValue(p)
	return v.String()
}

// Get implements flag.Getter.
func (v *percentValue) Get() any { return int(*v) }

// CheckPercent validates a Config's percent: Off (or any negative: off),
// 0 (not set), or 1 to MaxPercent.
func CheckPercent(p int) error {
	if p > MaxPercent {
		return fmt.Errorf("%d is too large (at most %d)", p, MaxPercent)
	}
	if p < Off {
		return errors.New(strconv.Itoa(p) + " is not a percentage; use off (-1) to turn the collector off")
	}
	return nil
}

// Settings is what a component sets in the Go runtime: Percent (Off: turn
// the collector off) and MemoryLimit when set (0 leaves the runtime's own
// value, from GOGC or GOMEMLIMIT), and where each came from, for the log.
type Settings struct {
	Percent     int
	PercentFrom string
	MemoryLimit int64
	LimitFrom   string
}

// Resolve decides the collector settings: the flags (percent
// --gc-percent, limit --memory-limit; 0 when not given, a negative
// percent is Off), else GOGC and GOMEMLIMIT from the environment (which
// the runtime has applied already), else defaultPercent and 90% of the
// cgroup memory limit found under cgroupRoot (normally /sys/fs/cgroup),
// if there is one.
func Resolve(percent int, limit int64, defaultPercent int, getenv func(string) string, cgroupRoot string) Settings {
	var s Settings
	switch {
	case percent < 0:
		s.Percent, s.PercentFrom = Off, "--gc-percent"
	case percent > 0:
		s.Percent, s.PercentFrom = percent, "--gc-percent"
	case getenv("GOGC") != "":
		s.PercentFrom = "GOGC"
	default:
		s.Percent, s.PercentFrom = defaultPercent, "default"
	}
	switch {
	case limit > 0:
		s.MemoryLimit, s.LimitFrom = limit, "--memory-limit"
	case getenv("GOMEMLIMIT") != "":
		s.LimitFrom = "GOMEMLIMIT"
	default:
		if l, ok := CgroupMemoryLimit(cgroupRoot); ok {
			s.MemoryLimit, s.LimitFrom = l/10*9, "90% of the cgroup memory limit"
		} else {
			s.LimitFrom = "none (no cgroup memory limit)"
		}
	}
	return s
}

// Apply sets s in the runtime (process-wide) and returns a func that
// restores the previous settings.
func (s Settings) Apply() (restore func()) {
	prevPercent, prevLimit := -2, int64(-1)
	if s.Percent != 0 {
		prevPercent = debug.SetGCPercent(max(s.Percent, Off))
	}
	if s.MemoryLimit > 0 {
		prevLimit = debug.SetMemoryLimit(s.MemoryLimit)
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

// CgroupMemoryLimit returns the memory limit of this process's cgroup (the
// smallest along its path; cgroup v2, else v1) under root (normally
// /sys/fs/cgroup).
func CgroupMemoryLimit(root string) (int64, bool) {
	f, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	return cgroupLimitFrom(f, root)
}

// cgroupLimitFrom is CgroupMemoryLimit over the contents of
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
