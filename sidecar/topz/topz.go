// Package topz is the sidecar that shows what runs in a pod: placed in the
// pod's shared PID namespace (Kubernetes shareProcessNamespace: true,
// Docker --pid container:APP), it lists every process it can see on
// GET /topz — pid, parent, user, state, CPU%, resident memory, threads,
// open file descriptors, start time, command line, and the container each
// belongs to — as JSON, a plain text table or an HTML page, chosen by the
// Accept header.
//
// It reads the proc root directly (no cgo, no external tools). A background
// sampler rescans every --interval and requests are answered from the last
// scan, so CPU% is averaged over the time between two scans; ?fresh=1 asks
// for a new scan first. The container of a process is taken from
// /proc/PID/cgroup (cgroup v1 and v2; docker, containerd, cri-o, podman
// and kubepods naming). User names come from the process's own
// /etc/passwd when topz may read it, else from topz's, else the uid.
//
// When the only processes visible are topz's own, every output says so: the
// PID namespace is then probably not shared.
//
// GET /topz is served through the container's API security: with tokens
// or client certificates configured it needs the reader role, and a
// --listen other than loopback needs TLS, tokens or --insecure-listen.
package topz

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
)

// DefaultListen is --listen's default: loopback, because command lines can
// carry secrets; reach it with kubectl port-forward, or listen on the pod
// IP on purpose (with TLS, tokens or --insecure-listen).
const DefaultListen = "127.0.0.1:8081"

