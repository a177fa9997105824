package container

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/podkit/podkit/internal/buildinfo"
)

// Host is what a component sees of the container it runs in.
type Host struct {
	name    string
	comp    Component
	opts    Options
	log     *slog.Logger
	reg     *prometheus.Registry
	started time.Time

	mu            sync.Mutex
	compReady     bool
	awaited       bool
	awaitedCh     chan struct{}
	paused        bool
	pauseCh       chan struct{} // closed and replaced on every pause/resume
	draining      bool
	deadline      time.Time
	stopping      bool
	everReady     bool
	lastReadiness bool

	stopSignal atomic.Pointer[sigHolder]
	waitErr    atomic.Pointer[ExitError] // set when --wait-timeout expired
	stopReq    chan string
	stopOnce   sync.Once

	drainCtx    context.Context
	drainCancel context.CancelFunc

	checks *checker
	events *broker

	hupSubs     []chan struct{} // one per sighups call
	hupStarted  bool            // SIGHUP is caught (or was, until Run returned)
	stopReloads func()

	readyGauge, pausedGauge, drainingGauge prometheus.Gauge

	infoMu sync.Mutex
	info   map[string]func() any // extra sections of GET /info
}

// setInfo adds a section to GET /info, computed at each request.
func (h *Host) setInfo(key string, f func() any) {
	h.infoMu.Lock()
	defer h.infoMu.Unlock()
	if h.info == nil {
		h.info = map[string]func() any{}
	}
	h.info[key] = f
}

func newHost(c Component, opts Options, logger *slog.Logger) *Host {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := buildinfo.Get()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "podkit_build_info",
		Help:        "podkit build information; always 1.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "goversion": bi.GoVersion, "component": c.Name()},
	})
	build.Set(1)
	h := &Host{
		name:      c.Name(),
		comp:      c,
		opts:      opts,
		log:       logger,
		reg:       reg,
		started:   time.Now(),
		awaitedCh: make(chan struct{}),
		pauseCh:   make(chan struct{}),
		stopReq:   make(chan string, 1),
		events:    newBroker(),
		readyGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_ready", Help: "1 while /readyz answers 200.",
		}),
		pausedGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_paused", Help: "1 while paused by POST /pause.",
		}),
		drainingGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_draining", Help: "1 while draining before a stop.",
		}),
	}
	start := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podkit_start_time_seconds", Help: "Unix time the component started.",
	})
	start.Set(float64(h.started.UnixNano()) / 1e9)
	reg.MustRegister(build, start, h.readyGauge, h.pausedGauge, h.drainingGauge)
	h.drainCtx, h.drainCancel = context.WithCancel(context.Background())
	h.checks = newChecker(h)
	h.events.publish(Event{Type: EventStarting, Time: h.started})
	return h
}

// Logger returns the component's logger, tagged with its name.
func (h *Host) Logger() *slog.Logger { return h.log }

// HasLogAttr reports whether Logger's lines already carry the attribute
// key from Options.LogAttrs (set by the command or the program hosting the
// component), so that the component does not add it a second time.
func (h *Host) HasLogAttr(key string) bool {
	for i := 0; i+1 < len(h.opts.LogAttrs); i += 2 {
		if k, ok := h.opts.LogAttrs[i].(string); ok && k == key {
			return true
		}
	}
	return false
}

// Registerer is where the component registers its metrics
// (podkit_<component>_<name>_<unit>); they are served on /metrics.
func (h *Host) Registerer() prometheus.Registerer { return h.reg }

// Gatherer returns the metrics registry, for tests and embedding.
func (h *Host) Gatherer() prometheus.Gatherer { return h.reg }

// SetReady reports whether the component itself is ready for traffic.
// /readyz is 200 only when the component is ready, every --wait-for target
// has answered, every readiness check passes, and the host is neither
// paused nor draining.
func (h *Host) SetReady(ready bool) {
	h.mu.Lock()
	h.compReady = ready
	h.mu.Unlock()
	h.recompute()
}

// Paused reports whether the component is paused by POST /pause: it must
// take no new work (a worker stops leasing; a proxy keeps open connections).
func (h *Host) Paused() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.paused
}

// PauseChanged returns a channel closed at the next pause or resume.
func (h *Host) PauseChanged() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pauseCh
}

