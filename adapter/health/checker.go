package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/secretfile"
)

// Failure reasons, the reason label of podkit_health_check_failures_total.
const (
	ReasonConnect = "connect" // the server could not be reached
	ReasonAuth    = "auth"    // the server refused the credentials
	ReasonTimeout = "timeout" // no answer within --timeout
	ReasonQuery   = "query"   // the server answered the query with an error
	ReasonExpect  = "expect"  // the answer did not match --expect
	ReasonLatency = "latency" // the answer came after --max-latency
	ReasonLag     = "lag"     // replication lag above --max-lag
	// ReasonPermission: the credentials were accepted but the account
	// lacks a privilege the query, or the replication status, needs.
	ReasonPermission = "permission"
)

// Result is the outcome of one check.
type Result struct {
	OK      bool      `json:"ok"`
	Reason  string    `json:"reason,omitempty"`
	Error   string    `json:"error,omitempty"`
	Value   string    `json:"value,omitempty"` // the first value of the answer (clipped)
	Latency float64   `json:"latency_seconds"`
	Time    time.Time `json:"time"`
	// Replication: whether the server is a replica and how far behind it
	// is; LagError says why the lag is unknown.
	Replica  bool     `json:"replica"`
	Lag      *float64 `json:"replication_lag_seconds,omitempty"`
	LagError string   `json:"replication_lag_error,omitempty"`
	// LagReason classifies a replication status that could not be read
	// (permission, query, connect, timeout, auth); empty when it was read,
	// or when it says replication is not running.
	LagReason string `json:"replication_lag_reason,omitempty"`
}

const historyLen = 10

// probe runs one kind of check against the database.
type probe interface {
	// check runs the query; it returns the first value of the answer.
	check(ctx context.Context) (string, error)
	// lag reports whether the server is a replica and its lag in seconds
	// (+Inf when replication is broken).
	lag(ctx context.Context) (replica bool, seconds float64, err error)
	close() error
}

type checker struct {
	cfg        Config
	log        *slog.Logger
	p          probe
	expect     expectation
	targetName string
	now        func() time.Time

	mu           sync.Mutex
	last         Result
	ran          bool
	lastAttempt  time.Time
	lastSuccess  time.Time
	firstSuccess time.Time
	failures     int // consecutive
	history      []Result

	duration  prometheus.Histogram
	failuresC *prometheus.CounterVec
	checks    prometheus.Counter
	lastSuccG prometheus.Gauge
	upG       prometheus.Gauge
	lagG      prometheus.Gauge
}

func newChecker(cfg Config, log *slog.Logger) (*checker, error) {
	pw := ""
	if cfg.PasswordFile != "" {
		var err error
		if pw, err = secretfile.Read(cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
	}
	expect, _ := parseExpect(cfg.Expect) // validated
	c := &checker{cfg: cfg, log: log, expect: expect, now: time.Now}
	kind, spec := cfg.kind()
	switch kind {
	case "redis":
		t, err := dbwire.ParseRedisTarget(spec)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		c.p = &redisProbe{target: t, password: pw, cmd: strings.Fields(cfg.Query)}
		c.targetName = "redis " + t.String()
	default:
		var t dbwire.SQLTarget
		var err error
		if kind == dbwire.MySQL {
			t, err = dbwire.ParseMySQL(spec)
		} else {
			t, err = dbwire.ParsePostgres(spec)
		}
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", kind, err)
		}
		db, err := dbwire.Open(t, pw, log)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", kind, err)
		}
		c.p = &sqlProbe{kind: kind, db: db, query: cfg.Query}
		c.targetName = kind + " " + t.Addr
	}
	c.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "podkit_health_check_duration_seconds",
		Help:    "How long each health check of the database took.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	c.failuresC = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podkit_health_check_failures_total",
		Help: "Failed health checks, by reason: connect, auth, permission, timeout, query, expect, latency, lag; a replication status that could not be read counts under its reason.",
	}, []string{"reason"})
	for _, r := range []string{ReasonConnect, ReasonAuth, ReasonPermission, ReasonTimeout, ReasonQuery, ReasonExpect, ReasonLatency, ReasonLag} {
		c.failuresC.WithLabelValues(r)
	}
	c.checks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "podkit_health_checks_total", Help: "Health checks run.",
	})
	c.lastSuccG = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podkit_health_last_success_timestamp_seconds", Help: "Unix time of the last passing health check (0: none yet).",
	})
	c.upG = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podkit_health_up", Help: "1 if the last health check passed.",
	})
	c.lagG = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podkit_health_replication_lag_seconds", Help: "Replication lag measured by the last check (0 on a primary; +Inf when replication is not running; NaN when the replication status could not be read).",
	})
	return c, nil
}

