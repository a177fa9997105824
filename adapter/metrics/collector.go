package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/internal/resp"
)

// ErrParse is wrapped by every error caused by a status page or reply that
// could not be parsed: outside input that is not what the source speaks.
var ErrParse = errors.New("unparsable status")

// ParseError says where a status page or reply stopped making sense.
type ParseError struct {
	What string // "stub_status", "INFO", ...
	Line int    // 1-based; 0 when not about one line
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d: %s", e.What, e.Line, e.Msg)
	}
	return e.What + ": " + e.Msg
}

// Unwrap makes errors.Is(err, ErrParse) true.
func (e *ParseError) Unwrap() error { return ErrParse }

// scraper reads one target's status and turns it into metrics.
type scraper interface {
	// scrape fills e, or returns why it could not. It is never called
	// concurrently for one target.
	scrape(ctx context.Context, e *emitter) error
	close() error
}

// source describes one kind of target.
type source struct {
	name   string // nginx, redis, mysql, postgres: the metric prefix
	label  string // the label that carries the target's address
	upHelp string
	// The anchor exporter's per-collector metrics, if it has them, and the
	// prefix of its collector label values.
	successName, durationName, collectorPrefix string
}

var (
	srcNginx = source{name: "nginx", label: "addr", upHelp: "Status of the last metric scrape"}
	srcRedis = source{name: "redis", label: "addr", upHelp: "Information about the Redis instance"}
	srcMySQL = source{name: "mysql", label: "addr", upHelp: "Whether the MySQL server is up.",
		successName: "mysql_exporter_collector_success", durationName: "mysql_exporter_collector_duration_seconds", collectorPrefix: "collect."}
	srcPostgres = source{name: "postgres", label: "server", upHelp: "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).",
		successName: "pg_scrape_collector_success", durationName: "pg_scrape_collector_duration_seconds"}
)

// upName is the <source>_up metric's name; PostgreSQL's anchor says pg_up.
func (s source) upName() string {
	if s.name == "postgres" {
		return "pg_up"
	}
	return s.name + "_up"
}

// shared holds the adapter's own metrics, common to every target.
type shared struct {
	log      *slog.Logger
	timeout  time.Duration
	duration *prometheus.Desc
	errors   *prometheus.Desc
	scrapes  *prometheus.Desc
	success  *prometheus.Desc
	now      func() time.Time
}

func newShared(log *slog.Logger, timeout time.Duration) *shared {
	return &shared{
		log:     log,
		timeout: timeout,
		now:     time.Now,
		duration: prometheus.NewDesc("podkit_metrics_scrape_duration_seconds",
			"How long the last scrape of the target took.", []string{"source", "target"}, nil),
		errors: prometheus.NewDesc("podkit_metrics_scrape_errors_total",
			"Failed scrapes of a target, or of one of its collectors, by reason: connect, timeout, http_status, parse, auth, permission, query.",
			[]string{"source", "target", "reason"}, nil),
		success: prometheus.NewDesc("podkit_metrics_collector_success",
			"Whether each collector of a reachable target succeeded in the last scrape.",
			[]string{"source", "target", "collector"}, nil),
		scrapes: prometheus.NewDesc("podkit_metrics_scrapes_total",
			"Scrapes of a target, successful or not.", []string{"source", "target"}, nil),
	}
}

// target is the prometheus.Collector of one --nginx, --redis, --mysql or
// --postgres target: every Collect scrapes it synchronously and sends
// const metrics; a failed scrape sends only <source>_up 0 and the scrape
// duration.
type target struct {
	src  source
	addr string
	s    scraper
	sh   *shared

	mu      sync.Mutex // one scrape at a time per target; guards the rest
	descs   map[string]*prometheus.Desc
	up      *prometheus.Desc
	scrapes float64
	errs    map[string]float64 // by reason

	success, duration *prometheus.Desc // the anchor's per-collector metrics; nil if none
}

var _ prometheus.Collector = (*target)(nil)

func newTarget(src source, addr string, s scraper, sh *shared) *target {
	t := &target{src: src, addr: addr, s: s, sh: sh, descs: map[string]*prometheus.Desc{},
		errs: map[string]float64{"connect": 0}}
	t.up = prometheus.NewDesc(src.upName(), src.upHelp, nil, prometheus.Labels{src.label: addr})
	if src.successName != "" {
		t.success = prometheus.NewDesc(src.successName, src.name+": Whether a collector succeeded.", []string{"collector"}, prometheus.Labels{src.label: addr})
		t.duration = prometheus.NewDesc(src.durationName, src.name+": Collector time duration.", []string{"collector"}, prometheus.Labels{src.label: addr})
	}
	return t
}

// Describe sends nothing: the set of metrics depends on what the target
// reports (an unchecked collector).
func (t *target) Describe(chan<- *prometheus.Desc) {}

