package configsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/procfs"
	"github.com/podkit/podkit/internal/retry"
)

// reloader tells the application to read its configuration again.
type reloader interface {
	reload(ctx context.Context) error
	String() string
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"ILL": syscall.SIGILL, "TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT,
	"BUS": syscall.SIGBUS, "FPE": syscall.SIGFPE, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV, "USR2": syscall.SIGUSR2,
	"PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM,
	"CHLD": syscall.SIGCHLD, "CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP,
	"TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU,
	"URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ,
	"VTALRM": syscall.SIGVTALRM, "PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH,
	"IO": syscall.SIGIO, "SYS": syscall.SIGSYS,
}

// parseSignal accepts a signal name with or without "SIG", any case, or a
// number from 1 to 64.
func parseSignal(s string) (syscall.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	name = strings.TrimPrefix(name, "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 1 && n <= 64 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("%q is not a signal name (HUP, USR1, USR2, TERM, ...) or number", s)
}

// signalReloader signals the processes named by name or pidFile.
type signalReloader struct {
	sig     syscall.Signal
	sigName string
	name    string
	pidFile string
	self    int
	proc    string // /proc, for tests
}

func (r *signalReloader) String() string {
	if r.pidFile != "" {
		return "signal " + r.sigName + " to the PID in " + r.pidFile
	}
	return "signal " + r.sigName + " to processes named " + strconv.Quote(r.name)
}

func (r *signalReloader) reload(ctx context.Context) error {
	var pids []int
	if r.pidFile != "" {
		b, err := os.ReadFile(r.pidFile)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: --pid-file %s does not exist", ErrNoProcess, r.pidFile)
		}
		if err != nil {
			return fmt.Errorf("--pid-file: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return fmt.Errorf("--pid-file %s: %q is not a PID", r.pidFile, strings.TrimSpace(string(b)))
		}
		if pid == r.self {
			return fmt.Errorf("--pid-file %s: holds config-sync's own PID %d", r.pidFile, pid)
		}
		pids = []int{pid}
	} else {
		procs, err := findProcesses(r.procDir(), r.name, r.self)
		if err != nil {
			return err
		}
		if len(procs) == 0 {
			return fmt.Errorf("%w: no process named %q is visible (is the PID namespace shared with the app's container?)", ErrNoProcess, r.name)
		}
		for _, p := range procs {
			pids = append(pids, p.pid)
		}
	}
	var errs []error
	for _, pid := range pids {
		err := syscall.Kill(pid, r.sig)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ESRCH):
			if r.pidFile != "" {
				errs = append(errs, fmt.Errorf("%w: PID %d from --pid-file %s is not running", ErrNoProcess, pid, r.pidFile))
			}
			// A match that exited since the scan: nothing to reload.
		case errors.Is(err, syscall.EPERM):
			errs = append(errs, fmt.Errorf("signal %s to PID %d: %v (%s; run config-sync as the same user as the app, or grant it CAP_KILL)", r.sigName, pid, err, ownerHint(r.procDir(), pid)))
		default:
			errs = append(errs, fmt.Errorf("signal %s to PID %d: %w", r.sigName, pid, err))
		}
	}
	return errors.Join(errs...)
}

func (r *signalReloader) procDir() string {
	if r.proc != "" {
		return r.proc
	}
	return "/proc"
}

func ownerHint(proc string, pid int) string {
	fi, err := os.Stat(filepath.Join(proc, strconv.Itoa(pid)))
	if err != nil {
		return "its owner is unknown"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("it runs as uid %d, config-sync as uid %d", st.Uid, os.Geteuid())
	}
	return "its owner is unknown"
}

// proc is one process seen in /proc.
type proc struct {
	pid, ppid int
	state     byte
	comm      string
	argv0     string
}

// findProcesses returns the processes named name, except self and
// zombies, keeping only the top-most of each tree of matches (a process
// whose parent also matches is left out: nginx's master is signalled, not
// its workers).
func findProcesses(procDir, name string, self int) ([]proc, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	matched := map[int]proc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		p, err := readProc(procDir, pid)
		if err != nil {
			continue // exited since the listing, or not ours to read
		}
		if p.state == 'Z' || p.state == 'X' || !matchName(name, p.comm, p.argv0) {
			continue
		}
		matched[pid] = p
	}
	var out []proc
	for _, p := range matched {
		if _, parentMatches := matched[p.ppid]; !parentMatches {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out, nil
}

// commLen is the longest name the kernel keeps in /proc/PID/comm.
const commLen = 15

// matchName reports whether a process with this comm and argv[0] is name:
// argv[0]'s base name equals it, or comm does. The kernel cuts comm to 15
// bytes, so a longer name is matched on argv[0], and on its first 15 bytes
// only when there is no argv[0] to tell. A name with a slash must equal
// argv[0].
func matchName(name, comm, argv0 string) bool {
	if name == "" {
		return false
	}
	if strings.Contains(name, "/") {
		return argv0 == name
	}
	if argv0 != "" && filepath.Base(argv0) == name {
		return true
	}
	if len(name) > commLen {
		return argv0 == "" && comm == name[:commLen]
	}
	return comm == name
}

func readProc(procDir string, pid int) (proc, error) {
	dir := filepath.Join(procDir, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return proc{}, err
	}
	st, err := procfs.ParseStatHead(b)
	if err != nil {
		return proc{}, err
	}
	p := proc{pid: pid, ppid: st.PPID, state: st.State, comm: st.Comm}
	if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		p.comm = strings.TrimSuffix(string(comm), "\n")
	}
	if cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.argv0 = procfs.Argv0(cmdline)
	}
	return p, nil
}

// httpReloader requests a URL, retrying with exponential backoff (200ms,
// doubling, at most 5s).
type httpReloader struct {
	url     string
	method  string
	expect  int
	retries int
	timeout time.Duration
	client  *http.Client
	backoff time.Duration // first retry delay (default 200ms), doubled up to 5s
}

func (r *httpReloader) String() string {
	return r.method + " " + container.RedactURL(r.url)
}

func (r *httpReloader) reload(ctx context.Context) error {
	req := retry.Request{Client: r.client, Method: r.method, URL: r.url, Timeout: r.timeout}
	if r.expect != 0 {
		req.Accept = func(status int) bool { return status == r.expect }
	}
	attempts := r.retries + 1
	n, err := req.Do(ctx, retry.Policy{Initial: r.backoff, Max: 5 * time.Second, Attempts: attempts})
	if err == nil {
		return nil
	}
	err = r.describe(err)
	if n < attempts && ctx.Err() != nil {
		return fmt.Errorf("%w (stopped retrying: %v)", err, ctx.Err())
	}
	return fmt.Errorf("%w (after %d attempts)", err, attempts)
}

// describe names the request in a failed attempt's error, and for a
// refused answer what was wanted and the start of what came.
func (r *httpReloader) describe(err error) error {
	var se *retry.StatusError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", r, unwrapURLError(err))
	}
	msg := strings.TrimSpace(string(se.Body))
	if msg != "" {
		msg = ": " + oneLine(msg)
	}
	want := "a 2xx status"
	if r.expect != 0 {
		want = strconv.Itoa(r.expect)
	}
	return fmt.Errorf("%s answered %s, want %s%s", r, se.Status, want, msg)
}
