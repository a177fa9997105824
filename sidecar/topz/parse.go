package topz

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The parsers in this file read files under /proc (and /etc/passwd) that
// other processes control in part: a process chooses its own comm name (up
// to 15 bytes, spaces, parentheses and newlines included), its command line
// and, in another container, its /etc/passwd. They never panic and report
// malformed input with an error naming the field.

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed")

// statInfo is what topz takes from /proc/PID/stat.
type statInfo struct {
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

// parseStat parses /proc/PID/stat. The comm field is enclosed in
// parentheses and may itself contain spaces and parentheses, so it runs
// from the first '(' to the last ')'.
func parseStat(b []byte) (statInfo, error) {
	var s statInfo
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return s, fmt.Errorf("stat: %w: no (comm) field", ErrMalformed)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid < 0 {
		return s, fmt.Errorf("stat: %w: pid %q", ErrMalformed, clip(b[:open]))
	}
	s.PID = pid
	s.Comm = string(b[open+1 : end])
	rest := strings.Fields(string(b[end+1:]))
	// rest[0] is field 3 (state); field n is rest[n-3].
	const need = 24 - 3 + 1
	if len(rest) < need {
		return s, fmt.Errorf("stat: %w: %d fields after comm, want at least %d", ErrMalformed, len(rest), need)
	}
	if len(rest[0]) != 1 {
		return s, fmt.Errorf("stat: %w: state %q", ErrMalformed, rest[0])
	}
	s.State = rest[0][0]
	fields := []struct {
		name string
		n    int
		dst  any
	}{
		{"ppid", 4, &s.PPID},
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

// statusInfo is what topz takes from /proc/PID/status.
type statusInfo struct {
	Name     string
	UID      int   // effective uid; -1 if absent
	RSSBytes int64 // -1 if absent (kernel threads)
	Threads  int   // -1 if absent
}

// parseStatus parses /proc/PID/status ("Key:\tvalue" lines).
func parseStatus(b []byte) (statusInfo, error) {
	st := statusInfo{UID: -1, RSSBytes: -1, Threads: -1}
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

// parseCmdline splits /proc/PID/cmdline (NUL-separated arguments; a
// process may rewrite it into one space-separated string).
func parseCmdline(b []byte) []string {
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

// parseBootTime returns btime (seconds since the epoch) from /proc/stat.
func parseBootTime(b []byte) (int64, error) {
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

// parseUptime returns the first field of /proc/uptime, in seconds.
func parseUptime(b []byte) (float64, error) {
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

// parsePasswd maps uid to user name from an /etc/passwd file. Malformed
// lines are skipped: the file belongs to another container and a bad line
// must not hide the good ones.
func parsePasswd(b []byte) map[int]string {
	users := map[int]string{}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := bytes.SplitN(line, []byte{':'}, 4)
		if len(f) < 4 || len(f[0]) == 0 || len(f[0]) > 64 {
			continue
		}
		uid, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := users[int(uid)]; !dup {
			users[int(uid)] = string(f[0])
		}
	}
	return users
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
