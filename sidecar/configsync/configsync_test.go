//go:build linux

package configsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestHTTPSourceConditional polls a real HTTP server: the first fetch gets
// the body, later ones are answered 304 and change nothing, and a new
// version is published.
func TestHTTPSourceConditional(t *testing.T) {
	for _, tc := range []struct {
		name       string
		etag       bool // validator: ETag, or else Last-Modified
		wantHeader string
	}{
		{"etag", true, "If-None-Match"},
		{"last-modified", false, "If-Modified-Since"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu               sync.Mutex
				body             = "worker_processes 1;\n"
				version          = 1
				modified         = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
				oks, notModified int
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if tc.etag {
					etag := fmt.Sprintf("%q", fmt.Sprint("v", version))
					w.Header().Set("ETag", etag)
					if r.Header.Get("If-None-Match") == etag {
						notModified++
						w.WriteHeader(http.StatusNotModified)
						return
					}
				} else {
					w.Header().Set("Last-Modified", modified.Format(http.TimeFormat))
					if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !modified.After(ims) {
						notModified++
						w.WriteHeader(http.StatusNotModified)
						return
					}
				}
				oks++
				fmt.Fprint(w, body)
			}))
			defer srv.Close()

			dest := filepath.Join(t.TempDir(), "app.conf")
			cfg := DefaultConfig()
			cfg.Source = srv.URL + "/configs/app.conf"
			cfg.Dest = dest
			s, _ := newSyncer(t, cfg)
			ctx := context.Background()

			res, err := s.Sync(ctx)
			if err != nil || !res.Changed {
				t.Fatalf("first sync: %+v, %v", res, err)
			}
			fi1, _ := os.Stat(dest)
			for range 3 {
				res, err := s.Sync(ctx)
				if err != nil || res.Changed {
					t.Fatalf("sync of an unchanged source: %+v, %v", res, err)
				}
			}
			mu.Lock()
			if oks != 1 || notModified != 3 {
				t.Fatalf("server saw %d full answers and %d 304s, want 1 and 3 (conditional header %s not sent?)", oks, notModified, tc.wantHeader)
			}
			body, version, modified = "worker_processes 4;\n", 2, modified.Add(time.Hour)
			mu.Unlock()
			fi2, _ := os.Stat(dest)
			if !os.SameFile(fi1, fi2) {
				t.Fatal("an unchanged source replaced the destination file")
			}
			res, err = s.Sync(ctx)
			if err != nil || !res.Changed {
				t.Fatalf("sync of a new version: %+v, %v", res, err)
			}
			if got := readFile(t, dest); got != "worker_processes 4;\n" {
				t.Fatalf("dest = %q", got)
			}
			sum := sha256.Sum256([]byte("worker_processes 4;\n"))
			if res.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("SHA256 = %s, want the sha256 of the file", res.SHA256)
			}
			want := `podkit_configsync_content_info{sha256="` + res.SHA256 + `"} 1`
			if err := testutil.CollectAndCompare(s.m.content, strings.NewReader("# HELP podkit_configsync_content_info The SHA-256 of the published content; always 1.\n# TYPE podkit_configsync_content_info gauge\n"+want+"\n")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHTTPSourceErrors: a failing source leaves the destination alone and
// names the problem.
func TestHTTPSourceErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		max     int64
		want    string
	}{
		{"status", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "backend down", http.StatusServiceUnavailable)
		}, 0, "503 Service Unavailable: backend down"},
		{"too large", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 2048)) }, 1024, "larger than --max-bytes"},
		{"not found", http.NotFound, 0, "404 Not Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			dest := filepath.Join(t.TempDir(), "app.conf")
			os.WriteFile(dest, []byte("old"), 0o644)
			cfg := DefaultConfig()
			cfg.Source, cfg.Dest = srv.URL, dest
			if tc.max > 0 {
				cfg.MaxBytes = tc.max
			}
			s, _ := newSyncer(t, cfg)
			_, err := s.Sync(context.Background())
			if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrFetch mentioning %q", err, tc.want)
			}
			if got := readFile(t, dest); got != "old" {
				t.Fatalf("dest = %q after a failed fetch", got)
			}
			if got := testutil.ToFloat64(s.m.failures.WithLabelValues(reasonFetch)); got != 1 {
				t.Fatalf("failures{reason=fetch} = %v", got)
			}
		})
	}
}

// TestHTTPSourceHeaders: --header and --bearer-token-file reach the server;
// the token file is read at every fetch.
func TestHTTPSourceHeaders(t *testing.T) {
	var got atomic.Pointer[http.Header]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		got.Store(&h)
		fmt.Fprint(w, "x")
	}))
	defer srv.Close()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("s3cret\n"), 0o600)
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = srv.URL, filepath.Join(dir, "out")
	cfg.Headers = []string{"x-tenant: blue"}
	cfg.BearerTokenFile = token
	s, _ := newSyncer(t, cfg)
	if _, err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := *got.Load()
	if h.Get("X-Tenant") != "blue" || h.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("headers = %v", h)
	}
	b, err := json.Marshal(s.EffectiveConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ec := string(b); strings.Contains(ec, "blue") || strings.Contains(ec, "s3cret") || !strings.Contains(ec, `"X-Tenant: [redacted]"`) {
		t.Fatalf("effective config leaks a header value: %s", ec)
	}
}

// kubeletVolume builds and updates a directory the way kubelet's
// AtomicWriter does for ConfigMap volumes: files live in a timestamped
// directory, "..data" points at it, and each key is a symlink through
// "..data". An update writes a new timestamped directory, points
// "..data_tmp" at it, renames "..data_tmp" over "..data" (the atomic
// switch), fixes the key symlinks and removes the old directory.
type kubeletVolume struct {
	t   *testing.T
	dir string
	n   int
	cur string
}

