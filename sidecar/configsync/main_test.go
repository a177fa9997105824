//go:build linux

package configsync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// roleEnv switches the test binary into another program, so tests can run
// real processes without building anything else:
//
//	hupapp: an application that reads its config file at start and on every
//	        SIGHUP, and records what it read (see runHupApp);
//	podkit: `podkit config-sync` itself (cli.Main with this package's
//	        command).
const roleEnv = "CONFIGSYNC_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "hupapp":
		os.Exit(runHupApp(os.Args[1:]))
	case "bindmount":
		os.Exit(runBindMount(os.Args[1:]))
	case "podkit":
		stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		os.Exit(cli.Main(context.Background(), []cli.Command{Command()}, os.Args[1:], stdio))
	}
	os.Exit(m.Run())
}

// runHupApp: args CONFIG STATE [spawn-child]. It writes STATE (atomically)
// as "<reloads>\n<config content>" at start and after each SIGHUP; with
// spawn-child it first starts a copy of itself (same name) writing
// STATE.child, like nginx's master and workers.
func runHupApp(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "hupapp: CONFIG STATE [spawn-child]")
		return 2
	}
	cfg, state := args[0], args[1]
	hup := make(chan os.Signal, 8)
	signal.Notify(hup, syscall.SIGHUP)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	var child *exec.Cmd
	if len(args) > 2 && args[2] == "spawn-child" {
		child = exec.Command(os.Args[0], cfg, state+".child")
		child.Env = os.Environ()
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "hupapp:", err)
			return 1
		}
	}
	reloads := 0
	record := func() {
		b, err := os.ReadFile(cfg)
		if err != nil {
			b = []byte("ERROR " + err.Error())
		}
		tmp := state + ".tmp"
		os.WriteFile(tmp, append([]byte(strconv.Itoa(reloads)+"\n"), b...), 0o644)
		os.Rename(tmp, state)
	}
	record()
	for {
		select {
		case <-hup:
			reloads++
			record()
		case <-term:
			if child != nil {
				child.Process.Signal(syscall.SIGTERM)
				child.Wait()
			}
			return 0
		}
	}
}

// startHupApp starts the test binary as a hupapp under a unique process
// name (a symlink's name becomes /proc/PID/comm) and waits for its first
// state file.
func startHupApp(t *testing.T, name, cfg, state string, extra ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, append([]string{cfg, state}, extra...)...)
	cmd.Env = append(os.Environ(), roleEnv+"=hupapp")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	testdeps.WaitFor(t, "the app's first state file", func() bool { _, err := os.Stat(state); return err == nil })
	if len(extra) > 0 {
		testdeps.WaitFor(t, "the child's first state file", func() bool { _, err := os.Stat(state + ".child"); return err == nil })
	}
	return cmd
}

// readState returns a hupapp's reload count and the config it last read.
func readState(t *testing.T, state string) (int, string) {
	t.Helper()
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	n, rest, _ := strings.Cut(string(b), "\n")
	c, err := strconv.Atoi(n)
	if err != nil {
		t.Fatalf("state %q: %v", b, err)
	}
	return c, rest
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newSyncer builds a Syncer whose logs go to the returned buffer.
func newSyncer(t *testing.T, cfg Config) (*Syncer, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, logs
}

// hosted is a Syncer running under the container contract.
type hosted struct {
	admin string
	logs  *logBuffer
	stop  func() error
}

// runHosted runs s under container.Run with an admin listener on a free
// port, and stops it when the test ends.
func runHosted(t *testing.T, s *Syncer) *hosted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	o := container.DefaultOptions()
	o.AdminListener = ln
	o.AdminAddr = ln.Addr().String()
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- container.Run(ctx, s, o) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(10 * time.Second):
				runErr = fmt.Errorf("config-sync did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	return &hosted{admin: "http://" + ln.Addr().String(), logs: logs, stop: stop}
}

// get returns the status and body of an admin endpoint.
func (h *hosted) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(h.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fileIs(name, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(name)
		return err == nil && string(b) == want
	}
}
