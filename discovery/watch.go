package discovery

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Watch runs a Source for a component and keeps its current set. Its
// methods are safe for concurrent use; Current is a lock-free read, so a
// request path may call it every time.
type Watch struct {
	src     Source
	name    string
	log     *slog.Logger
	m       *Metrics
	onEvent func()

	mu      sync.Mutex
	set     Set
	synced  bool
	err     error
	changed chan struct{}
	done    chan struct{}
	runErr  error

	cur atomicSet
}

// WatchOptions configures a Watch.
type WatchOptions struct {
	// Name labels the logs and metrics: the upstream, route or shard the
	// source feeds ("" means the source string).
	Name string
	// Logger gets "endpoints changed" and "discovery failed" lines (nil:
	// slog.Default()).
	Logger *slog.Logger
	// Metrics, if set, is updated on every change and failure.
	Metrics *Metrics
	// OnChange, if set, is called after each update or failure, outside
	// any lock.
	OnChange func()
}

// StartWatch runs src in the background until ctx ends.
func StartWatch(ctx context.Context, src Source, o WatchOptions) *Watch {
	if o.Name == "" {
		o.Name = src.String()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	w := &Watch{
		src: src, name: o.Name, m: o.Metrics, onEvent: o.OnChange,
		log:     o.Logger.With("upstream", o.Name, "source", src.String()),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if w.m != nil {
		w.m.errors.WithLabelValues(w.name, src.Kind())
		w.m.updates.WithLabelValues(w.name, src.Kind())
		w.m.healthy.WithLabelValues(w.name).Set(0)
	}
	go func() {
		err := src.Run(ctx, w)
		w.mu.Lock()
		w.runErr = err
		if err != nil && ctx.Err() == nil {
			w.err = err
		}
		w.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			w.log.Error("discovery stopped; the last endpoints stay in force", "error", err)
			if w.m != nil {
				w.m.errors.WithLabelValues(w.name, src.Kind()).Inc()
				w.m.healthy.WithLabelValues(w.name).Set(0)
			}
		}
		close(w.done)
	}()
	return w
}

// Name is the Watch's name (WatchOptions.Name).
func (w *Watch) Name() string { return w.name }

// Source is the source the Watch runs.
func (w *Watch) Source() Source { return w.src }

// Current is the last set the source delivered (empty before the first).
func (w *Watch) Current() Set { return w.cur.load() }

// Changed is closed at the next update or failure; call it again for the
// one after.
func (w *Watch) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// Status says whether the first answer has come (synced), and the error of
// the last refresh (nil when the last refresh succeeded).
func (w *Watch) Status() (synced bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced, w.err
}

// Done is closed when the source's Run has returned (the context ended,
// or the source gave up: Status then holds why).
func (w *Watch) Done() <-chan struct{} { return w.done }

// WaitSynced waits for the first answer, the source giving up, or ctx.
func (w *Watch) WaitSynced(ctx context.Context) error {
	for {
		ch := w.Changed()
		if synced, _ := w.Status(); synced {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			_, err := w.Status()
			if err == nil {
				err = context.Canceled
			}
			return err
		case <-ch:
		}
	}
}

// Update implements Receiver.
func (w *Watch) Update(s Set) {
	s = s.Normalize()
	w.mu.Lock()
	prev, wasSynced, hadErr := w.set, w.synced, w.err != nil
	w.set, w.synced, w.err = s, true, nil
	w.cur.store(s)
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()

	ready, serving, terminating := s.Counts()
	if w.m != nil {
		kind := w.src.Kind()
		w.m.updates.WithLabelValues(w.name, kind).Inc()
		w.m.endpoints.WithLabelValues(w.name, "ready").Set(float64(ready))
		w.m.endpoints.WithLabelValues(w.name, "serving").Set(float64(serving))
		w.m.endpoints.WithLabelValues(w.name, "terminating").Set(float64(terminating))
		w.m.last.WithLabelValues(w.name).Set(float64(time.Now().UnixNano()) / 1e9)
		w.m.healthy.WithLabelValues(w.name).Set(1)
	}
	switch {
	case !wasSynced || !prev.Equal(s):
		level := slog.LevelInfo
		msg := "endpoints changed"
		if len(s.Routable()) == 0 {
			level, msg = slog.LevelWarn, "endpoints changed: none is ready"
		}
		w.log.Log(context.Background(), level, msg, "ready", ready, "serving", serving, "terminating", terminating, "endpoints", addrs(s))
	case hadErr:
		w.log.Info("discovery recovered; the endpoints are unchanged", "ready", ready)
	}
	if w.onEvent != nil {
		w.onEvent()
	}
}

// Failed implements Receiver.
func (w *Watch) Failed(err error) {
	w.mu.Lock()
	prev := w.err
	w.err = err
	n := len(w.set.Endpoints)
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	if w.m != nil {
		w.m.errors.WithLabelValues(w.name, w.src.Kind()).Inc()
		w.m.healthy.WithLabelValues(w.name).Set(0)
	}
	// One line per distinct failure, not one per retry.
	if prev == nil || prev.Error() != err.Error() {
		w.log.Warn("discovery failed; the last good endpoints stay in force", "error", err, "kept", n)
	}
	if w.onEvent != nil {
		w.onEvent()
	}
}

func addrs(s Set) []string {
	out := make([]string, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		out = append(out, e.Addr())
	}
	return out
}

// Metrics are discovery's metrics for one component, named
// podkit_<subsystem>_discovery_*; each series is labelled by the Watch's
// name (upstream).
type Metrics struct {
	updates   *prometheus.CounterVec
	errors    *prometheus.CounterVec
	endpoints *prometheus.GaugeVec
	last      *prometheus.GaugeVec
	healthy   *prometheus.GaugeVec
}

// NewMetrics makes the metrics for a component ("broker", "split").
// Register Collectors with the component's registry.
func NewMetrics(subsystem string) *Metrics {
	ns := "podkit_" + subsystem + "_discovery_"
	return &Metrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "updates_total",
			Help: "Endpoint sets delivered by the upstream's discovery source.",
		}, []string{"upstream", "kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "errors_total",
			Help: "Failed refreshes of the upstream's discovery source (the last good endpoints stay).",
		}, []string{"upstream", "kind"}),
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "endpoints",
			Help: "Endpoints the source reports, by condition: ready, serving (not ready, still serving), terminating.",
		}, []string{"upstream", "condition"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "last_update_timestamp_seconds",
			Help: "Unix time of the source's last successful refresh.",
		}, []string{"upstream"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "healthy",
			Help: "1 when the source's last refresh succeeded, 0 when it failed or has not answered yet.",
		}, []string{"upstream"}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.updates, m.errors, m.endpoints, m.last, m.healthy}
}

// Forget drops the series of an upstream that no longer exists.
func (m *Metrics) Forget(upstream string) {
	for _, v := range []*prometheus.MetricVec{m.updates.MetricVec, m.errors.MetricVec, m.endpoints.MetricVec, m.last.MetricVec, m.healthy.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"upstream": upstream})
	}
}

type atomicSet struct{ p atomic.Pointer[Set] }

func (a *atomicSet) load() Set {
	if s := a.p.Load(); s != nil {
		return *s
	}
	return Set{}
}

func (a *atomicSet) store(s Set) { a.p.Store(&s) }