func newKubeletVolume(t *testing.T, files map[string]string) *kubeletVolume {
	v := &kubeletVolume{t: t, dir: t.TempDir()}
	v.update(files)
	return v
}

func (v *kubeletVolume) update(files map[string]string) {
	t := v.t
	v.n++
	ts := fmt.Sprintf("..2025_06_01_12_00_%02d.%09d", v.n, v.n)
	tsDir := filepath.Join(v.dir, ts)
	if err := os.Mkdir(tsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tsDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	// Key symlinks: add new ones, remove those no longer projected.
	entries, _ := os.ReadDir(v.dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			if _, ok := files[e.Name()]; !ok {
				os.Remove(filepath.Join(v.dir, e.Name()))
			}
		}
	}
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v.cur != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, v.cur)); err != nil {
			t.Fatal(err)
		}
	}
	v.cur = ts
}

// TestConfigMapVolume runs config-sync (inotify only: the poll is an hour)
// against a kubelet-style volume and swaps ..data under it.
func TestConfigMapVolume(t *testing.T) {
	t.Parallel()
	t.Run("file inside the volume", func(t *testing.T) {
		vol := newKubeletVolume(t, map[string]string{"app.conf": "v1", "other": "o1"})
		dest := filepath.Join(t.TempDir(), "app.conf")
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest = filepath.Join(vol.dir, "app.conf"), dest
		cfg.PollInterval = time.Hour
		cfg.Debounce = 20 * time.Millisecond
		s, _ := newSyncer(t, cfg)
		runHosted(t, s)
		testdeps.WaitFor(t, "v1 published", fileIs(dest, "v1"))
		vol.update(map[string]string{"app.conf": "v2", "other": "o2"})
		testdeps.WaitFor(t, "v2 published after the ..data swap", fileIs(dest, "v2"))
	})
	t.Run("directory to directory", func(t *testing.T) {
		vol := newKubeletVolume(t, map[string]string{"a.conf": "a1", "b.conf": "b1"})
		dest := filepath.Join(t.TempDir(), "conf.d") + "/"
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest = vol.dir, dest
		cfg.PollInterval = time.Hour
		cfg.Debounce = 20 * time.Millisecond
		s, _ := newSyncer(t, cfg)
		runHosted(t, s)
		testdeps.WaitFor(t, "a1, b1 published", func() bool {
			return fileIs(filepath.Join(dest, "a.conf"), "a1")() && fileIs(filepath.Join(dest, "b.conf"), "b1")()
		})
		vol.update(map[string]string{"a.conf": "a2", "c.conf": "c2"})
		listing := func() string {
			entries, _ := os.ReadDir(dest)
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			return strings.Join(got, ",")
		}
		// Exactly a.conf and c.conf (and the manifest): b.conf pruned, no
		// staging leftovers.
		testdeps.WaitFor(t, "a2, c2 published and b.conf removed", func() bool {
			return fileIs(filepath.Join(dest, "a.conf"), "a2")() && fileIs(filepath.Join(dest, "c.conf"), "c2")() && listing() == manifestName+",a.conf,c.conf"
		})
	})
	t.Run("directory through a template", func(t *testing.T) {
		vol := newKubeletVolume(t, map[string]string{"upstreams": "10.0.0.1:80\n10.0.0.2:80\n", "port": "8080"})
		dir := t.TempDir()
		tmpl := filepath.Join(dir, "nginx.conf.tmpl")
		os.WriteFile(tmpl, []byte("upstream app {\n{{- range lines (index .Files \"upstreams\")}}\n  server {{.}};\n{{- end}}\n}\nlisten {{index .Files \"port\" | trim}};\n"), 0o644)
		dest := filepath.Join(dir, "nginx.conf")
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest, cfg.Template = vol.dir, dest, tmpl
		cfg.PollInterval = time.Hour
		cfg.Debounce = 20 * time.Millisecond
		s, _ := newSyncer(t, cfg)
		runHosted(t, s)
		testdeps.WaitFor(t, "the rendered v1", fileIs(dest, "upstream app {\n  server 10.0.0.1:80;\n  server 10.0.0.2:80;\n}\nlisten 8080;\n"))
		vol.update(map[string]string{"upstreams": "10.0.0.3:80\n", "port": "9090"})
		testdeps.WaitFor(t, "the rendered v2", fileIs(dest, "upstream app {\n  server 10.0.0.3:80;\n}\nlisten 9090;\n"))
		// The template is watched too.
		testdeps.ReplaceFile(t, tmpl, "port {{index .Files \"port\"}}\n")
		testdeps.WaitFor(t, "a template change applied", fileIs(dest, "port 9090\n"))
	})
}

// TestConfigMapSnapshotConsistent: a directory source read while kubelet
// swaps ..data never mixes two versions.
func TestConfigMapSnapshotConsistent(t *testing.T) {
	vol := newKubeletVolume(t, map[string]string{"a": "0", "b": "0", "c": "0"})
	src := &pathSource{path: vol.dir, max: 1 << 20}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			v := fmt.Sprint(i)
			vol.update(map[string]string{"a": v, "b": v, "c": v})
		}
	}()
	reads := 0
	for range 300 {
		s, err := src.fetch(context.Background())
		if err != nil {
			continue // the version moved five times in a row: retried later
		}
		reads++
		if len(s.files) != 3 {
			t.Fatalf("snapshot has %d files", len(s.files))
		}
		for _, f := range s.files[1:] {
			if string(f.data) != string(s.files[0].data) {
				t.Fatalf("torn snapshot: %s=%q but %s=%q", s.files[0].name, s.files[0].data, f.name, f.data)
			}
		}
	}
	close(done)
	wg.Wait()
	if reads == 0 {
		t.Fatal("no snapshot could be read")
	}
}

