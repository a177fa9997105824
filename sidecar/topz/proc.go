package topz

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podkit/podkit/internal/procfs"
)

// userHZ is the unit of the clock-tick fields in /proc/PID/stat. It is part
// of the kernel's ABI (USER_HZ) and is 100 on every architecture Go
// supports, whatever the kernel's internal HZ.
const userHZ = 100

// maxFileSize bounds what topz reads from any one /proc or passwd file.
const maxFileSize = 1 << 20

// Process is one process visible in the PID namespace.
type Process struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	UID  int    `json:"uid"`
	User string `json:"user"` // name from the process's own /etc/passwd, else topz's, else the uid
	// State is the one-letter state ps shows (R, S, D, Z, T, I, ...).
	State     string `json:"state"`
	StateName string `json:"state_name"`
	// CPUPercent is the CPU used over the snapshot's window, in percent of
	// one CPU (a busy process with two threads can show 200).
	CPUPercent float64 `json:"cpu_percent"`
	// CPUSeconds is the CPU time (user + system) used since it started.
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSBytes   int64   `json:"rss_bytes"`
	Threads    int     `json:"threads"`
	// FDs is the number of open file descriptors, -1 when /proc/PID/fd
	// cannot be read (another user's process; see Notes).
	FDs       int       `json:"fds"`
	StartTime time.Time `json:"start_time"`
	Comm      string    `json:"comm"`
	Cmdline   []string  `json:"cmdline"`
	// Command is the command line joined with spaces, or "[comm]" when the
	// command line is empty (kernel threads, zombies).
	Command   string    `json:"command"`
	Container Container `json:"container"`
	// Self marks topz's own process.
	Self  bool     `json:"self,omitempty"`
	Notes []string `json:"notes,omitempty"`

	ticks      uint64
	startTicks uint64
}

// Snapshot is one scan of the proc root.
type Snapshot struct {
	// Time is when the scan ran.
	Time time.Time
	// Window is the span CPUPercent is averaged over: the time since the
	// previous scan. Zero means no previous scan: each process's CPU% is
	// then its average since it started, as ps shows.
	Window time.Duration
	// Took is how long the scan took.
	Took      time.Duration
	Processes []Process // sorted by pid
	// SelfPID is topz's own pid as the proc root numbers it (0: unknown).
	SelfPID int
	// ParseErrors counts files that could not be parsed in this scan.
	ParseErrors int
}

// OnlyOwn reports whether the only processes visible are topz itself and
// its ancestors (an init or shell in its own container): the PID namespace
// is then probably not shared with the application.
func (s *Snapshot) OnlyOwn() bool {
	if s.SelfPID == 0 || len(s.Processes) == 0 {
		return false
	}
	byPID := make(map[int]*Process, len(s.Processes))
	for i := range s.Processes {
		byPID[s.Processes[i].PID] = &s.Processes[i]
	}
	own := map[int]bool{}
	for pid, n := s.SelfPID, 0; pid > 0 && n < len(s.Processes); n++ {
		p, ok := byPID[pid]
		if !ok {
			break
		}
		own[pid] = true
		pid = p.PPID
	}
	return own[s.SelfPID] && len(own) == len(s.Processes)
}

// cpuMark is a process's CPU time at the previous scan; starttime tells a
// reused pid from the same process.
type cpuMark struct{ start, ticks uint64 }

// scanner reads the proc root. It is not safe for concurrent use.
type scanner struct {
	root  string
	users *userResolver

	bootTime int64 // seconds since the epoch; 0 until read
	prev     map[int]cpuMark
	prevUp   float64
	havePrev bool
	now      func() time.Time
}

func newScanner(root, passwd string) *scanner {
	return &scanner{root: root, users: newUserResolver(root, passwd), now: time.Now}
}

// errVanished marks a process that exited while it was being read.
var errVanished = errors.New("process vanished")

// scan reads every process under the proc root. Files that cannot be
// parsed are counted by name in parseErrs and noted on the process; only a
// proc root that cannot be read at all is an error.
func (s *scanner) scan() (*Snapshot, map[string]int, error) {
	start := time.Now()
	parseErrs := map[string]int{}
	if s.bootTime == 0 {
		b, err := readFile(filepath.Join(s.root, "stat"))
		if err != nil {
			return nil, parseErrs, fmt.Errorf("--proc %s: %w", s.root, err)
		}
		if s.bootTime, err = procfs.ParseBootTime(b); err != nil {
			parseErrs["stat"]++
			return nil, parseErrs, fmt.Errorf("--proc %s: %w", s.root, err)
		}
	}
	upB, err := readFile(filepath.Join(s.root, "uptime"))
	if err != nil {
		return nil, parseErrs, fmt.Errorf("--proc %s: %w", s.root, err)
	}
	uptime, err := procfs.ParseUptime(upB)
	if err != nil {
		parseErrs["uptime"]++
		return nil, parseErrs, fmt.Errorf("--proc %s: %w", s.root, err)
	}
	d, err := os.Open(s.root)
	if err != nil {
		return nil, parseErrs, fmt.Errorf("--proc: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, parseErrs, fmt.Errorf("--proc: reading %s: %w", s.root, err)
	}
	snap := &Snapshot{Time: s.now(), SelfPID: s.selfPID()}
	s.users.beginScan()
	window := 0.0
	if s.havePrev {
		window = uptime - s.prevUp
	}
	next := make(map[int]cpuMark, len(names))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		p, err := s.readProcess(pid, parseErrs)
		if err != nil {
			continue // vanished, or stat unparseable (counted)
		}
		p.Self = pid == snap.SelfPID
		p.StartTime = time.Unix(s.bootTime, 0).Add(time.Duration(p.startTicks) * time.Second / userHZ).UTC()
		next[pid] = cpuMark{start: p.startTicks, ticks: p.ticks}
		age := uptime - float64(p.startTicks)/userHZ
		used := float64(p.ticks) / userHZ
		// A process the previous scan saw: CPU over the window. A new one
		// (or the first scan): its average since it started.
		if m, ok := s.prev[pid]; ok && m.start == p.startTicks && window > 0 && p.ticks >= m.ticks {
			used = float64(p.ticks-m.ticks) / userHZ
			age = window
		}
		if age > 0 {
			p.CPUPercent = round1(100 * used / age)
		}
		snap.Processes = append(snap.Processes, p)
	}
	sort.Slice(snap.Processes, func(i, j int) bool { return snap.Processes[i].PID < snap.Processes[j].PID })
	if window > 0 {
		snap.Window = time.Duration(window * float64(time.Second)).Round(time.Millisecond)
	}
	s.prev, s.prevUp, s.havePrev = next, uptime, true
	for _, n := range parseErrs {
		snap.ParseErrors += n
	}
	snap.Took = time.Since(start)
	return snap, parseErrs, nil
}

