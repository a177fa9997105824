package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// These tests run the real podkit binary as a subprocess and talk to it
// over the network, as a kubelet or a neighbouring container would.

type proc struct {
	cmd    *exec.Cmd
	stdout *testdeps.Buffer
	stderr *testdeps.Buffer
	done   chan struct{}
	err    error
}

func startPodkit(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	bin := testdeps.BuildPodkit(t)
	p := &proc{cmd: exec.Command(bin, args...), stdout: &testdeps.Buffer{}, stderr: &testdeps.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("podkit %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

// wait returns the exit code, failing the test after 20 s.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("podkit did not exit; stderr:\n%s", p.stderr)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func waitStatus(t *testing.T, url string, code int) {
	t.Helper()
	testdeps.WaitFor(t, fmt.Sprintf("%s to answer %d", url, code), func() bool {
		c, _, err := httpGet(url)
		return err == nil && c == code
	})
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no args: usage on stderr, exit 2", code: 2, stderr: "await"},
		{name: "help lists demo", args: []string{"help"}, code: 0, stdout: "demo"},
		{name: "demo stays on loopback", args: []string{"demo", "--host", "0.0.0.0"}, code: 2, stderr: "--host 0.0.0.0: the demo's services run without credentials, on loopback only"},
		{name: "help lists certs", args: []string{"help"}, code: 0, stdout: "certs"},
		{name: "certs needs --dir", args: []string{"certs", "--client", "w"}, code: 2, stderr: "--dir: required"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "Commands:"},
		{name: "command help names env", args: []string{"await", "--help"}, code: 0, stdout: "env PODKIT_WAIT_FOR"},
		{name: "version", args: []string{"version"}, code: 0, stdout: "podkit "},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `podkit: unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"await", "--frob"}, code: 2, stderr: "podkit await: unknown flag --frob"},
		{name: "bad duration", args: []string{"await", "--drain-timeout", "forever"}, code: 2, stderr: "--drain-timeout: invalid value"},
		{name: "bad address", args: []string{"await", "--admin-addr", "localhost"}, code: 2, stderr: "--admin-addr"},
		{name: "bad wait-for scheme", args: []string{"await", "--wait-for", "udp://x:1"}, code: 2, stderr: `--wait-for: bad target "udp://x:1": unknown scheme "udp"`},
		{name: "bad notify", args: []string{"await", "--notify", "tcp://x:1"}, code: 2, stderr: "--notify"},
		{name: "bad env", args: []string{"await"}, env: []string{"PODKIT_DRAIN_DELAY=eventually"}, code: 2, stderr: "PODKIT_DRAIN_DELAY (--drain-delay)"},
		{name: "bad log level", args: []string{"await", "--log-level", "loud"}, code: 2, stderr: "--log-level"},
		{name: "misspelled env is warned about", args: []string{"await", "--admin-addr", "off", "--", "true"}, env: []string{"PODKIT_NOTIFY_TIMOUT=1s"}, code: 0,
			stderr: "podkit await: warning: PODKIT_NOTIFY_TIMOUT is set but no flag of this command reads it (did you mean PODKIT_NOTIFY_TIMEOUT, --notify-timeout?)"},
		{name: "sample-app rejects args", args: []string{"sample-app", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startPodkit(t, tt.env, tt.args...)
			if code := p.wait(t); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, p.stderr)
			}
			if !strings.Contains(p.stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, p.stdout)
			}
			if !strings.Contains(p.stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, p.stderr)
			}
			if tt.code == 2 && len(tt.args) > 0 && strings.Count(strings.TrimSpace(p.stderr.String()), "\n") != 0 {
				t.Errorf("usage error is not one line: %q", p.stderr)
			}
		})
	}
}

// TestDrain: SIGTERM → readiness 503 at once → after --drain-delay new
// connections are refused → the request in flight completes → exit 0.
func TestDrain(t *testing.T) {
	app, admin := freeAddr(t), freeAddr(t)
	p := startPodkit(t, nil, "sample-app", "--listen", app, "--admin-addr", admin,
		"--drain-delay", "500ms", "--drain-timeout", "10s", "--log-format", "json")
	waitStatus(t, "http://"+admin+"/readyz", 200)

	inflight := make(chan string, 1)
	go func() {
		code, body, err := httpGet("http://" + app + "/slow?d=2s")
		inflight <- fmt.Sprintf("%d %s %v", code, strings.TrimSpace(body), err)
	}()
	testdeps.WaitFor(t, "the slow request to be in flight", func() bool {
		_, body, err := httpGet("http://" + app + "/status")
		return err == nil && strings.Contains(body, `"in_flight":1`)
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitStatus(t, "http://"+admin+"/readyz", 503)
	testdeps.WaitFor(t, "new connections to be refused", func() bool {
		c, err := net.DialTimeout("tcp", app, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if p.exited() {
		t.Fatal("exited before the in-flight request finished")
	}
	if got := <-inflight; got != "200 slept 2s <nil>" {
		t.Fatalf("in-flight request: %s", got)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	// JSON logs on stdout, one object per line.
	for _, line := range strings.Split(strings.TrimSpace(p.stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["component"] != "sample-app" {
			t.Fatalf("log line is not JSON tagged with the component: %q", line)
		}
	}
	if !strings.Contains(p.stdout.String(), `"msg":"draining"`) {
		t.Errorf("no draining log")
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	app, admin := freeAddr(t), freeAddr(t)
	p := startPodkit(t, nil, "sample-app", "--listen", app, "--admin-addr", admin, "--drain-delay", "1m")
	waitStatus(t, "http://"+admin+"/readyz", 200)
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitStatus(t, "http://"+admin+"/readyz", 503)
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t); code != 128+int(syscall.SIGINT) {
		t.Fatalf("exit %d, want %d", code, 128+int(syscall.SIGINT))
	}
	if !strings.Contains(p.stderr.String(), "second signal") {
		t.Errorf("stderr lacks the reason: %q", p.stderr)
	}
}

func TestQuitQuitQuit(t *testing.T) {
	app, admin := freeAddr(t), freeAddr(t)
	p := startPodkit(t, nil, "sample-app", "--listen", app, "--admin-addr", admin, "--drain-delay", "0s")
	waitStatus(t, "http://"+admin+"/readyz", 200)
	resp, err := http.Get("http://" + admin + "/quitquitquit")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /quitquitquit: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Post("http://"+admin+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /quitquitquit from loopback: %d", resp.StatusCode)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
}

func TestLifecycleEventOrder(t *testing.T) {
	app, admin := freeAddr(t), freeAddr(t)
	p := startPodkit(t, nil, "sample-app", "--listen", app, "--admin-addr", admin, "--drain-delay", "300ms")
	waitStatus(t, "http://"+admin+"/readyz", 200)
	resp, err := http.Get("http://" + admin + "/lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type ev struct {
		name string
		data map[string]any
	}
	events := make(chan ev, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				var m map[string]any
				json.Unmarshal([]byte(v), &m)
				events <- ev{name, m}
			}
		}
	}()
	// The subscriber first learns the state so far.
	for _, want := range []string{"starting", "ready"} {
		if e := <-events; e.name != want {
			t.Fatalf("event %q, want %q", e.name, want)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	e := <-events
	if e.name != "draining" {
		t.Fatalf("event %q, want draining", e.name)
	}
	deadline, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e.data["deadline"]))
	if err != nil || !deadline.After(time.Now()) {
		t.Fatalf("draining event deadline %v (%v), want a future time", e.data["deadline"], err)
	}
	if e := <-events; e.name != "stopping" {
		t.Fatalf("event %q, want stopping", e.name)
	}
	if _, ok := <-events; ok {
		t.Fatal("stream did not end after stopping")
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestEnvAndFlagPrecedence(t *testing.T) {
	envAdmin, flagAdmin, app := freeAddr(t), freeAddr(t), freeAddr(t)
	// env only: the env value is used.
	p := startPodkit(t, []string{"PODKIT_ADMIN_ADDR=" + envAdmin, "PODKIT_DRAIN_DELAY=0s", "PODKIT_LISTEN=" + app}, "sample-app")
	waitStatus(t, "http://"+envAdmin+"/readyz", 200)
	_, info, err := httpGet("http://" + envAdmin + "/info")
	if err != nil || !strings.Contains(info, `"drain_delay": "0s"`) || !strings.Contains(info, `"listen": "`+app+`"`) {
		t.Fatalf("info does not show env values: %v\n%s", err, info)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)

	// flag beats env.
	p = startPodkit(t, []string{"PODKIT_ADMIN_ADDR=" + envAdmin, "PODKIT_DRAIN_DELAY=0s"}, "sample-app", "--admin-addr", flagAdmin, "--listen", app)
	waitStatus(t, "http://"+flagAdmin+"/readyz", 200)
	if _, _, err := httpGet("http://" + envAdmin + "/readyz"); err == nil {
		t.Fatal("env admin address is listening although the flag overrides it")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestAwait: the command is held until --wait-for answers (readiness 503
// meanwhile), runs, and its exit status is await's; --notify is POSTed.
func TestAwait(t *testing.T) {
	dep, admin := freeAddr(t), freeAddr(t)
	marker := filepath.Join(t.TempDir(), "started")
	notified := make(chan string, 4)
	ns := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notified <- r.Method + " " + r.URL.Path
	}))
	p := startPodkit(t, nil, "await", "--admin-addr", admin, "--drain-delay", "0s",
		"--wait-for", "tcp://"+dep, "--notify", ns+"/quitquitquit",
		"--", "sh", "-c", "touch "+marker+"; exit 7")
	waitStatus(t, "http://"+admin+"/livez", 200)
	if code, body, _ := httpGet("http://" + admin + "/readyz"); code != 503 || !strings.Contains(body, "wait-for") {
		t.Fatalf("readyz before the dependency: %d %q", code, body)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("command started before the dependency answered")
	}
	ln, err := net.Listen("tcp", dep)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if code := p.wait(t); code != 7 {
		t.Fatalf("exit %d, want the command's 7", code)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("command did not run")
	}
	select {
	case got := <-notified:
		if got != "POST /quitquitquit" {
			t.Fatalf("notify request %q", got)
		}
	default:
		t.Fatal("--notify URL was not called")
	}
}

func TestAwaitForwardsSignal(t *testing.T) {
	admin := freeAddr(t)
	out := filepath.Join(t.TempDir(), "got")
	p := startPodkit(t, nil, "await", "--admin-addr", admin, "--drain-delay", "0s", "--drain-timeout", "10s",
		"--", "sh", "-c", "trap 'echo term > "+out+"; exit 0' TERM; while :; do sleep 0.05; done")
	waitStatus(t, "http://"+admin+"/readyz", 200)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0 (the command trapped TERM and exited 0)", code)
	}
	if b, err := os.ReadFile(out); err != nil || strings.TrimSpace(string(b)) != "term" {
		t.Fatalf("command did not get SIGTERM: %q %v", b, err)
	}
}

func TestAwaitCommandNotFound(t *testing.T) {
	p := startPodkit(t, nil, "await", "--admin-addr", freeAddr(t), "--", "/nonexistent/podkit-test-cmd")
	if code := p.wait(t); code != 127 {
		t.Fatalf("exit %d, want 127", code)
	}
	if !strings.Contains(p.stderr.String(), "/nonexistent/podkit-test-cmd") {
		t.Errorf("stderr does not name the command: %q", p.stderr)
	}
}

func TestExitWhenDone(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "done")
	admin := freeAddr(t)
	p := startPodkit(t, nil, "await", "--admin-addr", admin, "--drain-delay", "0s", "--exit-when-done", marker)
	waitStatus(t, "http://"+admin+"/readyz", 200)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
}

func TestDemo(t *testing.T) {
	base := testdeps.FreePortRange(t, 40)
	p := startPodkit(t, nil, "demo", "--port-base", fmt.Sprint(base))
	testdeps.WaitFor(t, "the demo table", func() bool { return strings.Contains(p.stdout.String(), "SERVICE") })
	// Every URL the demo prints answers.
	for _, line := range strings.Split(p.stdout.String(), "\n") {
		i := strings.Index(line, "http://")
		if i < 0 {
			continue
		}
		url := strings.Fields(line[i:])[0]
		noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
		testdeps.WaitFor(t, url, func() bool {
			resp, err := noRedirect.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode < 400
		})
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t); code != 0 {
		t.Fatalf("demo exit %d, want 0", code)
	}
	if !strings.Contains(p.stdout.String(), "podkit demo: stopped") {
		t.Errorf("demo did not say it stopped")
	}
}

func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
