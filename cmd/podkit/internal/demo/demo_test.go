package demo

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestRunStopsCleanly runs the whole demo in-process and stops it as Ctrl-C
// would. It checks what an operator sees after a stop: no temporary
// directory left behind, no component that ran out of drain time because
// something it depends on stopped first, and log lines that say which of
// several instances of a component they come from.
func TestRunStopsCleanly(t *testing.T) {
	exe := testdeps.BuildPodkit(t) // the demo runs it as a child (the sample app under await)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var logBuf, out testdeps.Buffer
	cfg := Config{
		Host:     "127.0.0.1",
		PortBase: testdeps.FreePortRange(t, 56),
		Exe:      exe,
		Log:      slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, &out) }()

	testdeps.WaitForWithin(t, 3*time.Minute, "the demo table", func() bool { return strings.Contains(out.String(), "SERVICE") })
	// Let the queue's workers hold items when the stop comes: wait until
	// items have been processed, so work is in flight.
	queueURL := ""
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "queue ") && strings.Contains(line, "/queues/demo") {
			queueURL = strings.Fields(line)[len(strings.Fields(line))-1]
		}
	}
	if queueURL == "" {
		t.Fatalf("the demo table has no queue line:\n%s", out.String())
	}
	testdeps.WaitForWithin(t, 2*time.Minute, "the queue's workers to complete an item", func() bool {
		resp, err := http.Get(queueURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Acked uint64 `json:"acked_total"`
		}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Acked > 0
	})
	// The broker answers from one of its demo backends, and lists them.
	brokerURL, brokerEndpoints := "", ""
	client := &http.Client{Timeout: 10 * time.Second}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "broker" {
			if strings.HasSuffix(f[len(f)-1], "/endpoints?format=text") {
				brokerEndpoints = f[len(f)-1]
			} else {
				brokerURL = f[len(f)-1]
			}
		}
	}
	if brokerURL == "" || brokerEndpoints == "" {
		t.Fatalf("the demo table has no broker lines:\n%s", out.String())
	}
	testdeps.WaitForWithin(t, time.Minute, "an answer from a backend through the broker", func() bool {
		resp, err := client.Get(brokerURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "backend-")
	})
	testdeps.WaitForWithin(t, time.Minute, "the broker's endpoints listing its three backends as healthy", func() bool {
		resp, err := client.Get(brokerEndpoints)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Count(string(b), " healthy ") == 3
	})
	testdeps.WaitForWithin(t, time.Minute, "a log line from elector n1", func() bool { return strings.Contains(logBuf.String(), " id=n1") })
	testdeps.WaitForWithin(t, time.Minute, "a log line from worker-1", func() bool { return strings.Contains(logBuf.String(), " worker=worker-1") })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\nlog:\n%s", err, logBuf.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the demo did not stop within 2 minutes\nlog:\n%s", logBuf.String())
	}
	if !strings.Contains(out.String(), "podkit demo: stopped") {
		t.Errorf("the demo did not say it stopped")
	}
	if s := logBuf.String(); strings.Contains(s, "did not stop within") {
		t.Errorf("a component ran out of drain time at the demo's stop:\n%s", s)
	}
	// Every line of an elector or a worker, the contract's own included,
	// says which instance it is.
	for _, line := range strings.Split(logBuf.String(), "\n") {
		if strings.Contains(line, " component=elect") && !strings.Contains(line, " id=n") {
			t.Errorf("an elector's line without its id: %s", line)
		}
		if strings.Contains(line, " component=worker") && !strings.Contains(line, " worker=worker-") {
			t.Errorf("a worker's line without its name: %s", line)
		}
	}
	left, err := filepath.Glob(filepath.Join(tmp, "podkit-demo-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("the demo left temporary directories behind: %v", left)
	}
}