// TestValidateRejectKeepsOld: a validation failure leaves the old file,
// cleans up the staged one, and logs the command's output tail.
func TestValidateRejectKeepsOld(t *testing.T) {
	t.Parallel()
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Fatalf("%s is needed to run the validation script: %v", sh, err)
	}
	for _, tc := range []struct {
		name, cmd string
	}{
		{"placeholder", `/bin/sh -c 'grep -q "^ok" "$1" || { echo "line 1: bad directive" >&2; exit 3; }' validate {}`},
		{"environment", `/bin/sh -c 'grep -q "^ok" "$PODKIT_STAGED_FILE" || { echo "line 1: bad directive" >&2; exit 3; }'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dest := filepath.Join(dir, "src.conf"), filepath.Join(dir, "out", "app.conf")
			testdeps.ReplaceFile(t, src, "ok v1\n")
			cfg := DefaultConfig()
			cfg.Source, cfg.Dest, cfg.ValidateCmd = src, dest, tc.cmd
			s, logs := newSyncer(t, cfg)
			if _, err := s.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			testdeps.ReplaceFile(t, src, "broken v2\n")
			_, err := s.Sync(context.Background())
			if !errors.Is(err, ErrValidate) || !strings.Contains(err.Error(), "exited with status 3") {
				t.Fatalf("err = %v, want ErrValidate with the exit status", err)
			}
			if got := readFile(t, dest); got != "ok v1\n" {
				t.Fatalf("dest = %q, want the old file", got)
			}
			if !strings.Contains(logs.String(), "line 1: bad directive") {
				t.Fatalf("the log lacks the command's stderr:\n%s", logs)
			}
			entries, _ := os.ReadDir(filepath.Dir(dest))
			if len(entries) != 1 {
				t.Fatalf("dest dir holds %d entries, want only app.conf (staged file not removed)", len(entries))
			}
			if got := testutil.ToFloat64(s.m.failures.WithLabelValues(reasonValidate)); got != 1 {
				t.Fatalf("failures{reason=validate} = %v", got)
			}
			// Polling the same rejected version does not validate it again.
			if res, err := s.Sync(context.Background()); err != nil || !res.Skipped {
				t.Fatalf("sync of the same rejected version: %+v, %v; want skipped", res, err)
			}
			if got := testutil.ToFloat64(s.m.failures.WithLabelValues(reasonValidate)); got != 1 {
				t.Fatalf("failures{reason=validate} = %v after a skip", got)
			}
			testdeps.ReplaceFile(t, src, "ok v3\n")
			if _, err := s.Sync(context.Background()); err != nil || readFile(t, dest) != "ok v3\n" {
				t.Fatalf("a valid v3 was not published: %v", err)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		dir := t.TempDir()
		src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
		testdeps.ReplaceFile(t, src, "x")
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest = src, dest
		cfg.ValidateCmd, cfg.ValidateTimeout = "/bin/sh -c 'sleep 30'", 200*time.Millisecond
		s, _ := newSyncer(t, cfg)
		_, err := s.Sync(context.Background())
		if !errors.Is(err, ErrValidate) || !strings.Contains(err.Error(), "--validate-timeout") {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("a file that was never validated was published")
		}
	})
	t.Run("missing command", func(t *testing.T) {
		dir := t.TempDir()
		src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
		testdeps.ReplaceFile(t, src, "x")
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest, cfg.ValidateCmd = src, dest, "/nonexistent/validator {}"
		// Found at start, not at the first sync.
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), `--validate-cmd: "/nonexistent/validator" cannot be run`) {
			t.Fatalf("New: %v, want an error naming --validate-cmd and the binary", err)
		}
	})
}

// TestDirectoryDestShape: a directory source is published into a
// directory: an existing one, or one spelled with a trailing slash, which
// is created. A name that does not exist and does not end in a slash is
// refused at start rather than turned into a directory.
func TestDirectoryDestShape(t *testing.T) {
	vol := newKubeletVolume(t, map[string]string{"a.conf": "a1"})
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = vol.dir, filepath.Join(dir, "x.conf")
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), `write "`+cfg.Dest+`/" to have it created`) {
		t.Fatalf("New: %v, want a refusal naming --dest", err)
	}
	if _, err := os.Stat(cfg.Dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused --dest was created")
	}
	cfg.Dest = filepath.Join(dir, "conf.d") + "/"
	s, _ := newSyncer(t, cfg)
	if _, err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(dir, "conf.d", "a.conf")) != "a1" {
		t.Fatal("not published into the directory")
	}
	cfg.Dest = filepath.Join(dir, "conf.d") // exists now
	if _, err := New(cfg); err != nil {
		t.Fatalf("an existing directory --dest: %v", err)
	}
}

// reloadApp is a real HTTP application whose reload endpoint reads the
// published file and refuses it when it contains "broken".
type reloadApp struct {
	mu   sync.Mutex
	seen []string // "<content> <status>"
}

func (a *reloadApp) handler(dest string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		b, _ := os.ReadFile(dest)
		status := http.StatusOK
		if strings.Contains(string(b), "broken") {
			status = http.StatusInternalServerError
		}
		a.mu.Lock()
		a.seen = append(a.seen, fmt.Sprintf("%s %d", strings.TrimSpace(string(b)), status))
		a.mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprintln(w, "reload", status)
	}
}

func (a *reloadApp) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.seen, "; ")
}

// TestReloadFailureRollsBack: the app refuses the new file, so the old one
// is restored and reloaded again.
func TestReloadFailureRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dirDest bool
	}{
		{"file", false},
		{"directory", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var src, dest, watched string
			var vol *kubeletVolume
			if tc.dirDest {
				vol = newKubeletVolume(t, map[string]string{"app.conf": "good v1"})
				src, dest = vol.dir, filepath.Join(dir, "conf.d")+"/"
				watched = filepath.Join(dest, "app.conf")
			} else {
				src, dest = filepath.Join(dir, "src.conf"), filepath.Join(dir, "app.conf")
				testdeps.ReplaceFile(t, src, "good v1")
				watched = dest
			}
			app := &reloadApp{}
			srv := httptest.NewServer(app.handler(watched))
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.Source, cfg.Dest = src, dest
			cfg.ReloadURL, cfg.ReloadRetries = srv.URL+"/-/reload", 1
			s, logs := newSyncer(t, cfg)
			for _, r := range s.reloader {
				r.(*httpReloader).backoff = time.Millisecond
			}
			res, err := s.Sync(context.Background())
			if err != nil || !res.Reloaded {
				t.Fatalf("first sync: %+v, %v", res, err)
			}
			if tc.dirDest {
				vol.update(map[string]string{"app.conf": "broken v2", "extra.conf": "x"})
			} else {
				testdeps.ReplaceFile(t, src, "broken v2")
			}
			res, err = s.Sync(context.Background())
			if !errors.Is(err, ErrReload) || !res.RolledBack {
				t.Fatalf("sync of a refused file: %+v, %v", res, err)
			}
			if got := readFile(t, watched); got != "good v1" {
				t.Fatalf("dest = %q after the rollback, want the old file", got)
			}
			if tc.dirDest {
				if _, err := os.Stat(filepath.Join(dest, "extra.conf")); !errors.Is(err, os.ErrNotExist) {
					t.Fatal("a file added by the refused version survived the rollback")
				}
			}
			want := "good v1 200; broken v2 500; broken v2 500; good v1 200"
			if got := app.log(); got != want {
				t.Fatalf("the app saw %q, want %q", got, want)
			}
			// The next poll finds the same refused version: it is not
			// published and rolled back again (until a backoff passes).
			if res, err := s.Sync(context.Background()); err != nil || !res.Skipped {
				t.Fatalf("sync of the same refused version: %+v, %v; want skipped", res, err)
			}
			if got := app.log(); got != want {
				t.Fatalf("the app saw %q after a skip, want %q", got, want)
			}
			if got := readFile(t, watched); got != "good v1" {
				t.Fatalf("dest = %q after a skip", got)
			}
			if !strings.Contains(logs.String(), "previous content is restored and reloaded") {
				t.Fatalf("log:\n%s", logs)
			}
			if got := testutil.ToFloat64(s.m.failures.WithLabelValues(reasonReload)); got != 1 {
				t.Fatalf("failures{reason=reload} = %v", got)
			}
			if got := testutil.ToFloat64(s.m.syncs.WithLabelValues(resultRolledBack)); got != 1 {
				t.Fatalf("syncs{result=rolled_back} = %v", got)
			}
		})
	}
}

// TestReloadHTTPRetries: a reload endpoint that fails twice then succeeds
// is retried, and the expected status is honoured.
func TestReloadHTTPRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			t.Errorf("method %s, want PUT", r.Method)
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	r := &httpReloader{url: srv.URL, method: http.MethodPut, expect: http.StatusAccepted, retries: 3, timeout: 5 * time.Second, client: srv.Client(), backoff: time.Millisecond}
	if err := r.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}
	r.expect = http.StatusOK
	r.retries = 0
	if err := r.reload(context.Background()); err == nil || !strings.Contains(err.Error(), "202 Accepted, want 200") {
		t.Fatalf("err = %v", err)
	}
}

// TestSignalByProcessName delivers SIGHUP to a real process found by its
// name, and not to its child of the same name (nginx's master, not its
// workers); with --pid-file, to the PID in the file.
func TestSignalByProcessName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src.conf"), filepath.Join(dir, "app.conf")
	testdeps.ReplaceFile(t, src, "v1")
	testdeps.ReplaceFile(t, dest, "v0")
	name := fmt.Sprintf("cshup%d", os.Getpid()%1000000)
	state := filepath.Join(dir, "state")
	app := startHupApp(t, name, dest, state, "spawn-child")

	cfg := DefaultConfig()
	cfg.Source, cfg.Dest, cfg.ProcessName = src, dest, name
	s, _ := newSyncer(t, cfg)
	res, err := s.Sync(context.Background())
	if err != nil || !res.Reloaded {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	testdeps.WaitFor(t, "the app to reload v1", func() bool { n, c := readState(t, state); return n == 1 && c == "v1" })
	testdeps.ReplaceFile(t, src, "v2")
	if _, err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	testdeps.WaitFor(t, "the app to reload v2", func() bool { n, c := readState(t, state); return n == 2 && c == "v2" })
	if n, _ := readState(t, state+".child"); n != 0 {
		t.Fatalf("the child (same name) got %d SIGHUPs, want 0", n)
	}
	if got := testutil.ToFloat64(s.m.reloads.WithLabelValues("ok")); got != 2 {
		t.Fatalf("reloads{ok} = %v", got)
	}

	t.Run("pid-file", func(t *testing.T) {
		pidFile := filepath.Join(dir, "app.pid")
		os.WriteFile(pidFile, []byte(fmt.Sprintln(app.Process.Pid)), 0o644)
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest, cfg.PIDFile, cfg.Signal = src, dest, pidFile, "SIGHUP"
		s, _ := newSyncer(t, cfg)
		testdeps.ReplaceFile(t, src, "v3")
		if _, err := s.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		testdeps.WaitFor(t, "the app to reload v3", func() bool { n, c := readState(t, state); return n == 3 && c == "v3" })
	})

	t.Run("no process", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest, cfg.ProcessName = src, dest, "no-such-app-xyz"
		s, logs := newSyncer(t, cfg)
		testdeps.ReplaceFile(t, src, "v4")
		res, err := s.Sync(context.Background())
		if err != nil || !res.Changed || res.Reloaded {
			t.Fatalf("sync: %+v, %v (an app that is not running yet reads the file when it starts)", res, err)
		}
		if readFile(t, dest) != "v4" || !strings.Contains(logs.String(), "nothing to reload") {
			t.Fatalf("v4 not published or no warning:\n%s", logs)
		}
		if got := testutil.ToFloat64(s.m.failures.WithLabelValues(reasonNoProcess)); got != 1 {
			t.Fatalf("failures{no_process} = %v", got)
		}
	})
}

// TestNoTornReads: a reader looping over the destination (thousands of
// reads) while two thousand 128 KiB versions are published never sees
// anything but a whole version. (Publishing by rewriting the file in place
// instead fails this test within a few iterations.)
func TestNoTornReads(t *testing.T) {
	t.Parallel()
	const size = 128 << 10
	iterations := 2000
	if testing.Short() {
		iterations = 200
	}
	// Readers' view of rename(2) is the VFS's, the same on every file
	// system; a tmpfs makes the loop's fsyncs free, so it can run
	// thousands of times in a few seconds.
	dir := memTempDir(t)
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	versions := make([][]byte, 26)
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte('a' + i)}, size)
	}
	testdeps.ReplaceFile(t, src, string(versions[0]))
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.MaxBytes = 2 * size
	s, _ := newSyncer(t, cfg)
	if _, err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	reads := 0
	var published atomic.Int64
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 2*size)
		for {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			if int64(reads) > 8*(published.Load()+1) {
				// Enough reads of this version: leave the CPU to the
				// publisher (two shared cores).
				time.Sleep(50 * time.Microsecond)
				continue
			}
			f, err := os.Open(dest)
			if err != nil {
				errc <- fmt.Errorf("open: %v", err)
				return
			}
			n, err := readAllRaw(f, buf)
			f.Close()
			if err != nil || n != size {
				errc <- fmt.Errorf("torn read: %d bytes, want %d (%v)", n, size, err)
				return
			}
			if c := buf[0]; bytes.Count(buf[:n], buf[:1]) != size {
				errc <- fmt.Errorf("torn read: a file mixing versions (starts with %q)", c)
				return
			}
			reads++
		}
	}()
	for i := 1; i <= iterations; i++ {
		testdeps.ReplaceFile(t, src, string(versions[i%26]))
		res, err := s.Sync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed {
			t.Fatalf("version %d not published", i)
		}
		published.Add(1)
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if reads == 0 {
		t.Fatal("the reader read nothing")
	}
	t.Logf("%d publishes of %d KiB, %d whole reads", iterations, size>>10, reads)
}

// TestUnchangedDoesNothing: the same content again neither rewrites the
// file nor reloads the app.
func TestUnchangedDoesNothing(t *testing.T) {
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "same")
	app := &reloadApp{}
	srv := httptest.NewServer(app.handler(dest))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest, cfg.ReloadURL = src, dest, srv.URL
	s, _ := newSyncer(t, cfg)
	if _, err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(dest)
	testdeps.ReplaceFile(t, src, "same") // a new inode, the same bytes
	res, err := s.Sync(context.Background())
	if err != nil || res.Changed || res.Reloaded {
		t.Fatalf("%+v, %v", res, err)
	}
	fi2, _ := os.Stat(dest)
	if !os.SameFile(fi1, fi2) || app.log() != "same 200" {
		t.Fatalf("unchanged content was republished or reloaded (app saw %q)", app.log())
	}
	if got := testutil.ToFloat64(s.m.syncs.WithLabelValues(resultUnchanged)); got != 1 {
		t.Fatalf("syncs{unchanged} = %v", got)
	}
}

// TestTemplates renders the source through templates, and a template that
// fails keeps the old file.
func TestTemplates(t *testing.T) {
	t.Setenv("CONFIGSYNC_TEST_REGION", "eu-west")
	for _, tc := range []struct {
		name, source, tmpl, want, err string
	}{
		{"data", "hello", "say {{.Data}}", "say hello", ""},
		{"files", "hello", `{{range $k, $v := .Files}}{{$k}}={{$v}}{{end}}`, "src=hello", ""},
		{"json", `{"port": 8080, "hosts": ["a", "b"]}`, `{{$c := fromJSON .Data}}listen {{$c.port}}; {{range $c.hosts}}server {{.}}; {{end}}`, "listen 8080; server a; server b; ", ""},
		{"env and default", "", `{{env "CONFIGSYNC_TEST_REGION"}} {{default "x" .Data}}`, "eu-west x", ""},
		{"required", "", `{{required "the port" .Data}}`, "", "required value missing: the port"},
		{"missing key", "x", `{{index .Files "nope" | printf "%s"}}{{.Nope}}`, "", "Nope"},
		{"bad json", "{", `{{fromJSON .Data}}`, "", "fromJSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dest, tmpl := filepath.Join(dir, "src"), filepath.Join(dir, "dest"), filepath.Join(dir, "t.tmpl")
			testdeps.ReplaceFile(t, src, tc.source)
			testdeps.ReplaceFile(t, dest, "old")
			testdeps.ReplaceFile(t, tmpl, tc.tmpl)
			cfg := DefaultConfig()
			cfg.Source, cfg.Dest, cfg.Template = src, dest, tmpl
			s, _ := newSyncer(t, cfg)
			_, err := s.Sync(context.Background())
			if tc.err != "" {
				if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrRender with %q", err, tc.err)
				}
				if readFile(t, dest) != "old" {
					t.Fatal("a failed render replaced the file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, dest); got != tc.want {
				t.Fatalf("rendered %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("parse error at start", func(t *testing.T) {
		dir := t.TempDir()
		tmpl := filepath.Join(dir, "t.tmpl")
		testdeps.ReplaceFile(t, tmpl, "{{.Data")
		cfg := DefaultConfig()
		cfg.Source, cfg.Dest, cfg.Template = filepath.Join(dir, "s"), filepath.Join(dir, "d"), tmpl
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "--template") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestReadiness: /readyz is 503 until the first sync succeeds (the source
// appears later), then 200; /metrics carries the pipeline's metrics.
func TestReadiness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "later", "src"), filepath.Join(dir, "dest")
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.Debounce = 10 * time.Millisecond
	cfg.PollInterval = time.Hour // the retries after a failure, then inotify, do the work
	s, _ := newSyncer(t, cfg)
	h := runHosted(t, s)
	testdeps.WaitFor(t, "a failed first sync", func() bool {
		return testutil.ToFloat64(s.m.failures.WithLabelValues(reasonFetch)) >= 1
	})
	if code, body := h.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d %s before any sync, want 503", code, body)
	}
	os.Mkdir(filepath.Dir(src), 0o755)
	testdeps.ReplaceFile(t, src, "hello")
	testdeps.WaitFor(t, "readiness after the first sync", func() bool { c, _ := h.get(t, "/readyz"); return c == http.StatusOK })
	if readFile(t, dest) != "hello" {
		t.Fatal("ready but not published")
	}
	// The directory that appeared is watched now.
	testdeps.ReplaceFile(t, src, "hello again")
	testdeps.WaitFor(t, "a change in the new directory", fileIs(dest, "hello again"))
	testdeps.ReplaceFile(t, src, "hello")
	testdeps.WaitFor(t, "the first version again", fileIs(dest, "hello"))
	// The file is renamed into place a moment before the metrics count it.
	sum := sha256.Sum256([]byte("hello"))
	var metrics string
	testdeps.WaitFor(t, "the third publish counted", func() bool {
		_, metrics = h.get(t, "/metrics")
		return strings.Contains(metrics, `podkit_configsync_syncs_total{result="published"} 3`) &&
			strings.Contains(metrics, hex.EncodeToString(sum[:]))
	})
	for _, want := range []string{
		`podkit_configsync_content_info{sha256="` + hex.EncodeToString(sum[:]) + `"} 1`,
		`podkit_configsync_syncs_total{result="published"} 3`,
		`podkit_configsync_failures_total{reason="fetch"}`,
		`podkit_configsync_last_sync_success_timestamp_seconds `,
		`podkit_configsync_last_reload_success_timestamp_seconds 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestDebounce: a burst of writes is published as few syncs, ending with
// the last version.
func TestDebounce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "v0")
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.PollInterval = time.Hour
	cfg.Debounce = 300 * time.Millisecond
	s, _ := newSyncer(t, cfg)
	runHosted(t, s)
	testdeps.WaitFor(t, "v0", fileIs(dest, "v0"))
	for i := 1; i <= 20; i++ {
		testdeps.ReplaceFile(t, src, fmt.Sprint("v", i))
	}
	testdeps.WaitFor(t, "v20", fileIs(dest, "v20"))
	if n := testutil.ToFloat64(s.m.syncs.WithLabelValues(resultPublished)); n > 11 {
		t.Fatalf("%v publishes for a burst of 20 writes: not debounced", n)
	}
}

