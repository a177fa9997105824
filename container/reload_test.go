package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/podkit/podkit/internal/dirwatch"
	"github.com/podkit/podkit/internal/testdeps"
)

// fileConfig is a component whose "configuration" is one file: a line
// that must not begin with "bad".
type fileConfig struct {
	path  string
	path0 string // what Load reads
	host  chan *Host
	r     *Reloader[string]
	mu    sync.Mutex
	cur   string
	loads atomic.Int64 // Load calls
	polls atomic.Int64 // Files calls
}

func (c *fileConfig) Name() string { return "filecfg" }

func (c *fileConfig) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *fileConfig) Run(ctx context.Context, h *Host) error {
	done, err := c.r.Start(ctx, h)
	if err != nil {
		return err
	}
	c.host <- h
	<-ctx.Done()
	<-done
	return nil
}

// startFileConfig runs a fileConfig whose file holds content; Load reads
// read[0] if given.
func startFileConfig(t *testing.T, content string, mod func(*Reload[string]), read ...string) (*fileConfig, *Host, *testdeps.Buffer) {
	t.Helper()
	return startFileConfigOpts(t, content, mod, nil, read...)
}

func startFileConfigOpts(t *testing.T, content string, mod func(*Reload[string]), modOpts func(*Options), read ...string) (*fileConfig, *Host, *testdeps.Buffer) {
	t.Helper()
	c := &fileConfig{path: filepath.Join(t.TempDir(), "app.conf"), host: make(chan *Host, 1)}
	testdeps.ReplaceFile(t, c.path, content)
	spec := Reload[string]{
		Subsystem: "filecfg",
		What:      "configuration",
		Files: func() []string {
			c.polls.Add(1)
			return []string{c.path}
		},
		Interval: 5 * time.Millisecond,
		Debounce: time.Millisecond,
		Load: func(context.Context) (string, error) {
			c.loads.Add(1)
			b, err := os.ReadFile(c.path0)
			if err != nil {
				return "", err
			}
			s := string(b)
			if strings.HasPrefix(s, "bad") {
				return "", fmt.Errorf("line 1: %q is bad", s)
			}
			if s == "same" {
				return "", fmt.Errorf("%w: the same as before", ErrUnchanged)
			}
			return s, nil
		},
		Apply: func(s string) error {
			c.mu.Lock()
			c.cur = s
			c.mu.Unlock()
			return nil
		},
		Attrs: func(s string) []any { return []any{"content", s} },
	}
	if mod != nil {
		mod(&spec)
	}
	c.r = NewReloader(spec)
	c.cur = content
	c.path0 = c.path
	if len(read) > 0 {
		c.path0 = read[0]
	}
	var logs testdeps.Buffer
	o := DefaultOptions()
	o.AdminAddr = "off"
	o.DrainDelay = 0
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if modOpts != nil {
		modOpts(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return c, <-c.host, &logs
}

// reloads returns podkit_filecfg_reloads_total by result, as gathered.
func reloads(t *testing.T, h *Host) map[string]float64 {
	t.Helper()
	mfs, err := h.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "podkit_filecfg_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[label(m, "result")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// reloadEvents returns the reload events published so far.
func reloadEvents(h *Host) []Event {
	past, _, unsub := h.events.subscribe()
	unsub()
	var out []Event
	for _, e := range past {
		if e.Type == EventReload {
			out = append(out, e)
		}
	}
	return out
}

// TestReloaderValidateThenSwap: a changed file is loaded and swapped in; a
// bad one is refused, logged with the reason, and the running version
// kept; each is counted and is a /lifecycle event.
func TestReloaderValidateThenSwap(t *testing.T) {
	c, h, logs := startFileConfig(t, "v1", nil)
	want := map[string]float64{ReloadOK: 0, ReloadError: 0, ReloadUnchanged: 0}
	if got := reloads(t, h); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reloads at start = %v, want %v", got, want)
	}

	testdeps.ReplaceFile(t, c.path, "v2")
	testdeps.WaitFor(t, "v2 swapped in", func() bool { return c.current() == "v2" })
	want[ReloadOK] = 1
	testdeps.WaitFor(t, "one ok reload counted", func() bool { return fmt.Sprint(reloads(t, h)) == fmt.Sprint(want) })

	testdeps.ReplaceFile(t, c.path, "bad v3")
	want[ReloadError] = 1
	testdeps.WaitFor(t, "the bad version refused", func() bool { return fmt.Sprint(reloads(t, h)) == fmt.Sprint(want) })
	if got := c.current(); got != "v2" {
		t.Errorf("after a refused reload the running version is %q, want v2", got)
	}
	if !strings.Contains(logs.String(), `configuration reload refused; the running configuration is kept`) ||
		!strings.Contains(logs.String(), `line 1: \"bad v3\" is bad`) {
		t.Errorf("the refusal is not logged with its reason:\n%s", logs.String())
	}
	// The refused version is not tried again on every poll.
	loads, polls := c.loads.Load(), c.polls.Load()
	testdeps.WaitFor(t, "five more polls", func() bool { return c.polls.Load() >= polls+5 })
	if n := c.loads.Load(); n != loads {
		t.Errorf("%d loads of an unchanged refused file, want 0", n-loads)
	}

	// A good version after the bad one.
	testdeps.ReplaceFile(t, c.path, "v4")
	testdeps.WaitFor(t, "v4 swapped in", func() bool { return c.current() == "v4" })

	evs := reloadEvents(h)
	if len(evs) != 3 {
		t.Fatalf("reload events %+v, want 3", evs)
	}
	for i, w := range []Event{
		{What: "configuration", Result: ReloadOK},
		{What: "configuration", Result: ReloadError, Error: `line 1: "bad v3" is bad`},
		{What: "configuration", Result: ReloadOK},
	} {
		e := evs[i]
		if e.What != w.What || e.Result != w.Result || e.Error != w.Error || e.Trigger == "" || e.Time.IsZero() {
			t.Errorf("event %d = %+v, want %+v with a trigger and a time", i, e, w)
		}
	}
	if n := strings.Count(logs.String(), "configuration reloaded"); n != 2 {
		t.Errorf("%d reloads logged, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "content=v4") {
		t.Errorf("the reloaded line lacks the Attrs:\n%s", logs.String())
	}
}

// TestReloaderUnchangedPolls: polls that find the same content load
// nothing, count nothing and log nothing.
func TestReloaderUnchangedPolls(t *testing.T) {
	c, h, logs := startFileConfig(t, "v1", nil)
	// Rewritten with the same bytes: a file event, the same content.
	testdeps.ReplaceFile(t, c.path, "v1")
	polls := c.polls.Load()
	testdeps.WaitFor(t, "ten polls", func() bool { return c.polls.Load() >= polls+10 })
	if n := c.loads.Load(); n != 0 {
		t.Errorf("%d loads with nothing changed, want 0", n)
	}
	if got := reloads(t, h); got[ReloadOK]+got[ReloadError]+got[ReloadUnchanged] != 0 {
		t.Errorf("reloads %v with nothing changed", got)
	}
	if evs := reloadEvents(h); len(evs) != 0 {
		t.Errorf("reload events %+v with nothing changed", evs)
	}
	if strings.Contains(logs.String(), "reload") {
		t.Errorf("a reload logged with nothing changed:\n%s", logs.String())
	}
}

// TestReloaderSIGHUP: SIGHUP reloads even when the file looks unchanged
// (Interval 0: no watching); Reload does the same; ErrUnchanged counts as
// unchanged and is not an error.
func TestReloaderSIGHUP(t *testing.T) {
	c, h, _ := startFileConfig(t, "v1", func(s *Reload[string]) { s.Interval = 0 })
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testdeps.WaitFor(t, "a reload on SIGHUP", func() bool { return reloads(t, h)[ReloadOK] == 1 })
	if evs := reloadEvents(h); len(evs) != 1 || evs[0].Trigger != "SIGHUP" {
		t.Errorf("events %+v, want one with trigger SIGHUP", evs)
	}

	testdeps.ReplaceFile(t, c.path, "same")
	if err := c.r.Reload(context.Background()); err != nil {
		t.Errorf("Reload with nothing new = %v, want nil", err)
	}
	testdeps.ReplaceFile(t, c.path, "bad")
	if err := c.r.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "is bad") {
		t.Errorf("Reload of a bad file = %v", err)
	}
	testdeps.ReplaceFile(t, c.path, "v2")
	if err := c.r.Reload(context.Background()); err != nil || c.current() != "v2" {
		t.Errorf("Reload = %v, running %q, want v2", err, c.current())
	}
	want := map[string]float64{ReloadOK: 2, ReloadError: 1, ReloadUnchanged: 1}
	if got := reloads(t, h); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reloads = %v, want %v", got, want)
	}
	evs := reloadEvents(h)
	var results []string
	for _, e := range evs[1:] {
		if e.Trigger != "requested" {
			t.Errorf("event %+v: trigger want requested", e)
		}
		results = append(results, e.Result)
	}
	if got := strings.Join(results, " "); got != "unchanged error ok" {
		t.Errorf("event results %q, want unchanged error ok", got)
	}
}

// TestReloaderApplyError: an Apply that fails is a refused reload.
func TestReloaderApplyError(t *testing.T) {
	c, h, logs := startFileConfig(t, "v1", func(s *Reload[string]) {
		s.Apply = func(string) error { return errors.New("port in use") }
	})
	testdeps.ReplaceFile(t, c.path, "v2")
	testdeps.WaitFor(t, "the apply error counted", func() bool { return reloads(t, h)[ReloadError] == 1 })
	if !strings.Contains(logs.String(), "port in use") {
		t.Errorf("the apply error is not logged:\n%s", logs.String())
	}
}

// TestReloaderFileEvents: on Linux a change is seen through inotify, with
// no poll due for an hour; a file that is a symlink into a directory
// swapped atomically (a Kubernetes volume) included.
func TestReloaderFileEvents(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file events are inotify's, on Linux only")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "..1"), 0o755); err != nil {
		t.Fatal(err)
	}
	testdeps.ReplaceFile(t, filepath.Join(dir, "..1", "app.conf"), "v1")
	if err := os.Symlink("..1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "app.conf")
	if err := os.Symlink(filepath.Join("..data", "app.conf"), link); err != nil {
		t.Fatal(err)
	}
	c, _, _ := startFileConfig(t, "v1", func(s *Reload[string]) {
		s.Interval = time.Hour
		s.Files = func() []string { return []string{link} }
	}, link)
	if err := os.Mkdir(filepath.Join(dir, "..2"), 0o755); err != nil {
		t.Fatal(err)
	}
	testdeps.ReplaceFile(t, filepath.Join(dir, "..2", "app.conf"), "v2")
	if err := os.Symlink("..2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	testdeps.WaitFor(t, "v2 through the swapped link", func() bool { return c.current() == "v2" })
}

// TestWatcherMergesCauses: causes that arrive while a trigger is not
// received are merged into one.
func TestWatcherMergesCauses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file events are inotify's, on Linux only")
	}
	dir := t.TempDir()
	c := &watchComponent{dirs: dir, got: make(chan *Watcher, 1)}
	o := DefaultOptions()
	o.AdminAddr = "off"
	o.DrainDelay = 0
	o.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, o) }()
	defer func() {
		cancel()
		<-done
	}()
	w := <-c.got
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		testdeps.ReplaceFile(t, filepath.Join(dir, fmt.Sprint(i)), "x")
	}
	var seen Trigger
	for !seen.Signal || !seen.Files {
		tr := <-w.C()
		if tr.Poll {
			t.Errorf("a poll trigger with no Interval: %+v", tr)
		}
		seen.Signal = seen.Signal || tr.Signal
		seen.Files = seen.Files || tr.Files
	}
	if got := (Trigger{Signal: true, Files: true, Poll: true}).String(); got != "SIGHUP+file change+poll" {
		t.Errorf("Trigger.String() = %q", got)
	}
}

