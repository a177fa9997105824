package shard

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// runShard runs the test binary as `podkit shard args...` to its end and
// returns its exit status and output.
func runShard(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"shard"}, args...)...)
	cmd.Env = append(os.Environ(), "PODKIT_SHARD_AS_COMMAND=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("podkit shard %v did not exit", args)
		return 0, ""
	}
}

// runNutcracker runs the real nutcracker to its end.
func runNutcracker(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestNutcrackerTestConf: -t (and --test-conf) checks the file and exits
// 0 or 1 as the real nutcracker does on the same files, with its words,
// and podkit names the line of the error.
func TestNutcrackerTestConf(t *testing.T) {
	t.Parallel()
	bin := testdeps.Binary(t, "nutcracker")
	if bin == "" {
		return
	}
	dir := t.TempDir()
	files := map[string]string{
		"good":          "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n   - 127.0.0.1:6379:1\n",
		"unknown key":   "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  bogus: 1\n  servers:\n   - 127.0.0.1:6379:1\n",
		"yaml syntax":   "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n   - 127.0.0.1:6379:1\n  - x\n",
		"bad hash":      "alpha:\n  listen: 127.0.0.1:22121\n  hash: sha1\n  servers:\n   - 127.0.0.1:6379:1\n",
		"missing file":  "",
		"no servers":    "alpha:\n  listen: 127.0.0.1:22121\n",
		"bad server":    "alpha:\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6379\n",
		"bad listen":    "alpha:\n  listen: 127.0.0.1\n  servers:\n   - 127.0.0.1:6379:1\n",
		"good memcache": "beta:\n  listen: 127.0.0.1:22122\n  hash: md5\n  servers:\n   - 127.0.0.1:11211:1\n",
	}
	lines := map[string]string{"unknown key": "line 4", "yaml syntax": "line 6", "bad hash": "line 3", "bad server": "line 4"}
	for name, body := range files {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yml")
			if body != "" {
				if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, nout := runNutcracker(t, bin, "-t", "-c", file)
			for _, flags := range [][]string{{"-t", "-c", file}, {"--test-conf", "--conf-file=" + file}} {
				code, out := runShard(t, flags...)
				if code != want {
					t.Fatalf("podkit shard %v: exit %d, nutcracker exit %d\npodkit: %s\nnutcracker: %s", flags, code, want, out, nout)
				}
				verdict := fmt.Sprintf("configuration file '%s' syntax is ok", file)
				if want != 0 {
					verdict = fmt.Sprintf("configuration file '%s' syntax is invalid", file)
				}
				if !strings.Contains(nout, verdict) || !strings.Contains(out, "podkit shard: "+verdict) {
					t.Fatalf("want %q from both\npodkit: %s\nnutcracker: %s", verdict, out, nout)
				}
				if l, ok := lines[name]; ok && !strings.Contains(out, l+":") {
					t.Fatalf("podkit does not name %s: %s", l, out)
				}
			}
		})
	}
}

// TestNutcrackerCommandLine runs podkit with the command line a
// nutcracker image uses (-c -s -a -i -v -o -p -m), after checking that
// the real nutcracker takes the same line: it serves the pool, answers on
// the stats port, writes the pid file and the log file, and removes the
// pid file when it stops.
func TestNutcrackerCommandLine(t *testing.T) {
	t.Parallel()
	a := testdeps.StartRedis(t)
	bin := testdeps.Binary(t, "nutcracker")
	if a == "" || bin == "" {
		return
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "nutcracker.yml")
	listen, stats := freeAddr(t), freeAddr(t)
	testdeps.ReplaceFile(t, file, fmt.Sprintf("alpha:\n  listen: %s\n  redis: true\n  servers:\n   - %s:1\n", listen, a))
	_, statsPort, _ := net.SplitHostPort(stats)
	logFile, pidFile := filepath.Join(dir, "nutcracker.log"), filepath.Join(dir, "nutcracker.pid")
	args := []string{"-c", file, "-s", statsPort, "-a", "127.0.0.1", "-i", "1000", "-v", "7", "-o", logFile, "-p", pidFile, "-m", "16384"}

	// The real nutcracker takes this line.
	if code, out := runNutcracker(t, bin, append([]string{"-t"}, args...)...); code != 0 {
		t.Fatalf("nutcracker -t %v: exit %d: %s", args, code, out)
	}

	cmd, out, exited := startShardCmd(t, listen, args...)
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(logFile)
			t.Logf("output:\n%s\nlog file:\n%s", out.String(), log)
		}
	}()
	c := dialRedis(t, listen)
	if got := c.do("SET", "k", "v"); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	doc := readStats(t, stats)
	if pool, ok := doc["alpha"].(map[string]any); !ok || pool[a].(map[string]any)["requests"].(float64) != 1 {
		t.Fatalf("stats: %v", doc)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("pid file: %q, %v; want %d", pid, err, cmd.Process.Pid)
	}
	log, _ := os.ReadFile(logFile)
	for _, want := range []string{"--mbuf-size (nutcracker's -m) is accepted and ignored", "--stats-interval (nutcracker's -i) is accepted and ignored", "pool listening"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log file has no %q", want)
		}
	}
	if strings.Contains(out.String(), "pool listening") {
		t.Error("logs went to stdout with -o")
	}
	stopShardCmd(t, cmd, exited)
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}

	// -v 3 (nutcracker's LOG_ERR) logs errors only: no INFO line.
	os.Remove(logFile)
	cmd, _, exited = startShardCmd(t, listen, "-c", file, "--stats-addr", "off", "-v", "3", "-o", logFile)
	stopShardCmd(t, cmd, exited)
	log, _ = os.ReadFile(logFile)
	if strings.Contains(string(log), `"level":"INFO"`) {
		t.Errorf("-v 3 logged INFO lines:\n%s", log)
	}
}

