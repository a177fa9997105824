// Package upstream is a pool of endpoints fed by a discovery.Watch: the
// part of broker (and of split and scatter) that chooses, for each new
// connection or request, which endpoint takes it.
//
// # Selection
//
// Acquire walks the same steps every time, on an immutable snapshot that the
// pool rebuilds whenever something changes (a discovery update, a health
// transition, an ejection or a return), so that a pick takes no lock and
// allocates nothing:
//
//  1. the endpoints discovery calls routable (discovery.Set.Routable: the
//     ready ones, or the serving-but-terminating ones when none is ready);
//  2. minus those that failed their active health checks and those ejected
//     by outlier detection;
//  3. of what is left, the group with the lowest Priority;
//  4. within it, the endpoints in the pod's own Zone if any is left there,
//     otherwise the whole group;
//  5. the Policy picks one: smooth weighted round robin (nginx's), least
//     request (in-flight/weight, ties in weighted round robin order), power
//     of two weighted random choices, or a consistent hash ring (256 points
//     per unit of weight, at most 131072 in all; keys hashed with XXH64).
//
// An endpoint discovery no longer lists is never picked again; Releases of
// connections still open on it are harmless. State (health, ejections,
// counters) is kept by address across discovery updates.
//
// # Health checks
//
// With CheckConfig.Checker set, Run checks every discovered endpoint in its
// own goroutine every Interval (±10% jitter), each check bounded by Timeout.
// A new endpoint starts healthy, like a server in HAProxy, so that a fresh
// pod takes traffic at once; its first check runs at once. Fall failed checks
// in a row make a healthy endpoint unhealthy, Rise passed checks in a row
// make an unhealthy one healthy again. Each transition is logged once and
// counted. Without a Checker endpoints are "unchecked" and count as healthy.
//
// # Outlier ejection
//
// With OutlierConfig.ConsecutiveFailures set, Release counts connect
// failures, 5xx answers and timeouts in a row per endpoint (any OK resets
// the run). When the run reaches ConsecutiveFailures the endpoint is ejected
// for n×BaseEjection (n: its ejections so far, this one included, capped at
// MaxEjection) and comes back by itself afterwards. n starts again from 1
// when an endpoint has gone MaxEjection without being ejected. At most
// MaxPercent of the routable endpoints are ejected at once, rounding down,
// except that when more than one endpoint is routable one of them may always
// be ejected; a lone endpoint is therefore never ejected (unless MaxPercent
// is 100): ejecting it would only turn its errors into "no endpoint" errors,
// and active health checks still take it out if it is really down.
//
// # Limits and retries
//
// Limits are checked in Acquire (MaxConnections for Conn, MaxRequests for
// Request) and StartDial (MaxPending). A pool over a limit answers at once
// with an error wrapping ErrOverloaded; it never queues. RetryAllowed
// implements a retry budget over a sliding window of about ten seconds.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/discovery"
	"github.com/prometheus/client_golang/prometheus"
)

// Policy is how a pool picks among its candidate endpoints.
type Policy string

// The policies.
const (
	// RoundRobin is smooth weighted round robin, as in nginx: over any run of
	// picks each endpoint's share follows its weight, interleaved.
	RoundRobin Policy = "round-robin"
	// LeastRequest picks the endpoint with the fewest in-flight
	// connections or requests relative to its weight (in-flight/weight);
	// ties go in weighted round robin order.
	LeastRequest Policy = "least-request"
	// P2C draws two endpoints at random, in proportion to their weights, and
	// takes the one with fewer in-flight per weight.
	P2C Policy = "p2c"
	// RingHash places every endpoint on a consistent hash ring (more points
	// for more weight) and picks the one at Hint.Key; when that endpoint is
	// not usable, the next usable one along the ring, so the keys of the
	// other endpoints never move. Without a key it acts as RoundRobin.
	RingHash Policy = "ring-hash"
)

