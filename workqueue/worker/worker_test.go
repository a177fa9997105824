package worker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/store/wal"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// coordinator starts the queue API over a memory store.
func coordinator(t *testing.T) (*client.Client, string) {
	t.Helper()
	c, url, _ := countingCoordinator(t)
	return c, url
}

// countingCoordinator is coordinator that also counts the lease requests
// in progress.
func countingCoordinator(t *testing.T) (*client.Client, string, *atomic.Int32) {
	t.Helper()
	st := wal.OpenMemory(wal.Options{Logger: quiet(), BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	api := workqueue.NewHandler(st, workqueue.HandlerOptions{Logger: quiet()})
	var leasing atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/lease") {
			leasing.Add(1)
			defer leasing.Add(-1)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	return client.New(srv.URL, nil), srv.URL, &leasing
}

// runWorker runs a worker under the container contract until the test ends.
func runWorker(t *testing.T, cfg Config) (adminURL string) {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	o := container.DefaultOptions()
	o.AdminListener = ln
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = quiet()
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

func enqueue(t *testing.T, c *client.Client, q string, items ...client.Item) []string {
	t.Helper()
	res, err := c.Enqueue(context.Background(), q, items)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range res {
		if r.Status != 201 {
			t.Fatalf("enqueue: %+v", r)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

func waitState(t *testing.T, c *client.Client, q, id, state string) client.ItemInfo {
	t.Helper()
	var it client.ItemInfo
	testdeps.WaitFor(t, "item "+id+" in state "+state, func() bool {
		var err error
		it, err = c.Get(context.Background(), q, id)
		return err == nil && it.State == state
	})
	return it
}

func TestExecAdapter(t *testing.T) {
	c, url := coordinator(t)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Queue = url + "/queues/x"
	cfg.Concurrency = 2
	cfg.Wait = 200 * time.Millisecond
	cfg.KillGrace = 100 * time.Millisecond
	cfg.Stdout, cfg.Stderr = io.Discard, io.Discard
	cfg.Command = []string{"sh", "-c", `
payload=$(cat)
[ "$payload" = "$(cat "$PODKIT_ITEM_FILE")" ] || { echo "file and stdin differ" >&2; exit 9; }
case "$payload" in
  *fail*) echo "line one" >&2; echo "it failed on attempt $PODKIT_ATTEMPT" >&2; exit 4;;
  *slow*) sleep 30;;
esac
echo "$PODKIT_ITEM_ID" > "` + dir + `/$PODKIT_ITEM_ID"`}
	runWorker(t, cfg)
	ids := enqueue(t, c, "x",
		client.Item{Payload: json.RawMessage(`"ok"`)},
		client.Item{Payload: json.RawMessage(`"fail"`), MaxAttempts: 1},
		// Heartbeats every 500ms keep the lease through a loaded machine's
		// stalls, so it is the worker that kills the command at 1.5s (with
		// 300ms the lease sometimes expired first).
		client.Item{Payload: json.RawMessage(`"slow"`), MaxAttempts: 1, Timeout: "1500ms"},
	)
	waitState(t, c, "x", ids[0], "done")
	it := waitState(t, c, "x", ids[1], "dead")
	if !strings.Contains(it.LastError, "exit status 4") || !strings.Contains(it.LastError, "it failed on attempt 1") {
		t.Errorf("nack of a failing command: %q", it.LastError)
	}
	it = waitState(t, c, "x", ids[2], "dead")
	if !strings.Contains(it.LastError, "timeout") {
		t.Errorf("command past its timeout: %q", it.LastError)
	}
}

func TestHeartbeatsExtendTheLease(t *testing.T) {
	c, url := coordinator(t)
	cfg := DefaultConfig()
	cfg.Queue = url + "/queues/h"
	cfg.Wait = 200 * time.Millisecond
	cfg.Stdout, cfg.Stderr = io.Discard, io.Discard
	cfg.Command = []string{"sleep", "1.5"}
	runWorker(t, cfg)
	ids := enqueue(t, c, "h", client.Item{Payload: json.RawMessage(`1`), Timeout: "2s", MaxAttempts: 1})
	first := waitState(t, c, "h", ids[0], "leased")
	deadline := time.Now().Add(10 * time.Second)
	for {
		it, err := c.Get(context.Background(), "h", ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if it.State == "leased" && it.Deadline != nil && it.Deadline.After(first.Deadline.Add(300*time.Millisecond)) {
			break // a heartbeat moved the deadline
		}
		if it.State != "leased" || time.Now().After(deadline) {
			t.Fatalf("the deadline never moved while the command ran: first %v, now %+v", first.Deadline, it)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitState(t, c, "h", ids[0], "done")
}

func TestHTTPAdapterAndPause(t *testing.T) {
	c, url, leasing := countingCoordinator(t)
	var calls atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Podkit-Item-Id") == "" || r.Header.Get("Podkit-Attempt") != "1" {
			http.Error(w, "missing headers", 400)
			return
		}
		if string(body) == `"bad"` {
			http.Error(w, "cannot do bad things", http.StatusUnprocessableEntity)
		}
	}))
	defer app.Close()
	cfg := DefaultConfig()
	cfg.Queue = url + "/queues/w"
	cfg.HTTP = app.URL
	cfg.Wait = 200 * time.Millisecond
	admin := runWorker(t, cfg)
	ids := enqueue(t, c, "w", client.Item{Payload: json.RawMessage(`"good"`)}, client.Item{Payload: json.RawMessage(`"bad"`), MaxAttempts: 1})
	waitState(t, c, "w", ids[0], "done")
	it := waitState(t, c, "w", ids[1], "dead")
	if !strings.Contains(it.LastError, "422") || !strings.Contains(it.LastError, "cannot do bad things") {
		t.Errorf("nack of a 422: %q", it.LastError)
	}
	// Paused, the worker leases nothing.
	resp, err := http.Post(admin+"/pause", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pause: %v %v", resp, err)
	}
	// The long-poll in flight is cancelled.
	testdeps.WaitFor(t, "the paused worker's lease request to be cancelled", func() bool { return leasing.Load() == 0 })
	before := calls.Load()
	ids = enqueue(t, c, "w", client.Item{Payload: json.RawMessage(`"later"`)})
	time.Sleep(500 * time.Millisecond)
	if it, _ := c.Get(context.Background(), "w", ids[0]); it.State != "ready" || calls.Load() != before {
		t.Fatalf("paused worker took an item: %+v", it)
	}
	http.Post(admin+"/resume", "", nil)
	waitState(t, c, "w", ids[0], "done")
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Queue = "" }, "--queue: required"},
		{func(c *Config) { c.Queue = "http://h/x" }, "URL/queues/<name>"},
		{func(c *Config) { c.Command = nil }, "command after --"},
		{func(c *Config) { c.HTTP = "http://x" }, "not both"},
		{func(c *Config) { c.Concurrency = 0 }, "--concurrency"},
		{func(c *Config) { c.Wait = 0 }, "--wait"},
		{func(c *Config) { c.Client.CertFile = "/nonexistent/w.crt" }, "--cert and --key: give both or neither"},
		{func(c *Config) { c.Client.TokenFile = "/nonexistent/token" }, "--token-file"},
		{func(c *Config) { c.Client.CAFile = "/nonexistent/ca.crt" }, "--ca"},
		{func(c *Config) { c.Client.CAFile = "/nonexistent/ca.crt" }, "is not an https:// URL"},
	} {
		cfg := DefaultConfig()
		cfg.Queue = "http://h:1/queues/q"
		cfg.Command = []string{"true"}
		tc.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want an error with %q", err, tc.want)
		}
	}
}

// TestReasonOfRefusals: the queue's 401 and 403 are counted apart from
// other 4xx answers.
func TestReasonOfRefusals(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&client.Error{Status: 401, Msg: "no credential"}, "unauthorized"},
		{&client.Error{Status: 403, Msg: "wrong role", Role: "worker"}, "forbidden"},
		{&client.Error{Status: 404, Msg: "no queue"}, "client_error"},
		{&client.Error{Status: 503, Msg: "disk full"}, "server_error"},
	} {
		if got := reason(tc.err); got != tc.want {
			t.Errorf("reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
