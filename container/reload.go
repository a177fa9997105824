package container

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/internal/dirwatch"
	"github.com/prometheus/client_golang/prometheus"
)

// Reloading, in one place for every component (see Reloader):
//
//   - what asks for a reload: SIGHUP (through the Host), a change of a
//     watched file (inotify on Linux, noticed at once; polling every
//     Interval everywhere, as the fallback and a safety net), or a call;
//   - bursts of file events are debounced into one reload;
//   - validate-then-swap: the component's Load reads and validates the new
//     version, and only if that succeeds its Apply swaps it in; a refused
//     version leaves the running one in place, and says why in the log;
//   - podkit_<component>_reloads_total{result} counts every reload by
//     result (ReloadOK, ReloadError, ReloadUnchanged), and every reload is
//     a "reload" event on /lifecycle.

// Values of the result label of podkit_<component>_reloads_total and of a
// reload Event's Result.
const (
	// ReloadOK: the new version was loaded, validated and swapped in.
	ReloadOK = "ok"
	// ReloadError: the new version was refused (it could not be read, was
	// invalid, or could not be applied); the running one is kept.
	ReloadError = "error"
	// ReloadUnchanged: a reload was asked for, but there was nothing new
	// to swap in (Load returned ErrUnchanged).
	ReloadUnchanged = "unchanged"
)

// ErrUnchanged is what a Reload's Load returns (possibly wrapped, with the
// reason) when there is nothing new to swap in; the reload counts as
// ReloadUnchanged and is not an error.
var ErrUnchanged = errors.New("nothing to reload")

// DefaultReloadDebounce is how long a Reloader waits for quiet after a
// file event when Reload.Debounce is zero.
const DefaultReloadDebounce = 100 * time.Millisecond

// Reload describes what a component reloads; see Reloader.
type Reload[T any] struct {
	// Subsystem names the metric: podkit_<Subsystem>_reloads_total (the
	// component's metric prefix, e.g. "shard", "tlsproxy").
	Subsystem string
	// What is reloaded, for the log and the event: "configuration",
	// "certificate".
	What string
	// Files returns the files a reload reads. When Interval is positive
	// they are watched: a change of their content triggers a reload (a
	// file event or a poll that finds the same content does not). It may
	// be nil: SIGHUP and Reloader.Reload only.
	Files func() []string
	// Interval is how often Files are polled; 0 watches nothing (SIGHUP and
	// Reloader.Reload only). On Linux a change is also seen at once
	// through inotify on the files' directories; the poll is the
	// fallback where that is not available, and a safety net.
	Interval time.Duration
	// Debounce is how long to wait for quiet after a file event before
	// reloading (0: DefaultReloadDebounce); a burst of events is one
	// reload, at most max(10*Debounce, 1s) after its first event.
	Debounce time.Duration
	// Load reads and validates the new version. An error refuses it and
	// keeps the running one; ErrUnchanged means there is nothing new.
	Load func(ctx context.Context) (T, error)
	// Apply swaps in a version Load accepted. An error counts as a refused
	// reload, so Apply must leave the running version in place when it
	// fails.
	Apply func(T) error
	// Attrs, if set, adds attributes describing the new version to the
	// "reloaded" log line.
	Attrs func(T) []any
	// Logger is used until Start (then the Host's is); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Reloader reloads what a component describes with a Reload: on SIGHUP,
// when a watched file changes, and when Reload is called. Reloads are
// serialised. Make it with NewReloader, before the first load (so that a
// change made during that load is seen), and start it with Start.
type Reloader[T any] struct {
	spec    Reload[T]
	reloads *prometheus.CounterVec

	mu  sync.Mutex // serialises reloads
	sum [32]byte   // content of Files at the last reload (or NewReloader)

	host atomic.Pointer[Host]
	log  atomic.Pointer[slog.Logger]
}

// NewReloader returns a Reloader for spec; it notes the content of
// spec.Files as the running version.
func NewReloader[T any](spec Reload[T]) *Reloader[T] {
	if spec.Debounce <= 0 {
		spec.Debounce = DefaultReloadDebounce
	}
	r := &Reloader[T]{
		spec: spec,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_" + spec.Subsystem + "_reloads_total",
			Help: "Reloads of the " + spec.What + " by result: ok (swapped in), error (refused; the running " + spec.What + " is kept), unchanged (nothing new).",
		}, []string{"result"}),
	}
	for _, res := range []string{ReloadOK, ReloadError, ReloadUnchanged} {
		r.reloads.WithLabelValues(res)
	}
	log := spec.Logger
	if log == nil {
		log = slog.Default()
	}
	r.log.Store(log)
	r.sum = r.filesSum()
	return r
}

