//go:build linux

package configsync

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/podkit/podkit/cli"

	"github.com/podkit/podkit/internal/testdeps"
)

// runBindMount is the "bindmount" role: in its own mount namespace (the
// test starts it with CLONE_NEWNS, so nothing leaks to the host), it
// bind-mounts $CONFIGSYNC_BIND_FROM onto $CONFIGSYNC_BIND_TO, as
// `docker run -v file:file` or a Kubernetes subPath mount does, then runs
// `podkit config-sync` with its arguments.
func runBindMount(args []string) int {
	from, to := os.Getenv("CONFIGSYNC_BIND_FROM"), os.Getenv("CONFIGSYNC_BIND_TO")
	if err := syscall.Mount(from, to, "", syscall.MS_BIND, ""); err != nil {
		fmt.Fprintf(os.Stderr, "bind mount %s on %s: %v\n", from, to, err)
		return 3
	}
	stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	return cli.Main(context.Background(), []cli.Command{Command()}, args, stdio)
}

// TestBindMountedDestInPlace: when the destination is a bind-mounted file,
// rename fails with EBUSY and the file is rewritten in place (the mounted
// file, so the app in the other container sees it).
func TestBindMountedDestInPlace(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		testdeps.Unavailable(t, "bind mounts in a private mount namespace need root", "run the tests as root")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.conf")
	hostFile := filepath.Join(dir, "host.conf") // what the "other container" sees
	dest := filepath.Join(dir, "etc", "app.conf")
	os.Mkdir(filepath.Dir(dest), 0o755)
	testdeps.ReplaceFile(t, src, "new content\n")
	testdeps.ReplaceFile(t, hostFile, "old content\n")
	testdeps.ReplaceFile(t, dest, "placeholder under the mount\n")

	cmd := exec.Command(copyTestBinary(t), "config-sync", "--source", src, "--dest", dest, "--once",
		"--admin-addr", "off", "--log-format", "text")
	cmd.Env = append(os.Environ(), roleEnv+"=bindmount", "CONFIGSYNC_BIND_FROM="+hostFile, "CONFIGSYNC_BIND_TO="+dest)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("config-sync over a bind-mounted file: %v\n%s", err, out)
	}
	if got := readFile(t, hostFile); got != "new content\n" {
		t.Fatalf("the mounted file holds %q, want the new content\n%s", got, out)
	}
	if !strings.Contains(string(out), "EBUSY") {
		t.Fatalf("no warning about the in-place write:\n%s", out)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 1 {
		t.Fatalf("%d entries next to the destination, want 1 (temp file left behind)", len(entries))
	}
}

// TestSignalPermissionDenied runs config-sync as an unprivileged user
// against a process owned by root: the reload fails, is explained, and the
// file is rolled back.
func TestSignalPermissionDenied(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		testdeps.Unavailable(t, "starting config-sync as another user needs root", "run the tests as root")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o711)
	os.Chmod(dir, 0o777)
	src, dest, pidFile := filepath.Join(dir, "src"), filepath.Join(dir, "dest"), filepath.Join(dir, "pid")
	testdeps.ReplaceFile(t, src, "new")
	testdeps.ReplaceFile(t, dest, "old")
	os.Chmod(dest, 0o666)
	// This test process, owned by root; WINCH is ignored by default, so a
	// wrongly delivered signal would do no harm.
	os.WriteFile(pidFile, []byte(fmt.Sprint(os.Getpid())), 0o644)
	cmd := exec.Command(copyTestBinary(t), "config-sync", "--source", src, "--dest", dest, "--pid-file", pidFile,
		"--signal", "WINCH", "--admin-addr", "127.0.0.1:0", "--log-format", "text", "--poll-interval", "1h", "--drain-delay", "0s")
	cmd.Env = append(os.Environ(), roleEnv+"=podkit")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, Pdeathsig: syscall.SIGKILL}
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	testdeps.WaitFor(t, "the rollback", func() bool { return strings.Contains(logs.String(), "previous content is restored") })
	out := logs.String()
	if !strings.Contains(out, "CAP_KILL") || !strings.Contains(out, "uid 0") {
		t.Fatalf("the reload failure is not explained:\n%s", out)
	}
	if got := readFile(t, dest); got != "old" {
		t.Fatalf("dest = %q, want the old file back", got)
	}
}

// TestUnwritableDestDirInPlace: config-sync (an unprivileged user) may
// write the destination file but not its directory, as with a file
// bind-mounted into a root-owned directory of a non-root container: the
// new content is staged in the temporary directory, validated there, and
// written in place.
func TestUnwritableDestDirInPlace(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		testdeps.Unavailable(t, "starting config-sync as another user needs root", "run the tests as root")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o711)
	os.Chmod(dir, 0o755) // not writable by uid 65534
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "new\n")
	testdeps.ReplaceFile(t, dest, "old\n")
	os.Chmod(src, 0o644)
	os.Chmod(dest, 0o666)
	cmd := exec.Command(copyTestBinary(t), "config-sync", "--source", src, "--dest", dest, "--once",
		"--validate-cmd", "/bin/sh -c 'grep -q new {}'", "--admin-addr", "off", "--log-format", "text")
	cmd.Env = append(os.Environ(), roleEnv+"=podkit")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := readFile(t, dest); got != "new\n" || !strings.Contains(string(out), "rewrote it in place") {
		t.Fatalf("dest = %q\n%s", got, out)
	}
}

// copyTestBinary copies the test binary where any user may run it (go test
// builds it in a directory only its owner may enter).
func copyTestBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o711)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "podkit")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