// Config configures Topz.
type Config struct {
	// Listen is the address GET /topz is served on.
	Listen string `json:"listen"`
	// Proc is the proc root to read (default /proc); tests point it at a
	// fixture tree.
	Proc string `json:"proc"`
	// Passwd names uids of processes whose own /etc/passwd cannot be read
	// ("" for none).
	Passwd string `json:"passwd"`
	// Interval is the background sampler's period.
	Interval time.Duration `json:"interval"`
	// CPUWindow is the shortest span CPU% is measured over: the first scan
	// is followed by a second one this much later, and an on-demand scan
	// (?fresh=1) waits until this long after the previous one.
	CPUWindow time.Duration `json:"cpu_window"`

	// Listener, when set, is served instead of listening on Listen.
	Listener net.Listener `json:"-"`

	// API secures --listen: TLS, client certificates, tokens with the
	// reader role (container.APISecurity).
	API container.APISecurity `json:"api"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:    DefaultListen,
		Proc:      "/proc",
		Passwd:    "/etc/passwd",
		Interval:  2 * time.Second,
		CPUWindow: 200 * time.Millisecond,
	}
}

// RegisterFlags adds topz's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve GET /topz on (loopback by default: command lines can carry secrets; another address needs --tls-cert, --token-file or --insecure-listen)")
	fs.StringVar(&c.Proc, "proc", c.Proc, "proc `root` to read")
	fs.StringVar(&c.Passwd, "passwd", c.Passwd, "passwd `file` naming the uids of processes whose own /etc/passwd cannot be read (\"\" for none)")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "how often the background sampler rescans; CPU% is averaged between scans")
	fs.DurationVar(&c.CPUWindow, "cpu-window", c.CPUWindow, "shortest span CPU% is measured over (first scan, and ?fresh=1 scans)")
	c.API.RegisterFlags(fs)
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	addr := "" // the listen rule applies to --listen, not to a given Listener
	if c.Listener == nil {
		if err := container.ValidateListenAddr(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen: %w", err))
		} else {
			addr = c.Listen
		}
	}
	if err := c.API.Validate("--listen", addr, apiAccess()); err != nil {
		errs = append(errs, err)
	}
	if c.Proc == "" {
		errs = append(errs, errors.New("--proc: must not be empty"))
	}
	if c.CPUWindow < 10*time.Millisecond || c.CPUWindow > time.Minute {
		errs = append(errs, fmt.Errorf("--cpu-window: %s is not between 10ms and 1m", c.CPUWindow))
	}
	if c.Interval < 100*time.Millisecond || c.Interval > time.Hour {
		errs = append(errs, fmt.Errorf("--interval: %s is not between 100ms and 1h", c.Interval))
	} else if c.Interval < c.CPUWindow {
		errs = append(errs, fmt.Errorf("--interval: %s is shorter than --cpu-window %s", c.Interval, c.CPUWindow))
	}
	return errors.Join(errs...)
}

// Topz is the component.
type Topz struct {
	cfg    Config
	access container.Access // who may call what on --listen
	sc     *scanner

	sem       chan struct{} // one scan at a time
	mu        sync.Mutex
	snap      *Snapshot
	lastStart time.Time // monotonic start of the last scan
	lastEnd   time.Time
	scanErr   error

	addr container.BoundAddr // GET /topz's, once Run listens

	procs    prometheus.Gauge
	ctrs     prometheus.Gauge
	onlyOwn  prometheus.Gauge
	duration prometheus.Histogram
	scans    *prometheus.CounterVec
	parseErr *prometheus.CounterVec
	requests *prometheus.CounterVec
}

var (
	_ container.Component  = (*Topz)(nil)
	_ container.Configured = (*Topz)(nil)
)

// New validates cfg and returns a Topz.
func New(cfg Config) (*Topz, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Topz{
		cfg:    cfg,
		access: apiAccess(),
		sc:     newScanner(cfg.Proc, cfg.Passwd),
		sem:    make(chan struct{}, 1),
		procs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_topz_processes", Help: "Processes visible in the PID namespace at the last scan.",
		}),
		ctrs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_topz_containers", Help: "Distinct container ids among the visible processes at the last scan.",
		}),
		onlyOwn: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_topz_only_own_processes", Help: "1 when only topz's own processes are visible (the PID namespace is probably not shared).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podkit_topz_scrape_duration_seconds",
			Help:    "Time to scan the proc root.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_topz_scrapes_total", Help: "Scans of the proc root, by result.",
		}, []string{"result"}),
		parseErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_topz_parse_errors_total", Help: "Proc files that could not be parsed, by file name.",
		}, []string{"file"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_topz_requests_total", Help: "GET /topz requests, by format and status code.",
		}, []string{"format", "code"}),
	}
	for _, f := range []string{"stat", "status", "cgroup"} {
		t.parseErr.WithLabelValues(f)
	}
	t.scans.WithLabelValues("ok")
	t.scans.WithLabelValues("error")
	return t, nil
}

// Command is the `podkit topz` subcommand.
func Command() cli.Command {
	return container.FlagCommand("topz",
		"list the processes of the pod (shared PID namespace) as JSON, text or HTML on GET /topz",
		"[--listen 127.0.0.1:8081] [--token-file F] [--tls-cert F --tls-key F] [--interval 2s] [--proc /proc] [flags]",
		DefaultConfig, New)
}

// Name implements container.Component.
func (t *Topz) Name() string { return "topz" }

// Addr returns the bound address of the GET /topz listener, or nil before
// Run listens.
func (t *Topz) Addr() net.Addr { return t.addr.Addr() }

// EffectiveConfig implements container.Configured.
func (t *Topz) EffectiveConfig() any { return t.cfg }

// Run implements container.Component: it takes a first snapshot (two scans
// --cpu-window apart), then serves GET /topz while the sampler rescans
// every --interval. A proc root that cannot be read stops it with an error.
func (t *Topz) Run(ctx context.Context, h *container.Host) error {
	h.Registerer().MustRegister(t.procs, t.ctrs, t.onlyOwn, t.duration, t.scans, t.parseErr, t.requests)
	log := h.Logger()
	api, err := container.OpenAPI(ctx, h, container.APIConfig{
		Flag: "--listen", Addr: t.cfg.Listen, Listener: t.cfg.Listener,
		Security: t.cfg.API, Access: t.access,
	})
	if err != nil {
		return err
	}
	ln := api.Listener()
	defer ln.Close()
	t.addr.Set(ln)
	for range 2 {
		if _, err := t.refresh(ctx, time.Now()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	snap := t.current()
	log.Info("serving", "listen", ln.Addr().String(), "tls", t.cfg.API.TLS(), "processes", len(snap.Processes), "proc", t.cfg.Proc)
	if snap.OnlyOwn() {
		log.Warn(onlyOwnWarning)
	}
	h.AddCheck(container.Check{
		Name:   "proc-scan",
		Period: t.cfg.Interval,
		Func: func(context.Context) error {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.scanErr
		},
	})
	h.AddCheck(container.Check{
		Name:   "pid-namespace-shared",
		Period: t.cfg.Interval,
		Func: func(context.Context) error {
			if s := t.current(); s != nil && s.OnlyOwn() {
				return errors.New(onlyOwnWarning)
			}
			return nil
		},
	})
	go t.sample(ctx, h)
	srv := &http.Server{
		Handler:           t.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return api.Serve(ctx, srv)
}

// sample rescans every --interval until ctx ends; it rests while the
// component is paused (requests are then answered from the last scan).
func (t *Topz) sample(ctx context.Context, h *container.Host) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if h.Paused() {
			continue
		}
		_, err := t.refresh(ctx, time.Now())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && err.Error() != lastErr:
			h.Logger().Error("scan failed; serving the last good snapshot", "error", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			h.Logger().Info("scans work again")
			lastErr = ""
		}
	}
}

// current returns the last snapshot (nil before the first scan).
func (t *Topz) current() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap
}

// refresh returns a snapshot from a scan that began at or after since,
// scanning if there is none (concurrent callers share one scan). A scan
// begins no sooner than --cpu-window after the previous one.
func (t *Topz) refresh(ctx context.Context, since time.Time) (*Snapshot, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-t.sem }()
	t.mu.Lock()
	snap, lastStart, lastEnd := t.snap, t.lastStart, t.lastEnd
	t.mu.Unlock()
	if snap != nil && !lastStart.Before(since) {
		return snap, nil
	}
	if !lastEnd.IsZero() {
		if wait := time.Until(lastEnd.Add(t.cfg.CPUWindow)); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			}
		}
	}
	start := time.Now()
	snap, perrs, err := t.sc.scan()
	end := time.Now()
	for f, n := range perrs {
		t.parseErr.WithLabelValues(f).Add(float64(n))
	}
	t.duration.Observe(end.Sub(start).Seconds())
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastEnd = end
	if err != nil {
		t.scans.WithLabelValues("error").Inc()
		t.scanErr = err
		return nil, err
	}
	t.scans.WithLabelValues("ok").Inc()
	t.snap, t.lastStart, t.scanErr = snap, start, nil
	t.procs.Set(float64(len(snap.Processes)))
	t.ctrs.Set(float64(len(summarize(snap.Processes))))
	if snap.OnlyOwn() {
		t.onlyOwn.Set(1)
	} else {
		t.onlyOwn.Set(0)
	}
	return snap, nil
}

// Snapshot returns the last scan's snapshot, or a new scan's when fresh is
// set. It scans if there has been none yet.
func (t *Topz) Snapshot(ctx context.Context, fresh bool) (*Snapshot, error) {
	if !fresh {
		if s := t.current(); s != nil {
			return s, nil
		}
	}
	return t.refresh(ctx, time.Now())
}

// onlyOwnWarning is shown in every format when only topz's own processes
// are visible.
const onlyOwnWarning = "only topz's own process is visible: the PID namespace is probably not shared " +
	"(Kubernetes: set shareProcessNamespace: true in the pod spec; Docker: run topz with --pid container:APP)"
