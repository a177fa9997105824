package discovery

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podkit/podkit/internal/testdeps"
)

func TestParseFile(t *testing.T) {
	set, err := ParseFile([]byte(`
endpoints:
  - address: 10.0.0.2:6379
    weight: 3
    zone: eu-1b
  - address: 10.0.0.1:6379
  - address: 10.0.0.3:6379
    ready: false
    serving: true
    terminating: true
  - address: 10.0.0.4:6379
    ready: false
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{
		{Host: "10.0.0.1", Port: 6379, Weight: 1, Ready: true, Serving: true},
		{Host: "10.0.0.2", Port: 6379, Weight: 3, Zone: "eu-1b", Ready: true, Serving: true},
		{Host: "10.0.0.3", Port: 6379, Weight: 1, Serving: true, Terminating: true},
		{Host: "10.0.0.4", Port: 6379, Weight: 1},
	}
	if !set.Equal(Set{Endpoints: want}) {
		t.Fatalf("got %+v\nwant %+v", set.Endpoints, want)
	}
	// JSON is YAML.
	set, err = ParseFile([]byte(`{"endpoints": [{"address": "[::1]:80", "weight": 2}]}`))
	if err != nil || len(set.Endpoints) != 1 || set.Endpoints[0].Host != "::1" || set.Endpoints[0].Weight != 2 {
		t.Fatalf("JSON: %+v, %v", set, err)
	}
	// An explicit empty list is an empty set, not an error.
	if set, err := ParseFile([]byte("endpoints: []\n")); err != nil || len(set.Endpoints) != 0 {
		t.Fatalf("empty list: %+v, %v", set, err)
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty"},
		{"endpoint: []", "line 1: field endpoint not found"},
		{"other: 1\n", "field other not found"},
		{"{}", "no endpoints: key"},
		{"endpoints:\n  - address: 10.0.0.1\n", "endpoint 1: address"},
		{"endpoints:\n  - address: 10.0.0.1:80\n  - address: 10.0.0.1:99999\n", "endpoint 2: address"},
		{"endpoints:\n  - address: 10.0.0.1:80\n    weight: 0\n", "weight 0 is not in 1..1000000"},
		{"endpoints:\n  - address: 10.0.0.1:80\n    wieght: 2\n", "line 3: field wieght not found"},
		{"endpoints: [", "yaml"},
		{"endpoints:\n  - address: 10.0.0.1:80\n    ready: maybe\n", "line 3"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseFile([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestFileSource: the file is watched; a change is delivered, a broken
// rewrite keeps the last good set and says so, a fix is delivered again.
func TestFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	testdeps.ReplaceFile(t, path, "endpoints:\n  - address: 127.0.0.1:7001\n")
	src, err := Parse("file:"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind() != "file" {
		t.Fatalf("Kind = %q", src.Kind())
	}
	m := NewMetrics("test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := StartWatch(ctx, src, WatchOptions{Name: "app", Metrics: m})
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if got := addrs(w.Current()); len(got) != 1 || got[0] != "127.0.0.1:7001" {
		t.Fatalf("first set %v", got)
	}

	testdeps.ReplaceFile(t, path, "endpoints:\n  - address: 127.0.0.1:7001\n  - address: 127.0.0.1:7002\n")
	testdeps.WaitFor(t, "the second endpoint", func() bool { return len(w.Current().Endpoints) == 2 })

	testdeps.ReplaceFile(t, path, "endpoints:\n  - adress: 127.0.0.1:7003\n")
	testdeps.WaitFor(t, "the broken file reported", func() bool { _, err := w.Status(); return err != nil })
	if _, err := w.Status(); !strings.Contains(err.Error(), "field adress not found") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Status error %v, want it to name the file and the bad key", err)
	}
	if got := len(w.Current().Endpoints); got != 2 {
		t.Fatalf("a broken file changed the set to %d endpoints, want the last good 2", got)
	}
	if v := testutil.ToFloat64(m.healthy.WithLabelValues("app")); v != 0 {
		t.Fatalf("healthy = %v while the file is broken, want 0", v)
	}
	if v := testutil.ToFloat64(m.errors.WithLabelValues("app", "file")); v < 1 {
		t.Fatalf("errors_total = %v, want >= 1", v)
	}

	testdeps.ReplaceFile(t, path, "endpoints: []\n")
	testdeps.WaitFor(t, "the fixed (empty) file", func() bool {
		_, err := w.Status()
		return err == nil && len(w.Current().Endpoints) == 0
	})
	if v := testutil.ToFloat64(m.healthy.WithLabelValues("app")); v != 1 {
		t.Fatalf("healthy = %v after the fix, want 1", v)
	}
	if v := testutil.ToFloat64(m.endpoints.WithLabelValues("app", "ready")); v != 0 {
		t.Fatalf("endpoints{ready} = %v, want 0", v)
	}
}

// TestFileSourceMissing: a file that does not exist yet is a failure, not
// an empty set: the watch stays unsynced until the file appears.
func TestFileSourceMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.yaml")
	src, err := Parse("file:"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := StartWatch(ctx, src, WatchOptions{})
	testdeps.WaitFor(t, "the missing file reported", func() bool { _, err := w.Status(); return err != nil })
	if synced, err := w.Status(); synced || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Status = %v, %v; want unsynced with the missing file", synced, err)
	}
	testdeps.ReplaceFile(t, path, "endpoints:\n  - address: 127.0.0.1:7001\n")
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Name() != "file:"+path {
		t.Fatalf("Name = %q, want the source string", w.Name())
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	src, err := Parse("static:127.0.0.1:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := StartWatch(ctx, src, WatchOptions{})
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-w.Done()
	if _, err := w.Status(); err != nil {
		t.Fatalf("Status after a clean stop = %v", err)
	}
}
