package election_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/election"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestListener: an elector given Config.Listener serves its API on it
// (not on Listen); Addr and ProxyAddr report the bound addresses once Run
// listens, nil before.
func TestListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := election.DefaultConfig()
	cfg.ID = "a"
	cfg.Listen = "" // not used, not checked
	cfg.Listener = ln
	cfg.ProxyListen = "127.0.0.1:0"
	e, err := election.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e.Addr() != nil || e.ProxyAddr() != nil {
		t.Fatalf("before Run: Addr %v, ProxyAddr %v; want nil", e.Addr(), e.ProxyAddr())
	}
	ctx, stop := context.WithCancel(context.Background())
	opts := container.DefaultOptions()
	opts.AdminAddr, opts.DrainDelay = "off", 0
	opts.Logger = slog.New(slog.DiscardHandler)
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, e, opts) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testdeps.WaitFor(t, "the elector to listen", func() bool { return e.Addr() != nil })
	if got, want := e.Addr().String(), ln.Addr().String(); got != want {
		t.Fatalf("Addr = %s, want the listener's %s", got, want)
	}
	if p := e.ProxyAddr(); p == nil || strings.HasSuffix(p.String(), ":0") {
		t.Fatalf("ProxyAddr = %v, want the leader proxy's bound address", p)
	}
	testdeps.WaitFor(t, "the replica to lead", func() bool { return e.Leader().Self })
	resp, err := http.Get("http://" + e.Addr().String() + "/leader")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"leader":"a"`) {
		t.Fatalf("GET /leader on the given listener: %s %s", resp.Status, body)
	}
}

// TestBackendNotWired: a backend the program did not wire is refused by
// name, after the flags' own checks.
func TestBackendNotWired(t *testing.T) {
	var stderr strings.Builder
	args := []string{"elect", "--id", "a", "--admin-addr", "off", "--backend", "etcd", "--etcd-endpoints", "http://127.0.0.1:1"}
	code := cli.Main(context.Background(), []cli.Command{election.Command(election.Raft())}, args,
		cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
	if want := `--backend: backend "etcd" is not built in`; code != 2 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), want)
	}
}