func (c *checker) register(reg prometheus.Registerer) error {
	for _, m := range []prometheus.Collector{c.duration, c.failuresC, c.checks, c.lastSuccG, c.upG, c.lagG} {
		if err := reg.Register(m); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) close() { c.p.close() }

// loop checks at once, then every period, until ctx ends.
func (c *checker) loop(ctx context.Context) {
	t := time.NewTicker(c.cfg.Period)
	defer t.Stop()
	for {
		c.runOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runOnce runs one check and records its result.
func (c *checker) runOnce(parent context.Context) Result {
	start := c.now()
	c.mu.Lock()
	c.lastAttempt = start
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	r := Result{Time: start, OK: true}
	value, err := c.p.check(ctx)
	r.Latency = c.now().Sub(start).Seconds()
	r.Value = clip(value)
	switch {
	case err != nil:
		r.OK, r.Reason, r.Error = false, classify(ctx, err), err.Error()
	case !c.expect.match(value):
		r.OK, r.Reason = false, ReasonExpect
		r.Error = fmt.Sprintf("answer %q does not match --expect %s", clip(value), c.expect)
	case c.cfg.MaxLatency > 0 && r.Latency > c.cfg.MaxLatency.Seconds():
		r.OK, r.Reason = false, ReasonLatency
		r.Error = fmt.Sprintf("answer took %.3fs, more than --max-latency %s", r.Latency, c.cfg.MaxLatency)
	}
	if r.OK {
		replica, lag, err := c.p.lag(ctx)
		r.Replica = replica
		switch {
		case errors.Is(err, errNotReplicating):
			r.LagError = err.Error()
		case err != nil:
			r.LagReason = classify(ctx, err)
			r.LagError = err.Error()
			if r.LagReason == ReasonPermission {
				r.LagError += "; " + c.grantHint()
			}
		default:
			r.Lag = &lag
		}
	}
	if parent.Err() != nil {
		return r // stopping: not a result
	}
	c.record(r)
	return r
}

func (c *checker) record(r Result) {
	c.duration.Observe(r.Latency)
	c.checks.Inc()
	if !r.OK {
		c.failuresC.WithLabelValues(r.Reason).Inc()
	}
	c.upG.Set(b2f(r.OK))
	switch {
	case r.Lag != nil:
		c.lagG.Set(*r.Lag)
		if c.cfg.MaxLag > 0 && *r.Lag > c.cfg.MaxLag.Seconds() {
			c.failuresC.WithLabelValues(ReasonLag).Inc()
		}
	case r.LagReason != "":
		c.lagG.Set(math.NaN())
		c.failuresC.WithLabelValues(r.LagReason).Inc()
	case r.LagError != "":
		c.lagG.Set(math.Inf(1))
	}
	c.mu.Lock()
	prev, ran := c.last, c.ran
	c.last, c.ran = r, true
	if r.OK {
		c.lastSuccess = r.Time
		if c.firstSuccess.IsZero() {
			c.firstSuccess = r.Time
		}
		c.failures = 0
	} else {
		c.failures++
	}
	c.history = append(c.history, r)
	if len(c.history) > historyLen {
		c.history = c.history[len(c.history)-historyLen:]
	}
	c.mu.Unlock()
	if r.OK {
		c.lastSuccG.Set(float64(r.Time.UnixNano()) / 1e9)
	}
	switch {
	case r.OK && (!ran || !prev.OK):
		c.log.Info("health check passing", "target", c.targetName, "latency_seconds", r.Latency)
	case !r.OK && (!ran || prev.OK || prev.Reason != r.Reason):
		c.log.Warn("health check failing", "target", c.targetName, "reason", r.Reason, "error", r.Error)
	case !r.OK:
		c.log.Debug("health check still failing", "target", c.targetName, "reason", r.Reason, "error", r.Error)
	}
	// The replication status is read after a passing check; a failure to
	// read it is said once, not hidden in the JSON.
	if r.OK {
		prevReason := ""
		if ran && prev.OK {
			prevReason = prev.LagReason
		}
		switch {
		case r.LagReason != "" && r.LagReason != prevReason:
			c.log.Warn("replication status unreadable", "target", c.targetName, "reason", r.LagReason, "error", r.LagError)
		case r.LagReason == "" && prevReason != "":
			c.log.Info("replication status readable", "target", c.targetName)
		}
	}
}

// grantHint says which privilege reading the replication status needs.
func (c *checker) grantHint() string {
	switch kind, _ := c.cfg.kind(); kind {
	case dbwire.MySQL:
		return "grant the account SLAVE MONITOR (MariaDB 10.5.9 and later) or REPLICATION CLIENT (MySQL, older MariaDB) ON *.*"
	case dbwire.Postgres:
		return "grant the account EXECUTE on pg_is_in_recovery() and the pg_last_wal_*() functions (every role has it unless revoked)"
	}
	return "allow INFO in the account's ACL (+info)"
}

// classify names why a check failed.
func classify(ctx context.Context, err error) string {
	var re resp.Error
	var ne net.Error
	var oe *net.OpError
	msg := err.Error()
	switch {
	case dbwire.IsAuthFailed(err):
		return ReasonAuth
	case dbwire.IsPermissionDenied(err):
		return ReasonPermission
	case authRE.MatchString(msg):
		return ReasonAuth
	case errors.As(err, &re):
		return ReasonQuery
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.As(err, &oe) && oe.Op == "dial", connectRE.MatchString(msg):
		return ReasonConnect
	}
	return ReasonQuery
}

var (
	authRE    = regexp.MustCompile(`(?i)(NOAUTH|WRONGPASS|invalid password|password authentication failed|authentication failed)`)
	connectRE = regexp.MustCompile(`(?i)(connection refused|no such host|failed to connect|connect: |broken pipe|connection reset|EOF|bad connection|invalid connection|server closed|shutting down|terminating connection|starting up)`)
)

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// state is a consistent snapshot for the handlers.
type state struct {
	last                                   Result
	ran                                    bool
	lastAttempt, lastSuccess, firstSuccess time.Time
	failures                               int
	history                                []Result
}

func (c *checker) snapshot() state {
	c.mu.Lock()
	defer c.mu.Unlock()
	return state{c.last, c.ran, c.lastAttempt, c.lastSuccess, c.firstSuccess, c.failures, append([]Result(nil), c.history...)}
}

// fresh is how old the last success may be for /readyz: one period plus
// the time a check may take.
func (c *checker) fresh() time.Duration { return c.cfg.Period + c.cfg.Timeout }

// parseLag parses ?lag=: a duration (10s, 500ms) or a number of seconds.
func parseLag(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && !math.IsInf(f, 0) {
		return time.Duration(f * float64(time.Second)), nil
	}
	return 0, fmt.Errorf("lag=%q is not a duration such as 10s or a number of seconds", s)
}

// roleProbe is the one role of the --listen API: it may read the health
// endpoints.
const roleProbe = "probe"

// apiAccess declares who may call what on --listen, beside the routes
// handler serves: every path needs the probe role, the index on / too
// (it names the database). With no tokens and no --client-ca, every
// caller has the role: the kubelet presents no credential.
func apiAccess() container.Access {
	return container.Access{
		Component: "health",
		Subsystem: "health",
		Roles:     []container.Role{{Name: roleProbe, Help: "read /livez, /readyz, /startupz and the index"}},
		Need:      func(*http.Request) []string { return []string{roleProbe} },
	}
}

// handler serves the health endpoints. It checks no credentials: Run
// serves it behind the API's security (apiAccess).
func (c *checker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", c.serveLivez)
	mux.HandleFunc("GET /readyz", c.serveReadyz)
	mux.HandleFunc("GET /startupz", c.serveStartupz)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"target":    c.targetName,
			"endpoints": []string{"/livez", "/readyz", "/readyz?lag=10s", "/startupz", "?verbose"},
		})
	})
	return mux
}