// Policies lists the policies in the order docs list them.
var Policies = []Policy{RoundRobin, LeastRequest, P2C, RingHash}

// ParsePolicy reads a policy name; "" is RoundRobin.
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return RoundRobin, nil
	}
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = string(p)
	}
	return "", fmt.Errorf("unknown balancing policy %q (want one of %s)", s, strings.Join(names, ", "))
}

// Defaults of Config.
const (
	DefaultInterval     = 5 * time.Second
	DefaultTimeout      = 2 * time.Second
	DefaultRise         = 2
	DefaultFall         = 3
	DefaultBaseEjection = 30 * time.Second
	DefaultMaxEjection  = 300 * time.Second
	DefaultMaxPercent   = 50
	DefaultRetryBudget  = 0.2
	DefaultMinRetries   = 3
	// RetryWindow is the period over which RetryAllowed compares retries
	// with requests.
	RetryWindow = 10 * time.Second
)

// Config configures a Pool. Zero values take the defaults named on each
// field.
type Config struct {
	// Name is the upstream's name: the "upstream" label of metrics and
	// logs ("" means the Watch's name).
	Name string
	// Policy picks among the candidates (default RoundRobin).
	Policy Policy
	// Zone is the pod's own zone; "" means no preference.
	Zone string
	// Check configures active health checks; a nil Checker means none.
	Check CheckConfig
	// Outlier configures passive ejection; ConsecutiveFailures 0 means off.
	Outlier OutlierConfig
	// Limits are the circuit breakers; 0 means unlimited.
	Limits Limits
	// RetryBudget is the most retries RetryAllowed grants, as a fraction
	// of the requests (Acquires) in the last RetryWindow (default 0.2; a
	// negative value grants only MinRetries).
	RetryBudget float64
	// MinRetries retries per RetryWindow are always granted, so that a
	// quiet upstream can still retry (default 3; negative means none).
	MinRetries int
	// Logger gets health transitions and ejections (nil: slog.Default()).
	Logger *slog.Logger
	// Metrics, if set, is updated by the pool; several pools may share it.
	Metrics *Metrics
}

// CheckConfig configures active health checks.
type CheckConfig struct {
	// Checker checks one endpoint; nil means no active checks.
	Checker Checker
	// Interval between checks of one endpoint (default 5s, jittered ±10%).
	Interval time.Duration
	// Timeout bounds one check (default 2s).
	Timeout time.Duration
	// Rise passed checks in a row make an unhealthy endpoint healthy
	// (default 2); Fall failed checks in a row make a healthy one unhealthy
	// (default 3). A new endpoint starts healthy.
	Rise, Fall int
}

// OutlierConfig configures outlier ejection (see the package doc).
type OutlierConfig struct {
	// ConsecutiveFailures connect failures, 5xx answers or timeouts in a
	// row eject an endpoint; 0 turns ejection off (broker's default is 5).
	ConsecutiveFailures int
	// BaseEjection is how long a first ejection lasts (default 30s); the
	// n-th lasts n×BaseEjection, at most MaxEjection (default 300s).
	BaseEjection time.Duration
	MaxEjection  time.Duration
	// MaxPercent of the routable endpoints may be ejected at once
	// (default 50; see the package doc for small pools).
	MaxPercent int
}

// Limits are an upstream's circuit breakers; 0 means unlimited.
type Limits struct {
	// MaxConnections bounds the Conn acquisitions open at once.
	MaxConnections int
	// MaxRequests bounds the Request acquisitions in flight at once.
	MaxRequests int
	// MaxPending bounds the dials in progress (StartDial).
	MaxPending int
}