// TestPauseHoldsSyncs: while paused nothing is published; resuming syncs.
func TestPauseHoldsSyncs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "v1")
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.PollInterval = time.Hour
	cfg.Debounce = 10 * time.Millisecond
	s, _ := newSyncer(t, cfg)
	h := runHosted(t, s)
	testdeps.WaitFor(t, "v1", fileIs(dest, "v1"))
	post := func(path string) {
		resp, err := http.Post(h.admin+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post("/pause")
	testdeps.ReplaceFile(t, src, "v2")
	// Give a wrongly unpaused loop every chance to publish (the debounce
	// is 10ms); a correct one never does, however long this takes.
	time.Sleep(300 * time.Millisecond)
	if readFile(t, dest) != "v1" {
		t.Fatal("published while paused")
	}
	post("/resume")
	testdeps.WaitFor(t, "v2 after resuming", fileIs(dest, "v2"))
}

// TestFindProcessesSkipsSelf: config-sync never signals itself, even when
// its own name is given.
func TestFindProcessesSkipsSelf(t *testing.T) {
	self, err := readProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	procs, err := findProcesses("/proc", self.comm, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.pid == os.Getpid() {
			t.Fatal("findProcesses returned config-sync itself")
		}
	}
}

// memTempDir is a temporary directory on a tmpfs (/dev/shm) when there is
// one, else t.TempDir().
func memTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "configsync-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// readAllRaw reads f to EOF into buf with read(2) called directly: the race
// detector does not instrument it, so a reader can loop over large files
// thousands of times cheaply (what it checks is the file system's
// atomicity, not Go's memory model).
func readAllRaw(f *os.File, buf []byte) (int, error) {
	fd := f.Fd()
	n := 0
	for n < len(buf) {
		r, _, errno := syscall.Syscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[n])), uintptr(len(buf)-n))
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return n, errno
		}
		if r == 0 {
			return n, nil
		}
		n += int(r)
	}
	return n, errors.New("file larger than the buffer")
}

