package container_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podkit/podkit/internal/cli"
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