func (s *scanner) selfPID() int {
	t, err := os.Readlink(filepath.Join(s.root, "self"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(filepath.Base(t))
	if err != nil {
		return 0
	}
	return pid
}

func (s *scanner) readProcess(pid int, parseErrs map[string]int) (Process, error) {
	dir := filepath.Join(s.root, strconv.Itoa(pid))
	var p Process
	b, err := readFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, errVanished
	}
	st, err := procfs.ParseStat(b)
	if err != nil {
		parseErrs["stat"]++
		return p, err
	}
	p.PID, p.PPID, p.Comm = pid, st.PPID, st.Comm
	p.State = string(st.State)
	p.StateName = stateName(st.State)
	p.Threads = st.Threads
	p.ticks = st.UTime + st.STime
	p.startTicks = st.StartTime
	p.CPUSeconds = float64(p.ticks) / userHZ
	p.RSSBytes = st.RSSPages * int64(os.Getpagesize())
	p.UID = -1

	if b, err := readFile(filepath.Join(dir, "status")); gone(err) {
		return p, errVanished
	} else if err != nil {
		p.Notes = append(p.Notes, "status: "+errText(err))
	} else if ss, err := procfs.ParseStatus(b); err != nil {
		parseErrs["status"]++
		p.Notes = append(p.Notes, err.Error())
	} else {
		p.UID = ss.UID
		if ss.RSSBytes >= 0 {
			p.RSSBytes = ss.RSSBytes
		}
		if ss.Threads >= 0 {
			p.Threads = ss.Threads
		}
		if ss.Name != "" {
			p.Comm = ss.Name
		}
	}
	if p.UID >= 0 {
		p.User = s.users.name(pid, p.UID)
	} else {
		p.User = "?"
	}

	if b, err := readFile(filepath.Join(dir, "cmdline")); gone(err) {
		return p, errVanished
	} else if err != nil {
		p.Notes = append(p.Notes, "cmdline: "+errText(err))
	} else {
		p.Cmdline = procfs.ParseCmdline(b)
	}
	p.Command = strings.Join(p.Cmdline, " ")
	if p.Command == "" {
		p.Command = "[" + p.Comm + "]"
		if st.State == 'Z' {
			p.Command += " <defunct>"
		}
	}

	if b, err := readFile(filepath.Join(dir, "cgroup")); gone(err) {
		return p, errVanished
	} else if err != nil {
		p.Notes = append(p.Notes, "cgroup: "+errText(err))
	} else if c, err := parseCgroup(b); err != nil {
		parseErrs["cgroup"]++
		p.Notes = append(p.Notes, err.Error())
	} else {
		p.Container = c
	}

	p.FDs = -1
	if n, err := countFDs(filepath.Join(dir, "fd")); gone(err) {
		return p, errVanished
	} else if err != nil {
		p.Notes = append(p.Notes, "fds: "+errText(err))
	} else {
		p.FDs = n
	}
	return p, nil
}

// gone reports whether err means the process exited while being read.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// errText says why a /proc file could not be read, in a line for a note.
func errText(err error) string {
	if errors.Is(err, fs.ErrPermission) {
		return "permission denied (another user's process: run topz as that user, or as root / with CAP_SYS_PTRACE)"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFileSize))
}

// countFDs counts the descriptors (numeric entries) in a /proc/PID/fd
// directory.
func countFDs(path string) (int, error) {
	d, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if _, err := strconv.Atoi(name); err == nil {
				n++
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func stateName(s byte) string {
	switch s {
	case 'R':
		return "running"
	case 'S':
		return "sleeping"
	case 'D':
		return "disk sleep"
	case 'Z':
		return "zombie"
	case 'T':
		return "stopped"
	case 't':
		return "tracing stop"
	case 'X', 'x':
		return "dead"
	case 'I':
		return "idle"
	case 'P':
		return "parked"
	case 'W':
		return "paging"
	case 'K':
		return "wakekill"
	}
	return "unknown"
}

func round1(v float64) float64 {
	return float64(int64(v*10+0.5)) / 10
}