type watchComponent struct {
	dirs string
	got  chan *Watcher
}

func (c *watchComponent) Name() string { return "watcher" }

func (c *watchComponent) Run(ctx context.Context, h *Host) error {
	c.got <- h.Watch(ctx, WatchConfig{Dirs: func() []string { return []string{c.dirs} }, Debounce: time.Millisecond})
	<-ctx.Done()
	return nil
}

// TestDebouncer: a burst of events is one trigger, due quiet after the
// last event but no later than maxWait after the first.
func TestDebouncer(t *testing.T) {
	d := newDebouncer(100 * time.Millisecond)
	if d.maxWait != time.Second {
		t.Fatalf("maxWait = %v, want 1s (the floor)", d.maxWait)
	}
	t0 := time.Unix(1000, 0)
	tests := []struct {
		at   time.Duration // after t0
		want time.Duration // until the trigger
	}{
		{0, 100 * time.Millisecond},
		{50 * time.Millisecond, 100 * time.Millisecond},
		{850 * time.Millisecond, 100 * time.Millisecond},
		{950 * time.Millisecond, 50 * time.Millisecond}, // capped by maxWait
		{1200 * time.Millisecond, 0},                    // overdue: at once
	}
	for _, tt := range tests {
		if got := d.event(t0.Add(tt.at)); got != tt.want {
			t.Errorf("event at +%v: due in %v, want %v", tt.at, got, tt.want)
		}
	}
	d.fired()
	if got := d.event(t0.Add(2 * time.Second)); got != 100*time.Millisecond {
		t.Errorf("first event of a new burst: due in %v, want 100ms", got)
	}
	if long := newDebouncer(time.Second); long.maxWait != 10*time.Second {
		t.Errorf("maxWait for 1s = %v, want 10s", long.maxWait)
	}
}