// WaitResumed blocks while the component is paused, or until ctx ends.
func (h *Host) WaitResumed(ctx context.Context) error {
	for {
		h.mu.Lock()
		paused, ch := h.paused, h.pauseCh
		h.mu.Unlock()
		if !paused {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Awaited blocks until every --wait-for target has answered once (at once
// when there are none), or ctx ends.
func (h *Host) Awaited(ctx context.Context) error {
	select {
	case <-h.awaitedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DrainContext ends when the drain deadline passes (or on a forced stop):
// use it to bound graceful shutdown once Run's context has ended.
func (h *Host) DrainContext() context.Context { return h.drainCtx }

// StopSignal is the signal that began the stop (nil before a stop, or when
// the stop came from /quitquitquit, --exit-when-done or the context).
func (h *Host) StopSignal() os.Signal {
	if s := h.stopSignal.Load(); s != nil {
		return s.sig
	}
	return nil
}

// Stop asks the host for a graceful stop, as SIGTERM would.
func (h *Host) Stop(reason string) { h.requestStop(reason) }

// AddCheck registers a dependency check; it runs in the background every
// Period and its cached result appears on /healthz (and on /readyz when
// Ready is set). Checks added after start begin at once.
func (h *Host) AddCheck(c Check) { h.checks.add(c) }

func (h *Host) markAwaited() {
	h.mu.Lock()
	if !h.awaited {
		h.awaited = true
		close(h.awaitedCh)
	}
	h.mu.Unlock()
	h.recompute()
}

func (h *Host) setPaused(p bool) bool {
	h.mu.Lock()
	changed := h.paused != p
	if changed {
		h.paused = p
		close(h.pauseCh)
		h.pauseCh = make(chan struct{})
	}
	h.mu.Unlock()
	if changed {
		typ := EventResumed
		if p {
			typ = EventPaused
			h.log.Info("paused: not ready, taking no new work")
		} else {
			h.log.Info("resumed")
		}
		h.events.publish(Event{Type: typ, Time: time.Now()})
		h.recompute()
	}
	return changed
}

func (h *Host) setDraining(deadline time.Time) {
	h.mu.Lock()
	h.draining = true
	h.deadline = deadline
	h.mu.Unlock()
	h.recompute()
	h.events.publish(Event{Type: EventDraining, Time: time.Now(), Deadline: deadline})
}

func (h *Host) setStopping() {
	h.mu.Lock()
	already := h.stopping
	h.stopping = true
	h.draining = true
	h.mu.Unlock()
	if already {
		return
	}
	h.recompute()
	h.events.publish(Event{Type: EventStopping, Time: time.Now()})
	h.events.close()
}

// readiness returns whether /readyz should answer 200, and why not.
func (h *Host) readiness() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.readinessLocked()
}

func (h *Host) readinessLocked() (bool, string) {
	switch {
	case h.stopping:
		return false, "stopping"
	case h.draining:
		return false, "draining"
	case h.paused:
		return false, "paused"
	case !h.awaited:
		return false, "waiting for --wait-for targets"
	case !h.compReady:
		return false, "starting"
	}
	if name, ok := h.checks.failingReady(); !ok {
		return false, "check " + name + " failing"
	}
	return true, ""
}

// recompute refreshes the readiness gauges and emits the first "ready".
func (h *Host) recompute() {
	h.mu.Lock()
	ready, _ := h.readinessLocked()
	first := ready && !h.everReady
	if ready {
		h.everReady = true
	}
	changed := ready != h.lastReadiness
	h.lastReadiness = ready
	paused, draining := h.paused, h.draining
	h.mu.Unlock()
	h.readyGauge.Set(b2f(ready))
	h.pausedGauge.Set(b2f(paused))
	h.drainingGauge.Set(b2f(draining))
	if first {
		h.log.Info("ready")
		h.events.publish(Event{Type: EventReady, Time: time.Now()})
	} else if changed && !draining && !paused {
		h.log.Info("readiness changed", "ready", ready)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sighups returns a channel of its own that receives once per SIGHUP
// (bursts coalesce), for a Watcher (see Host.Watch and Reloader, through
// which components reload). The first call starts catching SIGHUP for the
// process; catching stops when Run returns. While no component watches,
// SIGHUP keeps its default action.
func (h *Host) sighups() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan struct{}, 1)
	h.hupSubs = append(h.hupSubs, ch)
	if !h.hupStarted {
		h.hupStarted = true
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		done := make(chan struct{})
		h.stopReloads = func() { signal.Stop(sig); close(done) }
		go func() {
			for {
				select {
				case <-done:
					return
				case <-sig:
					h.mu.Lock()
					subs := h.hupSubs
					h.mu.Unlock()
					for _, c := range subs {
						select {
						case c <- struct{}{}:
						default: // one pending reload covers this one too
						}
					}
				}
			}
		}()
	}
	return ch
}

// stopReloadSignals ends SIGHUP catching started by sighups.
func (h *Host) stopReloadSignals() {
	h.mu.Lock()
	stop := h.stopReloads
	h.stopReloads = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}