// TestRejectedRetriedOnlyOnRequest: a version validation rejected stays
// rejected however often the unchanged source is polled; RetryRejected
// (SIGHUP) tries it again, here after what the validator checks changed.
func TestRejectedRetriedOnlyOnRequest(t *testing.T) {
	dir := t.TempDir()
	src, dest, flag := filepath.Join(dir, "src"), filepath.Join(dir, "dest"), filepath.Join(dir, "accept")
	testdeps.ReplaceFile(t, src, "v1")
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.ValidateCmd = "/bin/sh -c 'test -e " + flag + "'"
	cfg.PollInterval = 5 * time.Millisecond
	s, _ := newSyncer(t, cfg)
	if _, err := s.Sync(context.Background()); !errors.Is(err, ErrValidate) {
		t.Fatalf("err = %v, want ErrValidate", err)
	}
	os.WriteFile(flag, nil, 0o644) // the validator would accept it now
	for i := 0; i < 20; i++ {
		if res, err := s.Sync(context.Background()); err != nil || !res.Skipped {
			t.Fatalf("poll %d of the rejected version: %+v, %v; want skipped", i, res, err)
		}
	}
	s.RetryRejected()
	if res, err := s.Sync(context.Background()); err != nil || !res.Changed {
		t.Fatalf("after RetryRejected: %+v, %v; want published", res, err)
	}
	if readFile(t, dest) != "v1" {
		t.Fatal("not published")
	}
}