// Start registers the reload metric with h and starts watching: SIGHUP
// and the files are caught from when Start returns, so call it before
// the component reports ready. Reloads then run until ctx ends; the
// returned channel is closed when the last one has finished. The error
// is the metric's registration's.
func (r *Reloader[T]) Start(ctx context.Context, h *Host) (done <-chan struct{}, err error) {
	if err := h.Registerer().Register(r.reloads); err != nil {
		return nil, err
	}
	r.log.Store(h.Logger())
	r.host.Store(h)
	wc := WatchConfig{Debounce: r.spec.Debounce}
	if r.spec.Interval > 0 && r.spec.Files != nil && len(r.spec.Files()) > 0 {
		wc.Interval = r.spec.Interval
		wc.Dirs = func() []string { return dirsOf(r.spec.Files()) }
	}
	w := h.Watch(ctx, wc)
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case t := <-w.C():
				if ctx.Err() == nil {
					_ = r.reload(ctx, t.String(), t.Signal)
				}
			}
		}
	}()
	return ch, nil
}

// Reload reloads now, as SIGHUP does (the trigger is "requested"), and
// returns why the new version was refused (nil if it was swapped in or
// there was nothing new).
func (r *Reloader[T]) Reload(ctx context.Context) error {
	return r.reload(ctx, "requested", true)
}

// reload runs one reload. Unless force, it does nothing when the watched
// files hold what they held at the last reload.
func (r *Reloader[T]) reload(ctx context.Context, trigger string, force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := r.filesSum()
	if !force && sum == r.sum {
		return nil
	}
	v, err := r.spec.Load(ctx)
	// Files that changed while Load read them (a certificate and its key
	// replaced one after the other) may have been read half old, half
	// new: read them again, so that what is remembered is what was read.
	for range 3 {
		after := r.filesSum()
		if after == sum {
			break
		}
		sum = after
		v, err = r.spec.Load(ctx)
	}
	// Remember what was tried, so that a refused version is reported
	// once, not on every poll; a later change is tried again.
	r.sum = sum
	if err == nil {
		err = r.spec.Apply(v)
	}
	log := r.log.Load()
	ev := Event{Type: EventReload, Time: time.Now(), What: r.spec.What, Trigger: trigger}
	switch {
	case err == nil:
		ev.Result = ReloadOK
		attrs := []any{"trigger", trigger}
		if r.spec.Attrs != nil {
			attrs = append(attrs, r.spec.Attrs(v)...)
		}
		log.Info(r.spec.What+" reloaded", attrs...)
	case errors.Is(err, ErrUnchanged):
		ev.Result = ReloadUnchanged
		log.Info(r.spec.What+" not reloaded: nothing new", "trigger", trigger, "reason", err.Error())
		err = nil
	default:
		ev.Result = ReloadError
		ev.Error = err.Error()
		log.Error(r.spec.What+" reload refused; the running "+r.spec.What+" is kept", "trigger", trigger, "error", err)
	}
	r.reloads.WithLabelValues(ev.Result).Inc()
	if h := r.host.Load(); h != nil {
		h.events.publish(ev)
	}
	return err
}

// filesSum hashes the names and contents of the watched files (a file
// that cannot be read counts with its error).
func (r *Reloader[T]) filesSum() [32]byte {
	var sum [32]byte
	if r.spec.Files == nil {
		return sum
	}
	h := sha256.New()
	for _, name := range r.spec.Files() {
		b, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(h, "%q error %q\n", name, err)
			continue
		}
		fmt.Fprintf(h, "%q %d\n", name, len(b))
		h.Write(b)
	}
	h.Sum(sum[:0])
	return sum
}

// dirsOf returns the directories to watch for files: each one's
// directory and, for a symlink, its target's.
func dirsOf(files []string) []string {
	var out []string
	add := func(d string) {
		for _, have := range out {
			if have == d {
				return
			}
		}
		out = append(out, d)
	}
	for _, f := range files {
		add(filepath.Dir(f))
		if real, err := filepath.EvalSymlinks(f); err == nil {
			add(filepath.Dir(real))
		}
	}
	return out
}