// Collect scrapes the target now.
func (t *target) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), t.sh.timeout)
	defer cancel()
	start := time.Now()
	e := &emitter{t: t}
	err := t.s.scrape(ctx, e)
	took := time.Since(start).Seconds()
	t.scrapes++
	up := 1.0
	if err != nil {
		up = 0
		reason := classify(ctx, err)
		t.errs[reason]++
		t.sh.log.Warn("scrape failed", "source", t.src.name, "target", t.addr, "reason", reason, "error", err)
	} else {
		for _, m := range e.out {
			ch <- m
		}
		for _, r := range e.runs {
			ok := 1.0
			if r.err != nil {
				ok = 0
				reason := classify(ctx, r.err)
				t.errs[reason]++
				t.sh.log.Warn("collector failed", "source", t.src.name, "target", t.addr, "collector", r.name, "reason", reason, "error", r.err)
			}
			ch <- prometheus.MustNewConstMetric(t.sh.success, prometheus.GaugeValue, ok, t.src.name, t.addr, r.name)
			if t.success != nil {
				ch <- prometheus.MustNewConstMetric(t.success, prometheus.GaugeValue, ok, t.src.collectorPrefix+r.name)
				ch <- prometheus.MustNewConstMetric(t.duration, prometheus.GaugeValue, r.took.Seconds(), t.src.collectorPrefix+r.name)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(t.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(t.sh.duration, prometheus.GaugeValue, took, t.src.name, t.addr)
	ch <- prometheus.MustNewConstMetric(t.sh.scrapes, prometheus.CounterValue, t.scrapes, t.src.name, t.addr)
	for reason, n := range t.errs {
		ch <- prometheus.MustNewConstMetric(t.sh.errors, prometheus.CounterValue, n, t.src.name, t.addr, reason)
	}
}

// classify names why a scrape failed, for the errors counter.
func classify(ctx context.Context, err error) string {
	var re resp.Error
	var ne net.Error
	var oe *net.OpError
	var hs *httpStatusError
	switch {
	case errors.Is(err, ErrParse), errors.Is(err, resp.ErrProtocol), errors.Is(err, resp.ErrTooLarge):
		return "parse"
	case errors.As(err, &hs):
		return "http_status"
	case dbwire.IsAuthFailed(err):
		return "auth"
	case dbwire.IsPermissionDenied(err):
		return "permission"
	case errors.As(err, &re):
		if isAuthError(string(re)) {
			return "auth"
		}
		return "query"
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "connect"
	case isConnectError(err):
		return "connect"
	case isAuthError(err.Error()):
		return "auth"
	}
	return "query"
}

var authRE = regexp.MustCompile(`(?i)(NOAUTH|WRONGPASS|invalid password|password authentication failed|authentication)`)

func isAuthError(msg string) bool { return authRE.MatchString(msg) }

var connectRE = regexp.MustCompile(`(?i)(connection refused|no such host|connect: |failed to connect|dial |broken pipe|connection reset|EOF|bad connection|invalid connection)`)

func isConnectError(err error) bool { return connectRE.MatchString(err.Error()) }

// emitter collects one scrape's metrics, labelled with the target.
type emitter struct {
	t    *target
	out  []prometheus.Metric
	runs []collectorRun
}

// collectorRun is the outcome of one collector in one scrape.
type collectorRun struct {
	name string
	took time.Duration
	err  error
}

// collect runs one named collector of a target (one query or command, as
// the anchor exporters split them). An error the server answered — a
// privilege missing, a statement refused — or a reply that does not parse
// fails this collector alone: its partial metrics are dropped and the
// target's other collectors still export (as mysqld_exporter does). An
// error reaching the server (connect, timeout, auth) is returned: the
// whole target is down. A required collector's failure is returned too.
func (e *emitter) collect(ctx context.Context, name string, required bool, fn func() error) error {
	start := time.Now()
	n := len(e.out)
	err := fn()
	e.runs = append(e.runs, collectorRun{name: name, took: time.Since(start), err: err})
	if err == nil {
		return nil
	}
	e.out = e.out[:n]
	switch classify(ctx, err) {
	case "connect", "timeout", "auth":
		return err
	}
	if required {
		return err
	}
	return nil
}

// metric adds a sample; labels are name/value pairs after the target's
// own label. A name the exposition format cannot carry is skipped and
// logged at debug level.
func (e *emitter) metric(name, help string, vt prometheus.ValueType, v float64, labels ...string) {
	var names, values []string
	for i := 0; i+1 < len(labels); i += 2 {
		names = append(names, labels[i])
		values = append(values, labels[i+1])
	}
	d, ok := e.t.descs[name]
	if !ok {
		d = prometheus.NewDesc(name, help, names, prometheus.Labels{e.t.src.label: e.t.addr})
		e.t.descs[name] = d
	}
	m, err := prometheus.NewConstMetric(d, vt, v, values...)
	if err != nil {
		e.t.sh.log.Debug("metric skipped", "source", e.t.src.name, "target", e.t.addr, "metric", name, "error", err)
		return
	}
	e.out = append(e.out, m)
}

func (e *emitter) gauge(name, help string, v float64, labels ...string) {
	e.metric(name, help, prometheus.GaugeValue, v, labels...)
}

func (e *emitter) counter(name, help string, v float64, labels ...string) {
	e.metric(name, help, prometheus.CounterValue, v, labels...)
}

func (e *emitter) untyped(name, help string, v float64, labels ...string) {
	e.metric(name, help, prometheus.UntypedValue, v, labels...)
}

// httpStatusError is a status page answered with a non-200 status.
type httpStatusError struct {
	url    string
	status string
}

func (e *httpStatusError) Error() string { return e.url + " answered " + e.status }