// TestValidateTimeoutNotRejected: a validator that did not finish gave no
// verdict, so the version is tried again at the next sync rather than
// skipped.
func TestValidateTimeoutNotRejected(t *testing.T) {
	dir := t.TempDir()
	src, dest, slow := filepath.Join(dir, "src"), filepath.Join(dir, "dest"), filepath.Join(dir, "slow")
	testdeps.ReplaceFile(t, src, "v1")
	os.WriteFile(slow, nil, 0o644)
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.ValidateCmd = "/bin/sh -c 'if test -e " + slow + "; then sleep 30; fi'"
	cfg.ValidateTimeout = 100 * time.Millisecond
	s, _ := newSyncer(t, cfg)
	if _, err := s.Sync(context.Background()); !errors.Is(err, ErrValidate) || !strings.Contains(err.Error(), "--validate-timeout") {
		t.Fatalf("err = %v, want a validate timeout", err)
	}
	os.Remove(slow)
	s.cfg.ValidateTimeout = time.Minute
	if res, err := s.Sync(context.Background()); err != nil || !res.Changed {
		t.Fatalf("after a timeout: %+v, %v; want the version tried again and published", res, err)
	}
}

// TestValidateDirectory: for a directory destination, {} is a staging
// directory holding every file of the new version.
func TestValidateDirectory(t *testing.T) {
	vol := newKubeletVolume(t, map[string]string{"a.conf": "a1", "b.conf": "b1"})
	dest := filepath.Join(t.TempDir(), "conf.d") + "/"
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = vol.dir, dest
	// Accept only a version that has both files.
	cfg.ValidateCmd = `/bin/sh -c 'test -f "$1/a.conf" && test -f "$1/b.conf" || { echo "missing a file in $1" >&2; exit 1; }' validate {}`
	s, logs := newSyncer(t, cfg)
	if _, err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	vol.update(map[string]string{"a.conf": "a2"})
	if _, err := s.Sync(context.Background()); !errors.Is(err, ErrValidate) {
		t.Fatalf("err = %v, want ErrValidate", err)
	}
	if !strings.Contains(logs.String(), "missing a file in "+filepath.Join(dest, ".podkit-staged-")) {
		t.Fatalf("{} was not the staging directory:\n%s", logs)
	}
	if readFile(t, filepath.Join(dest, "a.conf")) != "a1" || readFile(t, filepath.Join(dest, "b.conf")) != "b1" {
		t.Fatal("a rejected directory version changed the destination")
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 3 {
		t.Fatalf("%d entries in the destination, want a.conf, b.conf and the manifest (staging directory left behind?)", len(entries))
	}
}

// TestDirectoryPruneAfterRestart: a file removed from the source while
// config-sync was not running is removed from the destination by the next
// config-sync (it recorded what it published), and files it did not
// publish are left alone.
func TestDirectoryPruneAfterRestart(t *testing.T) {
	vol := newKubeletVolume(t, map[string]string{"a.conf": "a1", "b.conf": "b1"})
	dest := filepath.Join(t.TempDir(), "conf.d")
	os.MkdirAll(dest, 0o755)
	os.WriteFile(filepath.Join(dest, "local.conf"), []byte("not ours"), 0o644)
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = vol.dir, dest
	first, _ := newSyncer(t, cfg)
	if _, err := first.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	vol.update(map[string]string{"a.conf": "a1"})
	second, _ := newSyncer(t, cfg) // a restarted config-sync
	if res, err := second.Sync(context.Background()); err != nil || !res.Changed {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dest, "b.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("b.conf, removed from the source, is still published")
	}
	if readFile(t, filepath.Join(dest, "local.conf")) != "not ours" || readFile(t, filepath.Join(dest, "a.conf")) != "a1" {
		t.Fatal("a file config-sync did not publish was touched")
	}
}

// TestNotReadyWhileRejected: a first version that validation rejects
// leaves readiness 503, also while it is skipped; a valid version makes it
// ready.
func TestNotReadyWhileRejected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "bad")
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.ValidateCmd = "/bin/sh -c 'grep -q good {}'"
	cfg.Debounce = 10 * time.Millisecond
	s, _ := newSyncer(t, cfg)
	h := runHosted(t, s)
	testdeps.WaitFor(t, "the rejected version to be skipped", func() bool {
		return testutil.ToFloat64(s.m.syncs.WithLabelValues(resultSkipped)) >= 1
	})
	if code, _ := h.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d with only a rejected version, want 503", code)
	}
	testdeps.ReplaceFile(t, src, "good")
	testdeps.WaitFor(t, "readiness after a valid version", func() bool { c, _ := h.get(t, "/readyz"); return c == http.StatusOK })
	if readFile(t, dest) != "good" {
		t.Fatal("ready without the valid version published")
	}
}