// startShardCmd starts `podkit shard args...` (with the admin listener
// off) and waits until it accepts connections on listen.
func startShardCmd(t *testing.T, listen string, args ...string) (*exec.Cmd, *testdeps.Buffer, chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"shard", "--admin-addr", "off", "--drain-delay", "0s"}, args...)...)
	cmd.Env = append(os.Environ(), "PODKIT_SHARD_AS_COMMAND=1")
	out := &testdeps.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	eventually(t, "serving", func() string {
		select {
		case err := <-exited:
			t.Fatalf("podkit shard %v exited: %v\n%s", args, err, out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			return err.Error()
		}
		c.Close()
		return ""
	})
	return cmd, out, exited
}

// stopShardCmd sends SIGTERM and expects exit status 0.
func stopShardCmd(t *testing.T, cmd *exec.Cmd, exited chan error) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no exit after SIGTERM")
	}
}

func TestLogLevel(t *testing.T) {
	for v, want := range []string{"error", "error", "error", "error", "warn", "info", "info", "debug", "debug", "debug", "debug", "debug"} {
		if got := logLevel(v); got != want {
			t.Errorf("-v %d: %s, want %s", v, got, want)
		}
	}
}

// TestNutcrackerFlags: -V, -d, and bad -v values.
func TestNutcrackerFlags(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "nutcracker.yml")
	testdeps.ReplaceFile(t, file, "alpha:\n  listen: 127.0.0.1:0\n  servers:\n   - 127.0.0.1:11211:1\n")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-V"}, 0, "nutcracker-0.5.0 compatible"},
		{[]string{"--version"}, 0, "nutcracker-0.5.0 compatible"},
		{[]string{"-d", "-c", file}, 2, "-d/--daemonize: podkit shard does not daemonize; run it in the foreground under a supervisor"},
		{[]string{"--daemonize", "-c", file}, 2, "does not daemonize"},
		{[]string{"-v", "12", "-c", file}, 2, "-v/--verbose: 12 is not a log level from 0 to 11"},
		{[]string{"-v", "x", "-c", file}, 2, "--v: invalid value"},
		{[]string{"-v", "6", "--log-level", "debug", "-c", file}, 2, "give one of them"},
		{[]string{"-m", "10", "-c", file}, 2, "--mbuf-size (-m): 10 is not from 512 to 16777216 bytes"},
		{[]string{"-s", "70000", "-c", file}, 2, "--stats-port (-s): 70000 is not a port"},
		{[]string{"-c", file, "-t", "--stats-addr", "off"}, 0, "syntax is ok"},
	}
	for _, tt := range tests {
		code, out := runShard(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("podkit shard %v: exit %d, %q; want exit %d and %q", tt.args, code, out, tt.code, tt.want)
		}
	}
}

// TestStatsPortInUse: a stats port asked for and in use stops the
// proxy with an error naming it; at nutcracker's default it is a warning.
func TestStatsPortInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	file := filepath.Join(t.TempDir(), "nutcracker.yml")
	testdeps.ReplaceFile(t, file, "alpha:\n  listen: 127.0.0.1:0\n  servers:\n   - 127.0.0.1:11211:1\n")
	code, out := runShard(t, "-c", file, "-s", port, "-a", "127.0.0.1", "--admin-addr", "off")
	if code != 1 || !strings.Contains(out, "--stats-port/--stats-addr: stats listener: listen tcp 127.0.0.1:"+port) {
		t.Fatalf("exit %d: %s", code, out)
	}
}
