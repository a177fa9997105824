package container

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check is a named dependency check, run in the background and cached.
type Check struct {
	Name    string
	Period  time.Duration // default 10s
	Timeout time.Duration // default Period, at most 5s
	// Ready makes a failing check turn /readyz to 503 (otherwise it only
	// shows on /healthz).
	Ready bool
	Func  func(ctx context.Context) error
}

// CheckResult is the cached outcome of a check's last run.
type CheckResult struct {
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	LastRun  time.Time `json:"last_run"`
	Duration float64   `json:"duration_seconds"`
	Ready    bool      `json:"affects_readiness"`
	ran      bool
}

type checker struct {
	h       *Host
	mu      sync.Mutex
	checks  []Check
	results map[string]CheckResult
	ctx     context.Context // set by start
	ok      *prometheus.GaugeVec
	dur     *prometheus.GaugeVec
}

func newChecker(h *Host) *checker {
	c := &checker{
		h:       h,
		results: map[string]CheckResult{},
		ok: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podkit_check_ok", Help: "1 if the named dependency check passed on its last run.",
		}, []string{"check"}),
		dur: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podkit_check_duration_seconds", Help: "How long the named check's last run took.",
		}, []string{"check"}),
	}
	h.reg.MustRegister(c.ok, c.dur)
	return c
}

func (c *checker) add(ch Check) {
	if ch.Period <= 0 {
		ch.Period = 10 * time.Second
	}
	if ch.Timeout <= 0 {
		ch.Timeout = min(ch.Period, 5*time.Second)
	}
	c.mu.Lock()
	c.checks = append(c.checks, ch)
	c.results[ch.Name] = CheckResult{Ready: ch.Ready, Error: "not run yet"}
	ctx := c.ctx
	c.mu.Unlock()
	c.ok.WithLabelValues(ch.Name).Set(0)
	if ctx != nil {
		go c.loop(ctx, ch)
	}
	c.h.recompute()
}

func (c *checker) start(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	checks := append([]Check(nil), c.checks...)
	c.mu.Unlock()
	for _, ch := range checks {
		go c.loop(ctx, ch)
	}
}

func (c *checker) loop(ctx context.Context, ch Check) {
	for {
		c.runOnce(ctx, ch)
		select {
		case <-ctx.Done():
			return
		case <-time.After(ch.Period):
		}
	}
}

func (c *checker) runOnce(ctx context.Context, ch Check) {
	cctx, cancel := context.WithTimeout(ctx, ch.Timeout)
	defer cancel()
	start := time.Now()
	err := safeCall(cctx, ch.Func)
	if ctx.Err() != nil {
		return
	}
	res := CheckResult{OK: err == nil, LastRun: start, Duration: time.Since(start).Seconds(), Ready: ch.Ready, ran: true}
	if err != nil {
		res.Error = err.Error()
	}
	c.mu.Lock()
	prev := c.results[ch.Name]
	c.results[ch.Name] = res
	c.mu.Unlock()
	c.ok.WithLabelValues(ch.Name).Set(b2f(res.OK))
	c.dur.WithLabelValues(ch.Name).Set(res.Duration)
	if prev.ran && prev.OK != res.OK || !prev.ran && !res.OK {
		if res.OK {
			c.h.log.Info("check passing", "check", ch.Name)
		} else {
			c.h.log.Warn("check failing", "check", ch.Name, "error", res.Error)
		}
	}
	c.h.recompute()
}

func safeCall(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return f(ctx)
}

// failingReady returns the name of a failing readiness check, if any.
func (c *checker) failingReady() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.results))
	for n := range c.results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if r := c.results[n]; r.Ready && !r.OK {
			return n, false
		}
	}
	return "", true
}

// snapshot returns the cached results and whether all pass.
func (c *checker) snapshot() (map[string]CheckResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]CheckResult, len(c.results))
	all := true
	for n, r := range c.results {
		out[n] = r
		all = all && r.OK
	}
	return out, all
}