// Validate checks the configuration, joining every error found.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParsePolicy(string(c.Policy)); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"health check interval", c.Check.Interval},
		{"health check timeout", c.Check.Timeout},
		{"outlier base ejection", c.Outlier.BaseEjection},
		{"outlier max ejection", c.Outlier.MaxEjection},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"health check rise", c.Check.Rise},
		{"health check fall", c.Check.Fall},
		{"outlier consecutive failures", c.Outlier.ConsecutiveFailures},
		{"max connections", c.Limits.MaxConnections},
		{"max requests", c.Limits.MaxRequests},
		{"max pending", c.Limits.MaxPending},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", n.name, n.v))
		}
	}
	if c.Outlier.MaxPercent < 0 || c.Outlier.MaxPercent > 100 {
		errs = append(errs, fmt.Errorf("outlier max percent %d is not within 0-100", c.Outlier.MaxPercent))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Policy == "" {
		c.Policy = RoundRobin
	}
	if c.Check.Interval == 0 {
		c.Check.Interval = DefaultInterval
	}
	if c.Check.Timeout == 0 {
		c.Check.Timeout = DefaultTimeout
	}
	if c.Check.Rise == 0 {
		c.Check.Rise = DefaultRise
	}
	if c.Check.Fall == 0 {
		c.Check.Fall = DefaultFall
	}
	if c.Outlier.BaseEjection == 0 {
		c.Outlier.BaseEjection = DefaultBaseEjection
	}
	if c.Outlier.MaxEjection == 0 {
		c.Outlier.MaxEjection = DefaultMaxEjection
	}
	if c.Outlier.MaxEjection < c.Outlier.BaseEjection {
		c.Outlier.MaxEjection = c.Outlier.BaseEjection
	}
	if c.Outlier.MaxPercent == 0 {
		c.Outlier.MaxPercent = DefaultMaxPercent
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = DefaultRetryBudget
	}
	if c.MinRetries == 0 {
		c.MinRetries = DefaultMinRetries
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ErrNoEndpoint is wrapped by Acquire's error when no endpoint is usable;
// the error names the upstream and why.
var ErrNoEndpoint = errors.New("no usable endpoint")

// ErrOverloaded is wrapped by Acquire's and StartDial's errors when a limit
// is reached; the error names the upstream and the limit.
var ErrOverloaded = errors.New("upstream limit reached")

// Kind is what an acquisition is for, and which limit it counts against.
type Kind int

// The kinds.
const (
	// Conn is a proxied TCP connection (Limits.MaxConnections).
	Conn Kind = iota
	// Request is an HTTP request (Limits.MaxRequests).
	Request
)

func (k Kind) String() string {
	switch k {
	case Conn:
		return "conn"
	case Request:
		return "request"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Result is how an acquisition ended, for outlier detection.
type Result int

// The results. ConnectFailed, Status5xx and Timeout are failures; OK ends a
// run of failures; Reset and ClientGone count neither way.
const (
	OK            Result = iota // the endpoint answered
	ConnectFailed               // the dial failed
	Reset                       // the connection broke before any response byte
	Status5xx                   // an HTTP 5xx answer
	Timeout                     // the endpoint did not answer in time
	ClientGone                  // the client left; says nothing of the endpoint
)

func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case ConnectFailed:
		return "connect_failed"
	case Reset:
		return "reset"
	case Status5xx:
		return "5xx"
	case Timeout:
		return "timeout"
	case ClientGone:
		return "client_gone"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

func (r Result) failure() bool { return r == ConnectFailed || r == Status5xx || r == Timeout }

// Hint tells Acquire about the connection or request being placed.
type Hint struct {
	// Key is the affinity key for RingHash (HashKey of a client address or
	// a header); used only when HasKey.
	Key    uint64
	HasKey bool
	// Tried are the endpoints already tried for this request or connection:
	// Acquire picks another usable endpoint while one is left (in the same
	// group first, then any usable one), and a tried one only when every
	// usable endpoint has been tried: a returned endpoint that is already in
	// Tried tells the caller that nothing new is left.
	Tried []*Endpoint
	// Kind is Conn or Request.
	Kind Kind
}

// Pool balances over the endpoints of one upstream. Its methods are safe for
// concurrent use.
type Pool struct {
	cfg  Config
	name string
	log  *slog.Logger
	w    *discovery.Watch
	m    *Metrics

	snap     atomic.Pointer[snapshot]
	rr       atomic.Uint64
	conns    atomic.Int64
	reqs     atomic.Int64
	pending  atomic.Int64
	dialDone func()
	budget   window

	mNoEndpoint   prometheus.Counter
	mRetryAllowed prometheus.Counter
	mRetryDenied  prometheus.Counter

	mu      sync.Mutex
	eps     map[string]*Endpoint
	set     discovery.Set
	ring    *ring
	runCtx  context.Context // non-nil while Run runs: checks start with it
	checks  sync.WaitGroup
	closed  bool
	running bool
}

// New makes a pool over the endpoints w delivers. The pool takes w's
// current set at once; Run follows its changes and runs health checks.
func New(cfg Config, w *discovery.Watch) (*Pool, error) {
	if w == nil {
		return nil, errors.New("upstream: nil discovery watch")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", cfg.Name, err)
	}
	cfg = cfg.withDefaults()
	if cfg.Name == "" {
		cfg.Name = w.Name()
	}
	p := &Pool{
		cfg:  cfg,
		name: cfg.Name,
		log:  cfg.Logger.With("upstream", cfg.Name),
		w:    w,
		m:    cfg.Metrics,
		eps:  map[string]*Endpoint{},
	}
	p.dialDone = func() { p.pending.Add(-1) }
	if p.m != nil {
		p.mNoEndpoint = p.m.noEndpoint.WithLabelValues(p.name)
		p.mRetryAllowed = p.m.retries.WithLabelValues(p.name, "allowed")
		p.mRetryDenied = p.m.retries.WithLabelValues(p.name, "budget_exhausted")
		p.m.add(p)
	}
	p.mu.Lock()
	p.applyLocked(w.Current())
	p.mu.Unlock()
	return p, nil
}

// Name is the upstream's name.
func (p *Pool) Name() string { return p.name }

// Policy is the pool's balancing policy.
func (p *Pool) Policy() Policy { return p.cfg.Policy }

// Run follows the Watch's changes and runs the health checks until ctx
// ends. A pool whose Run has not started still balances over the set it
// was made with, with every endpoint in its initial state.
func (p *Pool) Run(ctx context.Context) {
	p.mu.Lock()
	if p.running || p.closed {
		p.mu.Unlock()
		return
	}
	p.running = true
	p.runCtx = ctx
	for _, e := range p.eps {
		p.startCheckLocked(e)
	}
	p.mu.Unlock()
	for {
		ch := p.w.Changed()
		set := p.w.Current()
		p.mu.Lock()
		if !p.closed && !p.set.Equal(set) {
			p.applyLocked(set)
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-ch:
			continue
		}
		break
	}
	p.mu.Lock()
	p.runCtx = nil
	p.running = false
	for _, e := range p.eps {
		p.stopCheckLocked(e)
	}
	p.mu.Unlock()
	p.checks.Wait()
}

// Close stops the pool's timers and drops its metric series (when no newer
// pool of the same name has taken them over). Call it when the pool is
// replaced or removed; Acquire keeps working on the last snapshot.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, e := range p.eps {
		p.stopCheckLocked(e)
		if e.ejectTimer != nil {
			e.ejectTimer.Stop()
		}
	}
	p.mu.Unlock()
	if p.m != nil {
		p.m.remove(p)
	}
}

// Acquire picks an endpoint and counts one in flight on it and on the pool.
// Exactly one Release must follow a successful Acquire. Errors wrap
// ErrNoEndpoint or ErrOverloaded.
func (p *Pool) Acquire(h Hint) (*Endpoint, error) {
	if err := p.admit(h.Kind); err != nil {
		return nil, err
	}
	s := p.snap.Load()
	e := s.pick(p, &h)
	if e == nil {
		p.unadmit(h.Kind)
		if p.mNoEndpoint != nil {
			p.mNoEndpoint.Inc()
		}
		return nil, s.err
	}
	e.inFlight.Add(1)
	e.picked.Add(1)
	p.budget.request()
	return e, nil
}

func (p *Pool) admit(k Kind) error {
	switch k {
	case Conn:
		if n := p.conns.Add(1); p.cfg.Limits.MaxConnections > 0 && n > int64(p.cfg.Limits.MaxConnections) {
			p.conns.Add(-1)
			return p.overflow("max_connections", p.cfg.Limits.MaxConnections)
		}
	case Request:
		if n := p.reqs.Add(1); p.cfg.Limits.MaxRequests > 0 && n > int64(p.cfg.Limits.MaxRequests) {
			p.reqs.Add(-1)
			return p.overflow("max_requests", p.cfg.Limits.MaxRequests)
		}
	}
	return nil
}

func (p *Pool) unadmit(k Kind) {
	switch k {
	case Conn:
		p.conns.Add(-1)
	case Request:
		p.reqs.Add(-1)
	}
}

func (p *Pool) overflow(limit string, n int) error {
	if p.m != nil {
		p.m.overflow.WithLabelValues(p.name, limit).Inc()
	}
	return fmt.Errorf("upstream %q: %s %d: %w", p.name, limit, n, ErrOverloaded)
}

// Release ends an acquisition of e with result r, which feeds outlier
// detection; k must be the Hint.Kind it was acquired with. Releasing an
// endpoint discovery has since removed is harmless.
func (p *Pool) Release(e *Endpoint, k Kind, r Result) {
	if e == nil {
		return
	}
	e.inFlight.Add(-1)
	p.unadmit(k)
	if p.cfg.Outlier.ConsecutiveFailures <= 0 {
		return
	}
	switch {
	case r == OK:
		if e.failures.Load() != 0 {
			e.failures.Store(0)
		}
	case r.failure():
		if n := e.failures.Add(1); n >= int64(p.cfg.Outlier.ConsecutiveFailures) && !e.ejected.Load() {
			p.eject(e, r, n)
		}
	}
}

// StartDial counts one dial in progress against Limits.MaxPending; call
// done, exactly once, when the dial has succeeded or failed. Over the limit
// it returns an error wrapping ErrOverloaded and no done to call.
func (p *Pool) StartDial(e *Endpoint) (done func(), err error) {
	if n := p.pending.Add(1); p.cfg.Limits.MaxPending > 0 && n > int64(p.cfg.Limits.MaxPending) {
		p.pending.Add(-1)
		return nil, p.overflow("max_pending", p.cfg.Limits.MaxPending)
	}
	return p.dialDone, nil
}

// RetryAllowed says whether one more retry fits the retry budget, and
// counts it when it does. A retry is granted while fewer than MinRetries
// retries were granted in the last RetryWindow, or while the retries granted
// in that window, this one included, stay within RetryBudget × the
// acquisitions in it. The window is ten one-second buckets, so it slides by
// the second.
func (p *Pool) RetryAllowed() bool {
	ok := p.budget.allowRetry(p.cfg.RetryBudget, p.cfg.MinRetries)
	if p.mRetryAllowed != nil {
		if ok {
			p.mRetryAllowed.Inc()
		} else {
			p.mRetryDenied.Inc()
		}
	}
	return ok
}

// Usable is how many endpoints Acquire may pick now (in any priority group
// or zone); readiness should fail while it is 0.
func (p *Pool) Usable() int { return len(p.snap.Load().usable) }

// Err is the error Acquire would return now for lack of an endpoint (nil
// when some endpoint is usable), for readiness checks that want to say why.
func (p *Pool) Err() error {
	s := p.snap.Load()
	if len(s.usable) > 0 {
		return nil
	}
	return s.err
}

// InFlight is the acquisitions of kind k open now.
func (p *Pool) InFlight(k Kind) int64 {
	if k == Conn {
		return p.conns.Load()
	}
	return p.reqs.Load()
}