// TestRefusedVersionStaysRejected: a version the application's reload
// refuses is published, reloaded, rolled back and reloaded once — and then
// not again, however many poll intervals pass, until the source changes.
// The rollback's reload is logged and counted as a rollback.
func TestRefusedVersionStaysRejected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src.conf"), filepath.Join(dir, "app.conf")
	testdeps.ReplaceFile(t, src, "good v1")
	app := &reloadApp{}
	srv := httptest.NewServer(app.handler(dest))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.ReloadURL, cfg.ReloadRetries = srv.URL+"/-/reload", 0
	cfg.PollInterval, cfg.Debounce = 20*time.Millisecond, time.Millisecond
	s, _ := newSyncer(t, cfg)
	h := runHosted(t, s)
	testdeps.WaitFor(t, "v1 to be reloaded", func() bool { return app.log() == "good v1 200" })

	testdeps.ReplaceFile(t, src, "broken v2")
	skipped := func() float64 { return testutil.ToFloat64(s.m.syncs.WithLabelValues(resultSkipped)) }
	testdeps.WaitFor(t, "the refused version to be skipped", func() bool { return skipped() >= 1 })
	// Many poll intervals: a backoff of a few intervals would have tried it
	// again by now.
	base := skipped()
	testdeps.WaitFor(t, "50 more polls", func() bool { return skipped() >= base+50 })
	want := "good v1 200; broken v2 500; good v1 200"
	if got := app.log(); got != want {
		t.Fatalf("the app saw %q, want %q: the refused version was published again", got, want)
	}
	if got := testutil.ToFloat64(s.m.syncs.WithLabelValues(resultRolledBack)); got != 1 {
		t.Fatalf("syncs{result=rolled_back} = %v, want 1", got)
	}
	for result, want := range map[string]float64{"ok": 1, "failed": 1, "rollback_ok": 1, "rollback_failed": 0} {
		if got := testutil.ToFloat64(s.m.reloads.WithLabelValues(result)); got != want {
			t.Errorf("reloads{result=%s} = %v, want %v", result, got, want)
		}
	}
	logs := h.logs.String()
	if n := strings.Count(logs, `msg=reloaded `); n != 1 {
		t.Errorf("%d plain \"reloaded\" lines, want 1 (the rollback's reload must say it is one):\n%s", n, logs)
	}
	if !strings.Contains(logs, "reloaded the previous content (rollback)") {
		t.Errorf("no rollback reload in the log:\n%s", logs)
	}
	testdeps.WaitFor(t, "/healthz?verbose to show the refusal", func() bool {
		code, body := h.get(t, "/healthz?verbose")
		return code != http.StatusOK && strings.Contains(body, "500 Internal Server Error")
	})

	// A different version is tried at once, and accepted.
	testdeps.ReplaceFile(t, src, "good v3")
	testdeps.WaitFor(t, "v3 to be reloaded", fileIs(dest, "good v3"))
	testdeps.WaitFor(t, "the app to reload v3", func() bool { return strings.HasSuffix(app.log(), "good v3 200") })
	// And the refused version, coming back, is a change: tried again.
	testdeps.ReplaceFile(t, src, "broken v2")
	testdeps.WaitFor(t, "the refused version to be tried again after a change", func() bool {
		return testutil.ToFloat64(s.m.syncs.WithLabelValues(resultRolledBack)) == 2
	})
}

// TestUnreachableAppNotRejected: when the application cannot be told at
// all (the reload of the restored content fails too), the new version got
// no verdict: the next sync tries it again instead of skipping it.
func TestUnreachableAppNotRejected(t *testing.T) {
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "v1")
	testdeps.ReplaceFile(t, dest, "v0")
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens: connection refused
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.ReloadURL, cfg.ReloadRetries = url, 0
	s, _ := newSyncer(t, cfg)
	for i := 0; i < 2; i++ {
		res, err := s.Sync(context.Background())
		if !errors.Is(err, ErrReload) || !res.RolledBack || res.Skipped {
			t.Fatalf("sync %d with the app unreachable: %+v, %v; want a rollback, not a skip", i, res, err)
		}
	}
	if got := testutil.ToFloat64(s.m.reloads.WithLabelValues(reloadRollbackFailed)); got != 2 {
		t.Fatalf("reloads{result=rollback_failed} = %v, want 2", got)
	}
	if readFile(t, dest) != "v0" {
		t.Fatal("the previous content was not restored")
	}
}
