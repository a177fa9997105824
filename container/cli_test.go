package container_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/sidecar/await"
	"github.com/podkit/podkit/sidecar/topz"
)

// These tests run real components through cli.Main, as the podkit binary
// does, and look at what an operator sees: the exit status and stderr.

func commands() []cli.Command { return []cli.Command{await.Command(), topz.Command()} }

// runMain runs `podkit args...` in-process and returns its exit status and
// stderr.
func runMain(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr testdeps.Buffer
	code := cli.Main(context.Background(), commands(), args, cli.IO{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	return code, stderr.String()
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestWaitTimeoutFails: when --wait-timeout expires before a --wait-for
// target answers, the process exits non-zero naming the target, and
// await's command never runs (a Job or init container must not report
// success for work never done). The contract does this for every
// component.
func TestWaitTimeoutFails(t *testing.T) {
	dead := "tcp://" + deadAddr(t)
	marker := filepath.Join(t.TempDir(), "ran")
	notified := make(chan string, 4)
	ns := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notified <- r.Method + " " + r.URL.Path
	}))
	defer ns.Close()
	tests := []struct {
		name string
		args []string
	}{
		{"await", []string{"await", "--notify", ns.URL + "/quitquitquit", "--", "sh", "-c", "touch " + marker}},
		{"topz", []string{"topz", "--listen", "127.0.0.1:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{tt.args[0], "--admin-addr", "127.0.0.1:0", "--log-level", "error",
				"--wait-for", dead, "--wait-timeout", "300ms"}, tt.args[1:]...)
			code, stderr := runMain(t, args...)
			if code != 1 {
				t.Errorf("exit %d after --wait-timeout expired, want 1; stderr %q", code, stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the command ran although its dependency never answered")
			}
			if !strings.Contains(stderr, "--wait-timeout 300ms expired") || !strings.Contains(stderr, dead+" never answered") {
				t.Errorf("stderr does not name --wait-timeout and the target %s: %q", dead, stderr)
			}
			if tt.name == "await" {
				// The sidecars are still told to stop, so the pod ends.
				select {
				case got := <-notified:
					if got != "POST /quitquitquit" {
						t.Errorf("notify request %q", got)
					}
				default:
					t.Error("--notify URL was not called after the wait failed")
				}
			}
		})
	}
}

// startMain runs `podkit args...` in-process until the test ends (it is
// stopped with POST /quitquitquit on admin) and returns its exit channel.
func startMain(t *testing.T, admin string, args ...string) <-chan int {
	t.Helper()
	done := make(chan int, 1)
	go func() {
		var stdout, stderr testdeps.Buffer
		done <- cli.Main(context.Background(), commands(), args, cli.IO{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	}()
	t.Cleanup(func() {
		if resp, err := http.Post("http://"+admin+"/quitquitquit", "", nil); err == nil {
			resp.Body.Close()
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("podkit did not stop after /quitquitquit")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return done
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready (%v)", args[0], err)
		}
		select {
		case code := <-done:
			t.Fatalf("%s exited %d before it was ready", args[0], code)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// openMetricsParser returns the command line of the OpenMetrics reference
// parser (the Python client's, strict: it is what the OpenMetrics test
// suite checks against), from Debian's python3-prometheus-client.
func openMetricsParser(t *testing.T) []string {
	t.Helper()
	const script = `import sys
from prometheus_client.openmetrics import parser
n = 0
for f in parser.text_string_to_metric_families(sys.stdin.read()):
    n += 1
print(n, "families")
`
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import prometheus_client.openmetrics.parser").Run() == nil {
			return []string{py, "-c", script}
		}
	}
	msg := "the OpenMetrics reference parser is missing: apt-get install python3-prometheus-client"
	if testdeps.Require() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// TestOpenMetricsStrict: a scraper that asks for OpenMetrics gets a
// document the strict reference parser accepts, from real components'
// admin /metrics (the Go collector's go_memstats_alloc_bytes gauge and
// go_memstats_alloc_bytes_total counter clash there as served by
// client_golang), and the Prometheus text format is unchanged.
func TestOpenMetricsStrict(t *testing.T) {
	parse := openMetricsParser(t)
	for _, args := range [][]string{
		{"topz", "--listen", "127.0.0.1:0"},
		{"await"},
	} {
		t.Run(args[0], func(t *testing.T) {
			admin := deadAddr(t)
			startMain(t, admin, append([]string{args[0], "--admin-addr", admin, "--drain-delay", "0s", "--log-level", "error"}, args[1:]...)...)

			req, _ := http.NewRequest("GET", "http://"+admin+"/metrics", nil)
			req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
				t.Fatalf("Content-Type %q, want OpenMetrics", ct)
			}
			cmd := exec.Command(parse[0], parse[1:]...)
			cmd.Stdin = strings.NewReader(string(body))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the OpenMetrics reference parser rejects /metrics: %v\n%s", err, out)
			}
			if !strings.Contains(string(body), "\ngo_memstats_alloc_bytes_total ") || !strings.Contains(string(body), "\ngo_memstats_alloc_bytes ") {
				t.Errorf("OpenMetrics lost a go_memstats_alloc_bytes series:\n%s", body)
			}

			// The Prometheus text format keeps the counter as a counter.
			resp, err = http.Get("http://" + admin + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			text, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(text), "# TYPE go_memstats_alloc_bytes_total counter\n") {
				t.Errorf("text format lacks the counter:\n%s", text)
			}
		})
	}
}