// body is what every endpoint answers.
func (c *checker) body(r *http.Request, st state, status string, why string, extra map[string]any) map[string]any {
	b := map[string]any{
		"status": status,
		"target": c.targetName,
	}
	if why != "" {
		b["reason"] = why
	}
	if st.ran {
		b["last"] = st.last
	}
	if !st.lastSuccess.IsZero() {
		b["last_success"] = st.lastSuccess
	}
	for k, v := range extra {
		b[k] = v
	}
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		b["config"] = map[string]any{
			"query":       c.cfg.Query,
			"expect":      c.cfg.Expect,
			"period":      c.cfg.Period.String(),
			"timeout":     c.cfg.Timeout.String(),
			"max_latency": c.cfg.MaxLatency.String(),
			"max_lag":     c.cfg.MaxLag.String(),
		}
		b["consecutive_failures"] = st.failures
		if !st.firstSuccess.IsZero() {
			b["first_success"] = st.firstSuccess
		}
		if !st.lastAttempt.IsZero() {
			b["last_attempt"] = st.lastAttempt
		}
		b["history"] = st.history
	}
	return b
}

func (c *checker) serveLivez(w http.ResponseWriter, r *http.Request) {
	st := c.snapshot()
	// The checker is alive if it started a check recently; a stuck checker
	// is the adapter failing, not the database.
	if !st.lastAttempt.IsZero() && c.now().Sub(st.lastAttempt) > 2*c.fresh()+5*time.Second {
		writeJSON(w, http.StatusServiceUnavailable, c.body(r, st, "fail", "the checker has not run since "+st.lastAttempt.Format(time.RFC3339), nil))
		return
	}
	writeJSON(w, http.StatusOK, c.body(r, st, "ok", "", nil))
}

