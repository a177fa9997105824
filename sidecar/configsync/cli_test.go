//go:build linux

package configsync

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestBadFlags: every bad command line exits 2 with a message naming the
// flag.
func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("x"), 0o644)
	badTmpl := filepath.Join(dir, "bad.tmpl")
	os.WriteFile(badTmpl, []byte("{{.Data"), 0o644)
	base := []string{"--source", src, "--dest", filepath.Join(dir, "dest"), "--admin-addr", "127.0.0.1:0"}
	srcDir, destDir, destFile := filepath.Join(dir, "srcdir"), filepath.Join(dir, "destdir"), filepath.Join(dir, "x.conf")
	os.Mkdir(srcDir, 0o755)
	os.Mkdir(destDir, 0o755)
	os.WriteFile(destFile, []byte("x"), 0o644)
	noDir := filepath.Join(dir, "new.conf")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no source", []string{"--dest", "/tmp/x"}, "--source: required"},
		{"no dest", []string{"--source", src}, "--dest: required"},
		{"same path", []string{"--source", src, "--dest", src}, "--dest"},
		{"unknown scheme", []string{"--source", "ftp://h/x", "--dest", "/tmp/x"}, "--source"},
		{"url without host", []string{"--source", "http:///x", "--dest", "/tmp/x"}, "missing host"},
		{"url with an empty port", []string{"--source", "http://127.0.0.1:/x", "--dest", "/tmp/x"}, `--source "http://127.0.0.1:/x": empty port`},
		{"reload url with an empty port", append(base, "--reload-url", "http://127.0.0.1:/-/reload"), `--reload-url "http://127.0.0.1:/-/reload": empty port`},
		{"unknown flag", append(base, "--bogus"), "--bogus"},
		{"signal", append(base, "--signal", "BOGUS"), "--signal"},
		{"process and pid file", append(base, "--process-name", "nginx", "--pid-file", "/run/x.pid"), "--process-name and --pid-file"},
		{"reload url scheme", append(base, "--reload-url", "unix:///x"), "--reload-url"},
		{"reload method", append(base, "--reload-method", "GE T"), "--reload-method"},
		{"reload status", append(base, "--reload-expect-status", "42"), "--reload-expect-status"},
		{"reload retries", append(base, "--reload-retries", "-1"), "--reload-retries"},
		{"debounce", append(base, "--debounce", "-1s"), "--debounce"},
		{"debounce syntax", append(base, "--debounce", "soon"), "--debounce"},
		{"poll interval", append(base, "--poll-interval", "0s"), "--poll-interval"},
		{"validate quote", append(base, "--validate-cmd", "nginx -t -c '{}"), "--validate-cmd"},
		{"validate empty", append(base, "--validate-cmd", "  "), "--validate-cmd"},
		{"file mode", append(base, "--file-mode", "999"), "--file-mode"},
		{"file mode range", append(base, "--file-mode", "01777"), "--file-mode"},
		{"header", append(base, "--header", "no colon"), "--header"},
		{"header on a file source", append(base, "--header", "A: b"), "--header"},
		{"max bytes", append(base, "--max-bytes", "0"), "--max-bytes"},
		{"template missing", append(base, "--template", filepath.Join(dir, "nope")), "--template"},
		{"template syntax", append(base, "--template", badTmpl), "--template"},
		{"positional", append(base, "extra"), "unexpected argument"},
		{"validator missing", append(base, "--validate-cmd", "/nonexistent/validator {}"), `--validate-cmd: "/nonexistent/validator" cannot be run`},
		{"validator not in PATH", append(base, "--validate-cmd", "no-such-validator-podkit -t {}"), `--validate-cmd: "no-such-validator-podkit" cannot be run: executable file not found in $PATH`},
		{"directory source, new file dest", []string{"--source", srcDir, "--dest", noDir}, "--dest " + noDir + " does not exist, and --source " + srcDir + " is a directory"},
		{"directory source, file dest", []string{"--source", srcDir, "--dest", destFile}, "--dest " + destFile + " is a file, but --source " + srcDir + " is a directory"},
		{"file source, directory dest", []string{"--source", src, "--dest", destDir}, "--dest " + destDir + " is a directory, but the output is one file"},
		{"file source, slash dest", []string{"--source", src, "--dest", noDir + "/"}, "--dest " + noDir + "/ ends with a slash, but the output is one file"},
		{"template, directory dest", []string{"--source", srcDir, "--dest", destDir, "--template", badTmpl}, "--dest " + destDir + " is a directory, but the output is one file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := cli.Main(context.Background(), []cli.Command{Command()}, append([]string{"config-sync"}, tc.args...),
				cli.IO{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &stderr})
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %q", code, stderr.String(), tc.want)
			}
		})
	}
}

