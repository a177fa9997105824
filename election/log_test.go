package election

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// containerLines are the contract's own lines (container.Run logs them
// with the component's logger, which the elector does not own).
var containerLines = map[string]bool{"started": true, "ready": true, "readiness changed": true, "draining": true, "stopped": true, "stop requested": true}

// apiLine reports a line of the contract's API security (container.OpenAPI:
// "API security", "API access", "API request refused", reloads of the API
// credentials): the contract's own too, named by --id when run as podkit
// elect (TestCommandLinesNameTheReplica).
func apiLine(msg string) bool {
	return strings.HasPrefix(msg, "API") || strings.Contains(msg, "API credentials")
}

// TestLogLinesNameTheReplica: every line an elector logs, its backend's
// (raft's) included, carries the replica's --id, so electors sharing one
// log stream can be told apart.
func TestLogLinesNameTheReplica(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID = "replica-7"
	cfg.Listen = "127.0.0.1:0"
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, e, opts) }()
	deadline := time.After(time.Minute)
	for !e.Leader().Self {
		select {
		case <-e.Changed():
		case <-deadline:
			stop()
			t.Fatal("the single replica did not elect itself within a minute")
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	var leading, fromRaft int
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["component"] != "elect" || containerLines[rec["msg"].(string)] || apiLine(rec["msg"].(string)) {
			continue
		}
		if rec["id"] != "replica-7" {
			t.Errorf("log line without id=replica-7: %s", line)
		}
		msg, _ := rec["msg"].(string)
		if msg == "leading" {
			leading++
		}
		if strings.Contains(msg, "entering leader state") {
			fromRaft++
		}
	}
	if leading == 0 || fromRaft == 0 {
		t.Errorf("want the elector's \"leading\" line and raft's \"entering leader state\" line; got %d and %d in:\n%s", leading, fromRaft, buf.String())
	}
}

// TestCommandLinesNameTheReplica: run as `podkit elect`, the contract's own
// lines (started, ready, draining, stopped) carry the --id too, and the
// elector's lines carry it once.
func TestCommandLinesNameTheReplica(t *testing.T) {
	var out syncBuffer
	cmd := exec.Command(os.Args[0], "elect", "--id", "solo-3", "--listen", "127.0.0.1:0", "--admin-addr", "off",
		"--data-dir", t.TempDir(), "--drain-delay", "0s", "--log-format", "json")
	cmd.Env = append(os.Environ(), roleEnv+"=podkit")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	}()
	testdeps.WaitFor(t, "the single replica to lead", func() bool { return strings.Contains(out.String(), `"msg":"leading"`) })
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["id"] != "solo-3" {
			t.Errorf("log line without id=solo-3: %s", line)
		}
		if strings.Count(line, `"id":`) != 1 {
			t.Errorf("log line with the id more than once: %s", line)
		}
		seen[rec["msg"].(string)] = true
	}
	for _, msg := range []string{"started", "leading", "stopped"} {
		if !seen[msg] {
			t.Errorf("no %q line in:\n%s", msg, out.String())
		}
	}
}
