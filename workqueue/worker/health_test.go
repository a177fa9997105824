package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/store/wal"
)

// logBuffer is a goroutine-safe log sink whose lines are JSON records.
type logBuffer struct{ testdeps.Buffer }

// records returns the log records whose msg is msg ("" for all).
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if msg == "" || rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startWorker runs a worker under the container contract, logging JSON to
// logs, until the test ends.
func startWorker(t *testing.T, cfg Config, logs io.Writer) (adminURL string) {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := container.DefaultOptions()
	o.AdminListener = ln
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, w, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("worker did not stop")
		}
	})
	return "http://" + ln.Addr().String()
}

// serveCoordinator serves the queue API on addr (a port nothing listened
// on so far) until the test ends.
func serveCoordinator(t *testing.T, addr string) *client.Client {
	t.Helper()
	var ln net.Listener
	testdeps.WaitFor(t, "listening on "+addr, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	st := wal.OpenMemory(wal.Options{Logger: quiet()})
	srv := &http.Server{Handler: workqueue.NewHandler(st, workqueue.HandlerOptions{Logger: quiet()})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); st.Close() })
	return client.New("http://"+addr, nil)
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

func metricValue(t *testing.T, metrics, series string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v, true
		}
	}
	return 0, false
}

// TestUnreachableQueue: a worker whose queue has nothing listening says so
// at once in its log (then at most once per --error-log-interval, with a
// count), fails its readiness check named for the queue, and counts the
// errors; once a coordinator listens there, it logs the recovery, turns
// ready and works.
func TestUnreachableQueue(t *testing.T) {
	addr := freeAddr(t)
	queueURL := "http://" + addr + "/queues/q"
	logs := &logBuffer{}
	cfg := DefaultConfig()
	cfg.Queue = queueURL
	cfg.ID = "w-1"
	cfg.Wait = time.Second
	cfg.ErrorLogInterval = 200 * time.Millisecond
	cfg.Stdout, cfg.Stderr = io.Discard, io.Discard
	cfg.Command = []string{"true"}
	started := time.Now()
	admin := startWorker(t, cfg, logs)

	testdeps.WaitFor(t, "a log line about the failing queue", func() bool { return len(logs.records(t, "queue requests failing; retrying")) > 0 })
	first := logs.records(t, "queue requests failing; retrying")[0]
	if first["reason"] != "unreachable" || !strings.Contains(fmt.Sprint(first["error"]), "connection refused") || first["worker"] != "w-1" {
		t.Errorf("first failure line: %v", first)
	}
	testdeps.WaitFor(t, "/readyz 503", func() bool { code, _ := get(t, admin+"/readyz"); return code == 503 })
	check := "queue " + queueURL
	code, body := get(t, admin+"/healthz?verbose")
	var hz struct {
		Checks map[string]container.CheckResult `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &hz); err != nil || code != 503 {
		t.Fatalf("/healthz?verbose: %d %s %v", code, body, err)
	}
	if r, ok := hz.Checks[check]; !ok || r.OK || !r.Ready || !strings.Contains(r.Error, "connection refused") {
		t.Errorf("/healthz?verbose has no failing readiness check %q: %s", check, body)
	}
	testdeps.WaitFor(t, "the error metric", func() bool {
		_, m := get(t, admin+"/metrics")
		v, ok := metricValue(t, m, `podkit_worker_queue_errors_total{reason="unreachable"}`)
		return ok && v >= 2
	})
	// While it keeps failing, a line per interval at most, each with the
	// count of failures since the line before.
	testdeps.WaitFor(t, "a repeated failure line", func() bool { return len(logs.records(t, "queue requests still failing")) >= 2 })
	elapsed := time.Since(started)
	for _, rec := range logs.records(t, "queue requests still failing") {
		if n, _ := rec["failures"].(float64); n < 1 {
			t.Errorf("repeated line without a failure count: %v", rec)
		}
	}
	if n, most := len(logs.records(t, "queue requests still failing")), int(elapsed/cfg.ErrorLogInterval)+1; n > most {
		t.Errorf("%d repeated failure lines in %s, want at most %d (one per %s)", n, elapsed, most, cfg.ErrorLogInterval)
	}

	c := serveCoordinator(t, addr)
	testdeps.WaitFor(t, "the recovery line", func() bool { return len(logs.records(t, "queue requests work again")) == 1 })
	testdeps.WaitFor(t, "/readyz 200", func() bool { code, _ := get(t, admin+"/readyz"); return code == 200 })
	ids := enqueue(t, c, "q", client.Item{Payload: json.RawMessage(`1`)})
	waitState(t, c, "q", ids[0], "done")
	if n := len(logs.records(t, "queue requests work again")); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
}

// TestHealthLogLimit drives the failure log with a clock of its own.
func TestHealthLogLimit(t *testing.T) {
	logs := &logBuffer{}
	now := time.Unix(1000, 0)
	h := newQueueHealth(slog.New(slog.NewJSONHandler(logs, nil)), 30*time.Second, nil)
	h.now = func() time.Time { return now }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for range 10 { // 10 failures within 9 s: one line
		h.failure("lease", refused)
		now = now.Add(time.Second)
	}
	if n := len(logs.records(t, "")); n != 1 {
		t.Fatalf("%d lines for 10 failures within the interval, want 1: %v", n, logs.records(t, ""))
	}
	for range 25 { // 25 more up to 34 s: one more at 30 s, counting the 30 since the first line
		h.failure("heartbeat", &client.Error{Status: 503, Msg: "store unavailable"})
		now = now.Add(time.Second)
	}
	still := logs.records(t, "queue requests still failing")
	if len(still) != 1 || still[0]["failures"] != 30.0 || still[0]["failures_total"] != 31.0 || still[0]["reason"] != "server_error" {
		t.Fatalf("repeated lines: %v", still)
	}
	if err := h.check(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("check while failing: %v", err)
	}
	h.success()
	h.success()
	rec := logs.records(t, "queue requests work again")
	if len(rec) != 1 || rec[0]["failures_total"] != 35.0 {
		t.Fatalf("recovery lines: %v", rec)
	}
	if err := h.check(context.Background()); err != nil {
		t.Errorf("check after recovery: %v", err)
	}
	// Flapping right after the recovery line: no line for an outage that
	// is over within the interval.
	now = now.Add(time.Second)
	h.failure("heartbeat", refused)
	h.success()
	if n := len(logs.records(t, "")); n != 3 {
		t.Fatalf("a short outage within the interval logged: %v", logs.records(t, "")[3:])
	}
	// One that lasts past the interval is announced then.
	h.failure("heartbeat", refused)
	now = now.Add(30 * time.Second)
	h.failure("lease", refused)
	if n := len(logs.records(t, "queue requests failing; retrying")); n != 2 {
		t.Errorf("an outage lasting past the interval: %d first-failure lines, want 2", n)
	}
	h.success()
	// A new outage an interval after the last line is logged at once.
	now = now.Add(31 * time.Second)
	h.failure("lease", refused)
	if n := len(logs.records(t, "queue requests failing; retrying")); n != 3 {
		t.Errorf("a new outage logs at once: %d first-failure lines, want 3", n)
	}
	if n := len(logs.records(t, "queue requests work again")); n != 2 {
		t.Errorf("%d recovery lines, want 2", n)
	}
}

// TestCheckWaitsForTheFirstAnswer: before any request finished, the check
// neither passes nor fails early.
func TestCheckWaitsForTheFirstAnswer(t *testing.T) {
	h := newQueueHealth(quiet(), time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := h.check(ctx); err == nil || !strings.Contains(err.Error(), "no answer from the queue yet") {
		t.Errorf("check before any answer: %v", err)
	}
	h.success()
	if err := h.check(context.Background()); err != nil {
		t.Errorf("check after an answer: %v", err)
	}
}

// TestLogLinesNameTheWorker runs two workers through the `podkit worker`
// command on one log stream: every line, the contract's own included,
// names the worker it came from.
func TestLogLinesNameTheWorker(t *testing.T) {
	c, url := coordinator(t)
	type run struct {
		out  *logBuffer
		done chan int
	}
	var runs []run
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, id := range []string{"", "worker-b"} {
		r := run{out: &logBuffer{}, done: make(chan int, 1)}
		args := []string{"worker", "--queue", url + "/queues/ids", "--admin-addr", "off", "--drain-delay", "0s",
			"--wait", "200ms", "--log-format", "json", "--log-level", "debug"}
		if id != "" {
			args = append(args, "--worker-id", id)
		}
		args = append(args, "--", "sh", "-c", "exit 3")
		go func() {
			r.done <- cli.Main(ctx, []cli.Command{Command()}, args, cli.IO{Stdin: strings.NewReader(""), Stdout: r.out, Stderr: r.out})
		}()
		runs = append(runs, r)
	}
	ids := enqueue(t, c, "ids", client.Item{Payload: json.RawMessage(`1`), MaxAttempts: 1}, client.Item{Payload: json.RawMessage(`2`), MaxAttempts: 1})
	waitState(t, c, "ids", ids[0], "dead")
	waitState(t, c, "ids", ids[1], "dead")
	cancel()
	for _, r := range runs {
		select {
		case code := <-r.done:
			if code != 0 {
				t.Errorf("worker exit %d", code)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("worker did not stop")
		}
	}
	seen := map[string]bool{}
	for i, r := range runs {
		recs := r.out.records(t, "")
		if len(recs) < 4 {
			t.Fatalf("worker %d logged only %v", i, recs)
		}
		for _, rec := range recs {
			id, _ := rec["worker"].(string)
			if id == "" {
				t.Errorf("worker %d: line without a worker attribute: %v", i, rec)
			}
			seen[id] = true
		}
	}
	host, _ := os.Hostname()
	if !seen["worker-b"] || len(seen) != 2 {
		t.Errorf("worker ids in the logs: %v, want worker-b and a default", seen)
	}
	for id := range seen {
		if id != "worker-b" && !strings.HasPrefix(id, host+"/") {
			t.Errorf("default worker id %q does not start with the host name %q", id, host)
		}
	}
}
