// Package procfs parses the files of Linux's /proc that podkit reads:
// /proc/PID/stat, /proc/PID/status, /proc/PID/cmdline, and /proc/stat's
// boot time and /proc/uptime. topz lists a pod's processes with it and
// config-sync finds the process to signal.
//
// These files are partly controlled by other processes: a process chooses
// its own comm name (up to 15 bytes, spaces, parentheses and newlines
// included) and rewrites its command line at will. The parsers never
// panic, and report malformed input with an error that wraps ErrMalformed
// and names the field. They parse bytes, so they build and are tested on
// every platform; reading /proc is the caller's business.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed")

// Stat is what podkit takes from /proc/PID/stat.
type Stat struct {
	PID       int
	Comm      string
	State     byte
	PPID      int
	UTime     uint64 // clock ticks
	STime     uint64 // clock ticks
	Threads   int
	StartTime uint64 // clock ticks after boot
	RSSPages  int64
}

// ParseStat parses /proc/PID/stat, every field of Stat. The comm field is
// enclosed in parentheses and may itself contain spaces and parentheses,
// so it runs from the first '(' to the last ')'.
func ParseStat(b []byte) (Stat, error) {
	s, rest, err := parseHead(b)
	if err != nil {
		return s, err
	}
	// rest[0] is field 3 (state); field n is rest[n-3].
	const need = 24 - 3 + 1
	if len(rest) < need {
		return s, fmt.Errorf("stat: %w: %d fields after comm, want at least %d", ErrMalformed, len(rest), need)
	}
	fields := []struct {
		name string
		n    int
		dst  any
	}{
		{"utime", 14, &s.UTime},
		{"stime", 15, &s.STime},
		{"num_threads", 20, &s.Threads},
		{"starttime", 22, &s.StartTime},
		{"rss", 24, &s.RSSPages},
	}
	for _, f := range fields {
		v := rest[f.n-3]
		switch d := f.dst.(type) {
		case *int:
			n, err := strconv.Atoi(v)
			if err != nil {
				return s, fmt.Errorf("stat: %w: %s %q", ErrMalformed, f.name, v)
			}
			*d = n
		case *uint64:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return s, fmt.Errorf("stat: %w: %s %q", ErrMalformed, f.name, v)
			}
			*d = n
		case *int64:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return s, fmt.Errorf("stat: %w: %s %q", ErrMalformed, f.name, v)
			}
			*d = n
		}
	}
	return s, nil
}

// ParseStatHead parses the head of /proc/PID/stat: PID, Comm, State and
// PPID, the process tree; the other fields of Stat are left zero and may
// be missing.
func ParseStatHead(b []byte) (Stat, error) {
	s, _, err := parseHead(b)
	return s, err
}

// parseHead parses pid, comm, state and ppid and returns the fields from
// state on.
func parseHead(b []byte) (Stat, []string, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return s, nil, fmt.Errorf("stat: %w: no (comm) field", ErrMalformed)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid < 0 {
		return s, nil, fmt.Errorf("stat: %w: pid %q", ErrMalformed, clip(b[:open]))
	}
	s.PID = pid
	s.Comm = string(b[open+1 : end])
	rest := strings.Fields(string(b[end+1:]))
	if len(rest) < 2 {
		return s, nil, fmt.Errorf("stat: %w: %d fields after comm, want at least 2 (state and ppid)", ErrMalformed, len(rest))
	}
	if len(rest[0]) != 1 {
		return s, nil, fmt.Errorf("stat: %w: state %q", ErrMalformed, rest[0])
	}
	s.State = rest[0][0]
	ppid, err := strconv.Atoi(rest[1])
	if err != nil {
		return s, nil, fmt.Errorf("stat: %w: ppid %q", ErrMalformed, rest[1])
	}
	s.PPID = ppid
	return s, rest, nil
}

// Status is what podkit takes from /proc/PID/status.
type Status struct {
	Name     string
	UID      int   // effective uid; -1 if absent
	RSSBytes int64 // -1 if absent (kernel threads)
	Threads  int   // -1 if absent
}

// ParseStatus parses /proc/PID/status ("Key:\tvalue" lines). A file
// without a Uid line is malformed.
func ParseStatus(b []byte) (Status, error) {
	st := Status{UID: -1, RSSBytes: -1, Threads: -1}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		switch string(key) {
		case "Name":
			st.Name = unescapeName(strings.TrimSpace(string(val)))
		case "Uid":
			f := strings.Fields(string(val))
			if len(f) < 2 {
				return st, fmt.Errorf("status: %w: Uid %q", ErrMalformed, clip(val))
			}
			n, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil {
				return st, fmt.Errorf("status: %w: Uid %q", ErrMalformed, clip(val))
			}
			st.UID = int(n)
		case "VmRSS":
			f := strings.Fields(string(val))
			if len(f) != 2 || f[1] != "kB" {
				return st, fmt.Errorf("status: %w: VmRSS %q", ErrMalformed, clip(val))
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || n < 0 || n > 1<<50 {
				return st, fmt.Errorf("status: %w: VmRSS %q", ErrMalformed, clip(val))
			}
			st.RSSBytes = n * 1024
		case "Threads":
			n, err := strconv.Atoi(strings.TrimSpace(string(val)))
			if err != nil || n < 0 {
				return st, fmt.Errorf("status: %w: Threads %q", ErrMalformed, clip(val))
			}
			st.Threads = n
		}
	}
	if st.UID < 0 {
		return st, fmt.Errorf("status: %w: no Uid line", ErrMalformed)
	}
	return st, nil
}

// unescapeName undoes the kernel's escaping of the Name field in status
// ("\n" for a newline, "\\" for a backslash).
func unescapeName(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\n`, "\n", `\\`, `\`).Replace(s)
}

// ParseCmdline splits /proc/PID/cmdline (NUL-separated arguments; a
// process may rewrite it into one space-separated string). An empty
// command line (a kernel thread, a zombie) is nil.
func ParseCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// Argv0 returns the first argument of /proc/PID/cmdline as it is, without
// splitting the rest ("" for an empty command line).
func Argv0(b []byte) string {
	argv0, _, _ := bytes.Cut(b, []byte{0})
	return string(argv0)
}

// ParseBootTime returns btime (seconds since the epoch) from /proc/stat.
func ParseBootTime(b []byte) (int64, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("stat: %w: btime %q", ErrMalformed, clip(v))
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("stat: %w: no btime line", ErrMalformed)
}

// ParseUptime returns the first field of /proc/uptime, in seconds.
func ParseUptime(b []byte) (float64, error) {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("uptime: %w: empty", ErrMalformed)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 || v != v || v > 1e12 {
		return 0, fmt.Errorf("uptime: %w: %q", ErrMalformed, clip([]byte(f[0])))
	}
	return v, nil
}

// clip shortens b for an error message.
func clip(b []byte) string {
	const max = 40
	b = bytes.TrimSpace(b)
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
