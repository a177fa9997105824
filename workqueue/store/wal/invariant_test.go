package wal_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/store"
	"github.com/podkit/podkit/workqueue/store/wal"
)

// TestInternalInconsistency breaks the store's in-memory state by hand, as
// a bug would, and checks that the change it refuses is answered with a
// 503 JSON error instead of a panic, that nothing acknowledged is lost, and
// that the store rebuilds its state from the log and goes on.
func TestInternalInconsistency(t *testing.T) {
	dir := t.TempDir()
	logs := &testdeps.Buffer{}
	// The clock runs ahead when the expiry subtest says so.
	var ahead atomic.Int64
	opts := wal.Options{
		Logger:            slog.New(slog.NewTextHandler(logs, nil)),
		RetryAfterFailure: 10 * time.Millisecond,
		BackoffBase:       10 * time.Millisecond,
		Now:               func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
	}
	s, err := wal.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	srv := httptest.NewServer(workqueue.NewHandler(s, workqueue.HandlerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()

	post := func(t *testing.T, path, body string) (int, http.Header, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if len(b) > 0 {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("POST %s: %d, answer is not JSON: %q", path, resp.StatusCode, b)
			}
		}
		return resp.StatusCode, resp.Header, m
	}
	// retry posts until the answer is not 503 (the rebuild runs on the
	// committer, a moment after the refusal).
	retry := func(t *testing.T, path, body string) (int, map[string]any) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _, m := post(t, path, body)
			if st != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return st, m
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	refused := func(t *testing.T, what string, st int, h http.Header, m map[string]any) {
		t.Helper()
		msg, _ := m["error"].(string)
		if st != http.StatusServiceUnavailable || !strings.Contains(msg, "internal inconsistency") || h.Get("Retry-After") == "" {
			t.Fatalf("%s: %d %v (Retry-After %q), want 503 naming the internal inconsistency", what, st, m, h.Get("Retry-After"))
		}
	}

	st, _, m := post(t, "/queues/q/items", `{"payload":{"n":1}}`)
	if st != http.StatusCreated {
		t.Fatalf("enqueue: %d %v", st, m)
	}
	first, _ := strconv.ParseUint(m["id"].(string), 10, 64)

	t.Run("lease", func(t *testing.T) {
		// The item sits in the ready heap but claims to be done.
		wal.BreakItemState(s, first, store.Done)
		st, h, m := post(t, "/queues/q/lease", `{"wait_seconds":0}`)
		refused(t, "lease", st, h, m)
		st, m = retry(t, "/queues/q/lease", `{"wait_seconds":1}`)
		if st != http.StatusOK || m["id"] != strconv.FormatUint(first, 10) || m["attempt"] != 1.0 {
			t.Fatalf("lease after the rebuild: %d %v, want item %d attempt 1", st, m, first)
		}
		if st, _, m := post(t, "/leases/"+m["token"].(string)+"/ack", ""); st != http.StatusOK || m["state"] != "done" {
			t.Fatalf("ack: %d %v", st, m)
		}
	})

	t.Run("enqueue", func(t *testing.T) {
		// The next enqueue would reuse the first item's id.
		wal.RewindNextID(s, first)
		st, h, m := post(t, "/queues/q/items", `{"payload":{"n":2}}`)
		refused(t, "enqueue", st, h, m)
		st, m = retry(t, "/queues/q/items", `{"payload":{"n":2}}`)
		if st != http.StatusCreated || m["id"] == strconv.FormatUint(first, 10) {
			t.Fatalf("enqueue after the rebuild: %d %v", st, m)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		// The tick loop expires a lease whose item claims to be ready: it
		// must neither panic nor spin, and the lease expires once the state
		// is rebuilt.
		st, _, m := post(t, "/queues/e/items", `{"payload":3,"timeout":"1m","max_attempts":3}`)
		if st != http.StatusCreated {
			t.Fatalf("enqueue: %d %v", st, m)
		}
		id, _ := strconv.ParseUint(m["id"].(string), 10, 64)
		st, m = retry(t, "/queues/e/lease", `{"wait_seconds":1}`)
		if st != http.StatusOK {
			t.Fatalf("lease: %d %v", st, m)
		}
		before := strings.Count(logs.String(), "internal inconsistency")
		wal.BreakItemState(s, id, store.Ready)
		ahead.Store(int64(2 * time.Minute)) // past the lease's deadline
		st, m = retry(t, "/queues/e/lease", `{"wait_seconds":5}`)
		if st != http.StatusOK || m["id"] != strconv.FormatUint(id, 10) || m["attempt"] != 2.0 {
			t.Fatalf("lease after the expiry: %d %v, want item %d attempt 2", st, m, id)
		}
		if strings.Count(logs.String(), "internal inconsistency") == before {
			t.Fatalf("the refused expiry was not logged:\n%s", logs.String())
		}
	})

	// Nothing acknowledged was lost: after a restart the first item is
	// done, the second ready, with distinct ids.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = wal.Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	items, err := s.List(context.Background(), store.ListRequest{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	if len(items.Items) != 2 || items.Items[0].State != store.Done || items.Items[1].State != store.Ready ||
		string(items.Items[1].Payload) != `{"n":2}` {
		t.Fatalf("queue q after the inconsistencies: %+v", items.Items)
	}
	if !strings.Contains(logs.String(), "state rebuilt from the log") {
		t.Errorf("no rebuild logged:\n%s", logs.String())
	}
}

// TestInternalInconsistencyMemory: a memory store cannot rebuild, but it
// refuses the change with an error all the same.
func TestInternalInconsistencyMemory(t *testing.T) {
	s := wal.OpenMemory(wal.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	ctx := context.Background()
	res, err := s.Enqueue(ctx, []store.NewItem{{Queue: "q", Payload: json.RawMessage(`1`)}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	id, _ := strconv.ParseUint(res[0].ID, 10, 64)
	wal.BreakItemState(s, id, store.Leased)
	if _, err := s.Lease(ctx, store.LeaseRequest{Queue: "q", Max: 1}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("lease of a broken item: %v, want ErrUnavailable", err)
	}
}