// WatchConfig says what a Watcher watches besides SIGHUP.
type WatchConfig struct {
	// Dirs returns the directories whose changes trigger (through inotify
	// on Linux; elsewhere only the poll notices changes). It is called
	// again after every batch of events and on Watcher.Rewatch, so a
	// directory that appears later is picked up; one that does not exist
	// is skipped. nil: no file events.
	Dirs func() []string
	// Interval is the period of poll triggers (0: none): the fallback where
	// there are no file events, and a safety net beside them.
	Interval time.Duration
	// Debounce is how long to wait for quiet after a file event; a burst
	// of events is one trigger, at most max(10*Debounce, 1s) after its
	// first event.
	Debounce time.Duration
}

// Trigger says why a Watcher asks for a reload. Causes that arrive while
// the previous trigger is being handled are merged into the next one.
type Trigger struct {
	Signal bool // SIGHUP
	Files  bool // an event in a watched directory (debounced)
	Poll   bool // the poll Interval passed
}

// String names the causes: "SIGHUP", "file change", "poll", joined by
// "+".
func (t Trigger) String() string {
	var s []string
	if t.Signal {
		s = append(s, "SIGHUP")
	}
	if t.Files {
		s = append(s, "file change")
	}
	if t.Poll {
		s = append(s, "poll")
	}
	return strings.Join(s, "+")
}

// Watcher delivers the triggers for reloading: SIGHUP, debounced file
// events and polls. Components that reload one version of something
// use a Reloader, which is built on it; a component whose reload is a
// pipeline of its own (config-sync's sync) uses a Watcher directly.
type Watcher struct {
	c       chan Trigger
	rewatch func()
}

// Watch starts a Watcher that runs until ctx ends. SIGHUP and file
// events are caught from when it returns; while no component watches,
// SIGHUP keeps its default action (the process ends). If file events are not available, it says so
// in the log and the poll does the work.
func (h *Host) Watch(ctx context.Context, cfg WatchConfig) *Watcher {
	w := &Watcher{c: make(chan Trigger), rewatch: func() {}}
	events := make(chan struct{}, 1)
	stop := func() {}
	if cfg.Dirs != nil {
		s, re, err := dirwatch.Watch(cfg.Dirs, func() {
			select {
			case events <- struct{}{}:
			default:
			}
		})
		if err != nil {
			h.log.Warn("cannot watch for file changes; polling only", "poll_interval", cfg.Interval.String(), "error", err)
		} else {
			stop, w.rewatch = s, re
		}
	}
	hup := h.sighups()
	go w.run(ctx, cfg, hup, events, stop)
	return w
}

// C delivers the triggers; a trigger not yet received merges with the
// causes that follow it.
func (w *Watcher) C() <-chan Trigger { return w.c }

// Rewatch recomputes the watched directories now (after a reload that may
// have created one).
func (w *Watcher) Rewatch() { w.rewatch() }

func (w *Watcher) run(ctx context.Context, cfg WatchConfig, hup <-chan struct{}, events <-chan struct{}, stop func()) {
	defer stop()
	var tick <-chan time.Time
	if cfg.Interval > 0 {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	d := newDebouncer(cfg.Debounce)
	var pending Trigger
	for {
		var out chan Trigger
		if pending != (Trigger{}) {
			out = w.c
		}
		select {
		case <-ctx.Done():
			return
		case <-hup:
			pending.Signal = true
		case <-events:
			debounce.Reset(d.event(time.Now()))
		case <-debounce.C:
			d.fired()
			pending.Files = true
		case <-tick:
			pending.Poll = true
		case out <- pending:
			pending = Trigger{}
		}
	}
}

// debouncer turns a burst of events into one: the trigger comes quiet
// after the last event, but at most maxWait after the first, so that a
// steady stream of events does not put it off for ever.
type debouncer struct {
	quiet, maxWait time.Duration
	first          time.Time // of the burst under way; zero: none
}

func newDebouncer(quiet time.Duration) *debouncer {
	return &debouncer{quiet: quiet, maxWait: max(10*quiet, time.Second)}
}

// event notes an event at now and returns how long from now the trigger
// is due.
func (d *debouncer) event(now time.Time) time.Duration {
	if d.first.IsZero() {
		d.first = now
	}
	return max(min(d.quiet, d.first.Add(d.maxWait).Sub(now)), 0)
}

// fired notes that the trigger went off: the next event begins a burst.
func (d *debouncer) fired() { d.first = time.Time{} }