func (c *checker) serveStartupz(w http.ResponseWriter, r *http.Request) {
	st := c.snapshot()
	if st.firstSuccess.IsZero() {
		why := "no check has passed yet"
		if st.ran {
			why += ": " + st.last.Error
		}
		writeJSON(w, http.StatusServiceUnavailable, c.body(r, st, "starting", why, nil))
		return
	}
	writeJSON(w, http.StatusOK, c.body(r, st, "ok", "", nil))
}

func (c *checker) serveReadyz(w http.ResponseWriter, r *http.Request) {
	st := c.snapshot()
	maxLag := c.cfg.MaxLag
	if s := r.URL.Query().Get("lag"); s != "" {
		d, err := parseLag(s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"status": "error", "reason": err.Error()})
			return
		}
		maxLag = d
	}
	extra := map[string]any{}
	if maxLag > 0 {
		extra["max_lag_seconds"] = maxLag.Seconds()
	}
	fail := func(why string) {
		writeJSON(w, http.StatusServiceUnavailable, c.body(r, st, "fail", why, extra))
	}
	switch {
	case !st.ran:
		fail("no check has run yet")
		return
	case !st.last.OK:
		fail(st.last.Reason + ": " + st.last.Error)
		return
	case c.now().Sub(st.lastSuccess) > c.fresh():
		fail(fmt.Sprintf("the last passing check is %s old, more than --period + --timeout (%s)",
			c.now().Sub(st.lastSuccess).Round(time.Millisecond), c.fresh()))
		return
	}
	if maxLag > 0 && (st.last.Replica || st.last.Lag == nil) {
		switch {
		case st.last.Lag == nil && st.last.LagReason != "":
			fail("replication lag unknown: " + st.last.LagReason + ": " + st.last.LagError)
			return
		case st.last.Lag == nil:
			fail("replication lag unknown: " + st.last.LagError)
			return
		case *st.last.Lag > maxLag.Seconds():
			fail(fmt.Sprintf("replication lag %s is more than %s", fmtSeconds(*st.last.Lag), maxLag))
			return
		}
	}
	if st.last.LagReason != "" {
		extra["warning"] = "replication status unreadable: " + st.last.LagReason + ": " + st.last.LagError
	}
	writeJSON(w, http.StatusOK, c.body(r, st, "ok", "", extra))
}

func fmtSeconds(f float64) string {
	if math.IsInf(f, 1) {
		return "unbounded (replication stopped)"
	}
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond).String()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(w, "{\"status\":\"error\",\"reason\":%q}\n", err.Error())
	}
}
