package logs

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

// waitExit waits for the process to exit on its own.
func waitExit(t *testing.T, p *proc, what string) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: did not exit", what)
		return nil
	}
}

// TestFilesNoMatch: a --files glob that matches nothing is a warning naming
// it; with --exit-on-eof, a failure (non-zero, naming the pattern) rather
// than a silent exit 0 with no output. Without --exit-on-eof the file is
// picked up when it appears.
func TestFilesNoMatch(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "app.log")
	os.WriteFile(real, []byte("one\n"), 0o644)
	typo := filepath.Join(dir, "typo.log")

	t.Run("exit-on-eof", func(t *testing.T) {
		for _, globs := range [][]string{{typo}, {real, filepath.Join(dir, "typo*.log")}} {
			var args []string
			for _, g := range globs {
				args = append(args, "--files", g)
			}
			p := startLogs(t, filepath.Join(t.TempDir(), "out"), nil, append(args, "--exit-on-eof", "--admin-addr", "off")...)
			err := waitExit(t, p, "--exit-on-eof")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("%v: exit %v, want non-zero\n%s", globs, err, p.stderr)
			}
			if bad := globs[len(globs)-1]; !strings.Contains(p.stderr.String(), "--files "+`\"`+bad+`\"`) &&
				!strings.Contains(p.stderr.String(), "--files \""+bad+"\"") {
				t.Fatalf("stderr does not name the pattern %q:\n%s", bad, p.stderr)
			}
		}
	})

	t.Run("follow", func(t *testing.T) {
		later := filepath.Join(t.TempDir(), "later.log")
		out := filepath.Join(t.TempDir(), "out")
		p := startLogs(t, out, nil, "--files", later, "--scan-interval", "50ms", "--admin-addr", "off")
		testdeps.WaitFor(t, "a warning naming the pattern", func() bool {
			s := p.stderr.String()
			return strings.Contains(s, "level=WARN") && strings.Contains(s, later)
		})
		os.WriteFile(later, []byte("hello\n"), 0o644)
		testdeps.WaitFor(t, "the file to be read once it exists", func() bool {
			evs := readEvents(t, out)
			return len(evs) == 1 && evs[0].Body == "hello"
		})
		p.stop(t)
	})
}

// TestStdinFilterWithoutAdminPort: `podkit logs < file` is a filter, and
// `--files ... --exit-on-eof` a batch run: neither needs, and so neither
// takes, the admin port; with the default 127.0.0.1:9901 taken they still
// work. An explicit --admin-addr is still honoured (and then its failure
// is an error).
func TestStdinFilterWithoutAdminPort(t *testing.T) {
	ln, err := net.Listen("tcp", container.DefaultAdminAddr)
	if err == nil {
		defer ln.Close()
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("cannot take %s: %v", container.DefaultAdminAddr, err)
	} // else someone else holds it: taken either way

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p := startLogs(t, out, strings.NewReader("a\nb\n"))
	if err := waitExit(t, p, "filter"); err != nil {
		t.Fatalf("filter with the default admin port taken: %v\n%s", err, p.stderr)
	}
	if evs := readEvents(t, out); len(evs) != 2 || evs[1].Body != "b" {
		t.Fatalf("events %+v", evs)
	}

	// A batch run (--files with --exit-on-eof) ends by itself too.
	in := filepath.Join(dir, "in.log")
	os.WriteFile(in, []byte("c\n"), 0o644)
	out = filepath.Join(dir, "out-batch")
	p = startLogs(t, out, nil, "--files", in, "--exit-on-eof")
	if err := waitExit(t, p, "batch"); err != nil {
		t.Fatalf("batch run with the default admin port taken: %v\n%s", err, p.stderr)
	}
	if evs := readEvents(t, out); len(evs) != 1 || evs[0].Body != "c" {
		t.Fatalf("events %+v", evs)
	}

	// An explicit --admin-addr is honoured: on a port that is taken (one
	// this test holds, as 9901 may be released by whoever else holds it),
	// the run fails.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	p = startLogs(t, filepath.Join(dir, "out2"), strings.NewReader("a\n"), "--admin-addr", held.Addr().String())
	var ee *exec.ExitError
	if err := waitExit(t, p, "explicit admin"); !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("explicit --admin-addr on a taken port: exit %v, want a failure\n%s", err, p.stderr)
	}

	// An explicit, free admin address is served while the filter runs.
	admin := freeAddr(t)
	pr, pw, _ := os.Pipe()
	defer pw.Close()
	p = startLogs(t, filepath.Join(dir, "out3"), pr, "--admin-addr", admin)
	pr.Close()
	testdeps.WaitFor(t, "the explicit admin listener", func() bool {
		resp, err := http.Get("http://" + admin + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	pw.Close()
	if err := waitExit(t, p, "filter with admin"); err != nil {
		t.Fatalf("exit %v\n%s", err, p.stderr)
	}
}

// TestSlowlogStartNoWarning: a normal start against a working Redis logs
// no warning: the health check reports the first poll's result, not "not
// polled yet".
func TestSlowlogStartNoWarning(t *testing.T) {
	addr := testdeps.StartRedis(t)
	if addr == "" {
		return
	}
	dir := t.TempDir()
	admin := freeAddr(t)
	p := startLogs(t, filepath.Join(dir, "out"), nil, "--redis-slowlog", addr, "--every", "200ms", "--admin-addr", admin)
	testdeps.WaitFor(t, "the slowlog check to pass", func() bool {
		return metricValue(t, admin, `podkit_check_ok{check="redis-slowlog `+addr+`"}`) == "1"
	})
	p.stop(t)
	if s := p.stderr.String(); strings.Contains(s, "level=WARN") {
		t.Fatalf("a normal start logged a warning:\n%s", s)
	}
}

// TestSlowlogPasswordNotOwnAuth: with --redis-password-file (the docs'
// command) against a server that logs every command, the poller's own
// AUTH — sent before it can name its connection — is not written; another
// client's commands are.
func TestSlowlogPasswordNotOwnAuth(t *testing.T) {
	addr := testdeps.StartRedis(t, "--requirepass", "s3cret", "--slowlog-log-slower-than", "0")
	if addr == "" {
		return
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "redis")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	out := filepath.Join(dir, "out")
	p := startLogs(t, out, nil, "--redis-slowlog", addr, "--every", "100ms", "--redis-password-file", pw, "--admin-addr", "off")
	c, err := resp.Dial(context.Background(), "tcp", addr, resp.DialOptions{Password: "s3cret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(context.Background(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	testdeps.WaitFor(t, "the SET entry", func() bool {
		for _, ev := range readEvents(t, out) {
			if ev.Body == "SET k v" {
				return true
			}
		}
		return false
	})
	p.stop(t)
	auths := 0
	for _, ev := range readEvents(t, out) {
		if ev.Attributes["redis.command"] == "AUTH" {
			auths++
		}
	}
	if auths != 1 { // the test client's own AUTH only
		t.Fatalf("%d AUTH entries, want 1 (the poller's own written?):\n%+v", auths, readEvents(t, out))
	}
}