// TestEnvFlags: every flag can come from PODKIT_<NAME>.
func TestEnvFlags(t *testing.T) {
	var stderr bytes.Buffer
	t.Setenv("PODKIT_SIGNAL", "NOPE")
	code := cli.Main(context.Background(), []cli.Command{Command()}, []string{"config-sync", "--source", "/a", "--dest", "/b"},
		cli.IO{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &stderr})
	if code != 2 || !strings.Contains(stderr.String(), "--signal") {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
}

// podkitCmd runs the test binary as `podkit config-sync`.
func podkitCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"config-sync"}, args...)...)
	cmd.Env = append(os.Environ(), roleEnv+"=podkit")
	return cmd
}

// TestOnceProcess runs `podkit config-sync --once` as a real process, as
// an init container would: exit 0 with the file in place, exit 1 with the
// old file kept when validation fails, exit 2 on a bad flag.
func TestOnceProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "sub", "dest")
	testdeps.ReplaceFile(t, src, "good")
	common := []string{"--source", src, "--dest", dest, "--once", "--admin-addr", "off", "--log-format", "text",
		"--validate-cmd", `/bin/sh -c 'grep -q good {} || { echo "rejected: no good" >&2; exit 1; }'`}

	out, err := podkitCmd(common...).CombinedOutput()
	if err != nil {
		t.Fatalf("--once: %v\n%s", err, out)
	}
	if readFile(t, dest) != "good" {
		t.Fatal("--once did not publish")
	}
	testdeps.ReplaceFile(t, src, "bad")
	out, err = podkitCmd(common...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("--once with an invalid source: %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "rejected: no good") || readFile(t, dest) != "good" {
		t.Fatalf("the old file was not kept, or the reason not shown:\n%s", out)
	}
	out, err = podkitCmd("--source", src).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--dest") {
		t.Fatalf("missing --dest: %v, want exit 2 naming --dest\n%s", err, out)
	}
}

// TestSIGHUPSyncsNow: a running config-sync process syncs at once on
// SIGHUP (here an HTTP source polled once an hour), and is not stopped by
// it.
func TestSIGHUPSyncsNow(t *testing.T) {
	t.Parallel()
	var body atomic.Value
	body.Store("v1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body.Load().(string))
	}))
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "dest")
	cmd := podkitCmd("--source", srv.URL, "--dest", dest, "--poll-interval", "1h", "--admin-addr", "off", "--drain-delay", "0s")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testdeps.WaitFor(t, "v1", fileIs(dest, "v1"))
	body.Store("v2")
	cmd.Process.Signal(syscall.SIGHUP)
	testdeps.WaitFor(t, "v2 after SIGHUP", fileIs(dest, "v2"))
	if !strings.Contains(logs.String(), "a rejected version included") {
		t.Fatalf("SIGHUP does not say it retries a rejected version:\n%s", logs)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
	}
}

// TestOnceWithoutAdminPort: `--once` (an init container: no probes, done in
// a moment) opens no admin listener unless --admin-addr is given, so it
// works while the default 127.0.0.1:9901 is taken (by a sidecar started
// before it, or another podkit on a workstation).
func TestOnceWithoutAdminPort(t *testing.T) {
	ln, err := net.Listen("tcp", container.DefaultAdminAddr)
	if err == nil {
		defer ln.Close()
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("cannot take %s: %v", container.DefaultAdminAddr, err)
	} // else someone else holds it: taken either way
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "v1")
	if out, err := podkitCmd("--source", src, "--dest", dest, "--once").CombinedOutput(); err != nil {
		t.Fatalf("--once with the default admin port taken: %v\n%s", err, out)
	}
	if readFile(t, dest) != "v1" {
		t.Fatal("not published")
	}
	// An explicit --admin-addr is honoured: a taken one fails.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	out, err := podkitCmd("--source", src, "--dest", dest, "--once", "--admin-addr", held.Addr().String()).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "--admin-addr") {
		t.Fatalf("--once with an explicit, taken --admin-addr: %v, want a failure naming it\n%s", err, out)
	}
}
