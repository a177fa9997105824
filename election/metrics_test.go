package election

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestMetricsGolden: a single replica (raft, in memory) elects itself;
// its podkit_elect_* metrics (but the API security's podkit_elect_api_*),
// values normalized where they vary (epoch, seconds), match
// testdata/metrics.golden.
func TestMetricsGolden(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID = "solo"
	cfg.Listen = "127.0.0.1:0"
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := container.DefaultOptions()
	opts.AdminListener, opts.AdminAddr, opts.DrainDelay = ln, ln.Addr().String(), 0
	opts.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, e, opts) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !e.Leader().Self {
		if time.Now().After(deadline) {
			t.Fatal("no leadership")
		}
		select {
		case <-e.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	_, body, err := get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	got := normalizeMetrics(body)
	path := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, _ := io.ReadAll(f)
	if got != string(want) {
		t.Errorf("/metrics (podkit_elect_*) differs from %s (run with -update):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

var (
	epochValue   = regexp.MustCompile(`^(podkit_elect_epoch) \S+$`)
	secondsValue = regexp.MustCompile(`^(podkit_elect_leaderless_seconds_total) \S+$`)
)

func normalizeMetrics(body string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		// podkit_elect_api_* are the container's API security metrics,
		// worded by package container and tested there.
		if !strings.HasPrefix(name, "podkit_elect_") || strings.HasPrefix(name, "podkit_elect_api_") {
			continue
		}
		line = epochValue.ReplaceAllString(line, "$1 <epoch>")
		line = secondsValue.ReplaceAllString(line, "$1 <seconds>")
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}