// TestWatchDirsStops: the inotify watcher reports an event, and its
// goroutine ends on stop.
func TestWatchDirsStops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file events are inotify's, on Linux only")
	}
	dir := t.TempDir()
	var n atomic.Int32
	stop, _, err := dirwatch.Watch(func() []string { return []string{dir} }, func() { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	testdeps.WaitFor(t, "an inotify event", func() bool { return n.Load() > 0 })
	stop()
}

// TestSIGHUPToEveryWatcher: each Watcher of a host gets every SIGHUP.
func TestSIGHUPToEveryWatcher(t *testing.T) {
	c := &twoWatchers{got: make(chan [2]*Watcher, 1)}
	o := DefaultOptions()
	o.AdminAddr = "off"
	o.DrainDelay = 0
	o.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, o) }()
	defer func() {
		cancel()
		<-done
	}()
	ws := <-c.got
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for i, w := range ws {
		if tr := <-w.C(); !tr.Signal {
			t.Errorf("watcher %d: trigger %+v, want SIGHUP", i, tr)
		}
	}
}

type twoWatchers struct{ got chan [2]*Watcher }

func (c *twoWatchers) Name() string { return "watchers" }

func (c *twoWatchers) Run(ctx context.Context, h *Host) error {
	c.got <- [2]*Watcher{h.Watch(ctx, WatchConfig{}), h.Watch(ctx, WatchConfig{})}
	<-ctx.Done()
	return nil
}

// TestReloadEventOnLifecycle: a subscriber of GET /lifecycle is told of
// each reload, with its result and, for a refused one, the reason.
func TestReloadEventOnLifecycle(t *testing.T) {
	admin := testListen(t)
	c, _, _ := startFileConfigOpts(t, "v1", nil, func(o *Options) { o.AdminListener = admin })
	resp, err := http.Get("http://" + admin.Addr().String() + "/lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan Event, 16)
	go readEvents(t, resp.Body, events)
	next := func() Event {
		t.Helper()
		for e := range events {
			if e.Type == EventReload {
				return e
			}
		}
		t.Fatal("the event stream ended")
		return Event{}
	}
	testdeps.ReplaceFile(t, c.path, "bad")
	if e := next(); e.Result != ReloadError || e.What != "configuration" || !strings.Contains(e.Error, "is bad") {
		t.Errorf("event %+v, want a refused configuration with the reason", e)
	}
	testdeps.ReplaceFile(t, c.path, "v2")
	if e := next(); e.Result != ReloadOK || e.Error != "" {
		t.Errorf("event %+v, want ok", e)
	}
}
