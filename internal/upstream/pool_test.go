package upstream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/testdeps"
)

// fail releases n failures on the endpoint at a, acquired by skipping the
// others.
func fail(t *testing.T, p *Pool, a string, n int, r Result) {
	t.Helper()
	for range n {
		var skip []*Endpoint
		for {
			e, err := p.Acquire(Hint{Tried: skip})
			if err != nil {
				t.Fatal(err)
			}
			if e.Addr() == a {
				p.Release(e, Conn, r)
				break
			}
			p.Release(e, Conn, ClientGone)
			if len(skip) > 100 {
				t.Fatalf("%s is never picked", a)
			}
			skip = append(skip, e)
		}
	}
}

func TestOutlierEjection(t *testing.T) {
	var logs logBuf
	m := NewMetrics("test")
	w := pushWatch(t, ep(1, 1, 0, ""), ep(2, 1, 0, ""), ep(3, 1, 0, ""), ep(4, 1, 0, ""))
	p := newPool(t, Config{Name: "o", Metrics: m, Logger: logs.logger(), Outlier: OutlierConfig{
		ConsecutiveFailures: 3, BaseEjection: 50 * time.Millisecond, MaxEjection: time.Hour,
	}}, w)

	// Failures interrupted by an OK, or results that say nothing of the
	// endpoint, do not eject.
	fail(t, p, addr(1), 2, ConnectFailed)
	fail(t, p, addr(1), 1, OK)
	fail(t, p, addr(1), 2, Status5xx)
	fail(t, p, addr(1), 5, ClientGone)
	fail(t, p, addr(1), 5, Reset)
	if st := status(p, addr(1)); st.Ejected || st.ConsecutiveFailures != 2 {
		t.Fatalf("ejected or miscounted without 3 failures in a row: %+v", st)
	}
	fail(t, p, addr(1), 1, Timeout)
	st := status(p, addr(1))
	if !st.Ejected || st.Ejections != 1 || st.EjectedUntil.IsZero() || st.Usable {
		t.Fatalf("not ejected after 3 failures in a row: %+v", st)
	}
	if p.Usable() != 3 {
		t.Errorf("Usable() = %d with one of 4 ejected", p.Usable())
	}
	// It comes back by itself.
	testdeps.WaitFor(t, "the ejected endpoint to return", func() bool { return !status(p, addr(1)).Ejected })
	if p.Usable() != 4 || status(p, addr(1)).ConsecutiveFailures != 0 {
		t.Errorf("after return: usable %d, %+v", p.Usable(), status(p, addr(1)))
	}
	// The second ejection lasts twice the first.
	before := time.Now()
	fail(t, p, addr(1), 3, ConnectFailed)
	after := time.Now()
	st = status(p, addr(1))
	if !st.Ejected || st.Ejections != 2 {
		t.Fatalf("second ejection: %+v", st)
	}
	if until := st.EjectedUntil; until.Before(before.Add(100*time.Millisecond)) || until.After(after.Add(100*time.Millisecond)) {
		t.Errorf("second ejection ends %v after it began, want 2×50ms", until.Sub(before))
	}
	testdeps.WaitFor(t, "the second return", func() bool { return !status(p, addr(1)).Ejected })
	if v, _ := gather(t, m, "podkit_test_endpoint_ejections_total", map[string]string{"upstream": "o", "endpoint": addr(1)}); v != 2 {
		t.Errorf("ejections_total = %v, want 2", v)
	}
	if n := logs.count("endpoint ejected"); n != 2 {
		t.Errorf("%d 'endpoint ejected' lines, want 2", n)
	}
	if n := logs.count("endpoint returned from ejection"); n != 2 {
		t.Errorf("%d return lines, want 2", n)
	}
}

func TestEjectionPeriod(t *testing.T) {
	c := Config{Outlier: OutlierConfig{BaseEjection: 30 * time.Second, MaxEjection: 100 * time.Second}}.withDefaults().Outlier
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: 60 * time.Second, 3: 90 * time.Second, 4: 100 * time.Second, 50: 100 * time.Second} {
		if got := c.period(n); got != want {
			t.Errorf("ejection %d lasts %v, want %v", n, got, want)
		}
	}
	d := Config{}.withDefaults().Outlier
	if d.period(1) != DefaultBaseEjection || d.period(100) != DefaultMaxEjection {
		t.Errorf("defaults: %v, %v", d.period(1), d.period(100))
	}
}

func TestOutlierMaxPercent(t *testing.T) {
	long := OutlierConfig{ConsecutiveFailures: 1, BaseEjection: time.Hour}
	for _, tc := range []struct {
		endpoints, percent, want int
	}{
		{4, 50, 2},
		{5, 50, 2},
		{4, 10, 1}, // one may always go when there are several
		{2, 10, 1},
		{1, 50, 0}, // a lone endpoint stays
		{1, 100, 1},
		{3, 100, 3},
	} {
		t.Run(fmt.Sprintf("%d endpoints %d%%", tc.endpoints, tc.percent), func(t *testing.T) {
			var eps []discovery.Endpoint
			for i := range tc.endpoints {
				eps = append(eps, ep(i+1, 1, 0, ""))
			}
			cfg := long
			cfg.MaxPercent = tc.percent
			p := newPool(t, Config{Outlier: cfg}, pushWatch(t, eps...))
			for i := range tc.endpoints {
				if p.Usable() == 0 {
					break
				}
				fail(t, p, addr(i+1), 1, ConnectFailed)
			}
			ejected := 0
			for _, st := range p.Snapshot() {
				if st.Ejected {
					ejected++
				}
			}
			if ejected != tc.want {
				t.Errorf("%d ejected, want %d", ejected, tc.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	m := NewMetrics("test")
	w := pushWatch(t, ep(1, 1, 0, ""), ep(2, 1, 0, ""))
	p := newPool(t, Config{Name: "lim", Metrics: m, Limits: Limits{MaxConnections: 2, MaxRequests: 3, MaxPending: 1}}, w)
	var conns []*Endpoint
	for range 2 {
		e, err := p.Acquire(Hint{Kind: Conn})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, e)
	}
	_, err := p.Acquire(Hint{Kind: Conn})
	if !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "max_connections 2") || !strings.Contains(err.Error(), `"lim"`) {
		t.Errorf("third connection: %v, want ErrOverloaded naming max_connections", err)
	}
	// Requests count separately.
	var reqs []*Endpoint
	for range 3 {
		e, err := p.Acquire(Hint{Kind: Request})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, e)
	}
	if _, err := p.Acquire(Hint{Kind: Request}); !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "max_requests 3") {
		t.Errorf("fourth request: %v", err)
	}
	if p.InFlight(Conn) != 2 || p.InFlight(Request) != 3 {
		t.Errorf("in flight: %d conns, %d requests", p.InFlight(Conn), p.InFlight(Request))
	}
	p.Release(conns[0], Conn, OK)
	e, err := p.Acquire(Hint{Kind: Conn})
	if err != nil {
		t.Errorf("after a release: %v", err)
	}
	p.Release(e, Conn, OK)
	p.Release(conns[1], Conn, OK)
	for _, e := range reqs {
		p.Release(e, Request, OK)
	}
	// Pending dials.
	done, err := p.StartDial(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.StartDial(e); !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "max_pending 1") {
		t.Errorf("second dial: %v", err)
	}
	done()
	done, err = p.StartDial(e)
	if err != nil {
		t.Errorf("dial after done: %v", err)
	} else {
		done()
	}
	for limit, want := range map[string]float64{"max_connections": 1, "max_requests": 1, "max_pending": 1} {
		if v, _ := gather(t, m, "podkit_test_upstream_overflow_total", map[string]string{"upstream": "lim", "limit": limit}); v != want {
			t.Errorf("overflow_total{limit=%q} = %v, want %v", limit, v, want)
		}
	}
	if p.InFlight(Conn) != 0 || p.InFlight(Request) != 0 || status(p, addr(1)).InFlight != 0 {
		t.Errorf("counts left after every release: %d %d %+v", p.InFlight(Conn), p.InFlight(Request), status(p, addr(1)))
	}
	// No endpoint: the limit slot is given back.
	p2 := newPool(t, Config{Limits: Limits{MaxConnections: 1}}, pushWatch(t))
	for range 3 {
		if _, err := p2.Acquire(Hint{}); !errors.Is(err, ErrNoEndpoint) {
			t.Errorf("empty pool: %v", err)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	m := NewMetrics("test")
	p := newPool(t, Config{Name: "r", Metrics: m, RetryBudget: 0.2, MinRetries: 3}, pushWatch(t, ep(1, 1, 0, "")))
	// With no traffic, MinRetries retries.
	for i := range 3 {
		if !p.RetryAllowed() {
			t.Fatalf("retry %d refused within MinRetries", i+1)
		}
	}
	if p.RetryAllowed() {
		t.Fatal("fourth retry allowed with no requests")
	}
	// 100 requests: retries up to 20 in the window.
	picks(t, p, 100, nil)
	granted := 0
	for range 40 {
		if p.RetryAllowed() {
			granted++
		}
	}
	if granted != 17 { // 20 in all, 3 already granted
		t.Errorf("%d retries granted after 100 requests and 3 retries, want 17", granted)
	}
	if v, _ := gather(t, m, "podkit_test_upstream_retries_total", map[string]string{"upstream": "r", "result": "allowed"}); v != 20 {
		t.Errorf("retries allowed = %v, want 20", v)
	}
	if v, _ := gather(t, m, "podkit_test_upstream_retries_total", map[string]string{"upstream": "r", "result": "budget_exhausted"}); v != 24 {
		t.Errorf("retries refused = %v, want 24", v)
	}
	// No budget: MinRetries only.
	p2 := newPool(t, Config{RetryBudget: -1, MinRetries: 1}, pushWatch(t, ep(1, 1, 0, "")))
	picks(t, p2, 100, nil)
	if !p2.RetryAllowed() || p2.RetryAllowed() {
		t.Error("budget -1 with MinRetries 1: want exactly one retry")
	}
}

func TestRetryWindowSlides(t *testing.T) {
	var w window
	now := int64(1000)
	b := w.at(now)
	b.requests.Add(10)
	b.retries.Add(2)
	if r, x := w.sums(now + 9); r != 10 || x != 2 {
		t.Errorf("9s later: %d requests %d retries, want 10 2", r, x)
	}
	if r, x := w.sums(now + 10); r != 0 || x != 0 {
		t.Errorf("10s later: %d requests %d retries, want none", r, x)
	}
	// A recycled bucket starts from zero.
	w.at(now + 10).requests.Add(1)
	if r, _ := w.sums(now + 10); r != 1 {
		t.Errorf("recycled bucket holds %d requests, want 1", r)
	}
}

func writeFile(t *testing.T, path string, addrs ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("endpoints:\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "  - address: %s\n", a)
	}
	testdeps.ReplaceFile(t, path, b.String())
}

func TestEndpointRemovedByDiscovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	writeFile(t, path, addr(1), addr(2), addr(3))
	src, err := discovery.Parse("file:"+path, discovery.Options{FilePoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := discovery.StartWatch(t.Context(), src, discovery.WatchOptions{Name: "f", Logger: quiet()})
	if err := w.WaitSynced(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics("test")
	chk := newFlaky()
	p := newPool(t, Config{Metrics: m, Policy: LeastRequest, Check: CheckConfig{Checker: chk, Interval: 20 * time.Millisecond, Fall: 1, Rise: 1},
		Outlier: OutlierConfig{ConsecutiveFailures: 1, BaseEjection: time.Hour}}, w)
	if p.Name() != "f" {
		t.Errorf("Name() = %q, want the watch's name", p.Name())
	}
	run(t, p)
	// Endpoint 2: unhealthy, with one connection held; then ejected-state
	// history on endpoint 3 must survive a refresh.
	var held *Endpoint
	for held == nil {
		e, err := p.Acquire(Hint{})
		if err != nil {
			t.Fatal(err)
		}
		if e.Addr() == addr(2) {
			held = e
		} else {
			p.Release(e, Conn, OK)
		}
	}
	chk.set(2)
	testWaitUsable(t, p, 2)
	fail(t, p, addr(3), 1, ConnectFailed)
	if !status(p, addr(3)).Ejected {
		t.Fatal("endpoint 3 not ejected")
	}
	if _, ok := gather(t, m, "podkit_test_endpoint_health_transitions_total", map[string]string{"endpoint": addr(2)}); !ok {
		t.Fatal("no transition series for endpoint 2")
	}

	writeFile(t, path, addr(1), addr(3), addr(4))
	testdeps.WaitFor(t, "endpoint 2 to leave and 4 to come", func() bool {
		s := p.Snapshot()
		return len(s) == 3 && s[2].Address == addr(4)
	})
	if !status(p, addr(3)).Ejected || status(p, addr(3)).Ejections != 1 {
		t.Errorf("endpoint 3 lost its ejection across the refresh: %+v", status(p, addr(3)))
	}
	// The new endpoint is checked; the removed one no longer (one check
	// may have been under way when it left).
	checks2 := chk.checks(2)
	n4 := chk.checks(4)
	testdeps.WaitFor(t, "checks of the new endpoint", func() bool { return chk.checks(4) >= n4+3 })
	if n := chk.checks(2); n > checks2+1 {
		t.Errorf("the removed endpoint was checked %d more times", n-checks2)
	}
	if n := picks(t, p, 200, nil)[addr(2)]; n != 0 {
		t.Errorf("removed endpoint picked %d times", n)
	}
	// Even when asked to skip everything else.
	e1 := p.snap.Load().cands[0]
	for range 20 {
		e, err := p.Acquire(Hint{Tried: []*Endpoint{e1}})
		if err != nil {
			t.Fatal(err)
		}
		if e.Addr() == addr(2) {
			t.Fatal("removed endpoint picked")
		}
		p.Release(e, Conn, OK)
	}
	p.Release(held, Conn, ConnectFailed) // harmless
	if p.InFlight(Conn) != 0 {
		t.Errorf("in flight %d after every release", p.InFlight(Conn))
	}
	for _, name := range []string{"podkit_test_endpoint_health_transitions_total", "podkit_test_endpoint_ejections_total", "podkit_test_endpoint_healthy", "podkit_test_endpoint_in_flight", "podkit_test_endpoint_ejected"} {
		if _, ok := gather(t, m, name, map[string]string{"endpoint": addr(2)}); ok {
			t.Errorf("%s still has a series for the removed endpoint", name)
		}
		if _, ok := gather(t, m, name, map[string]string{"endpoint": addr(4)}); !ok {
			t.Errorf("%s has no series for the new endpoint", name)
		}
	}
	// Close drops the pool's series.
	p.Close()
	if _, ok := gather(t, m, "podkit_test_endpoint_in_flight", map[string]string{"upstream": "f"}); ok {
		t.Error("series left after Close")
	}
	if _, ok := gather(t, m, "podkit_test_upstream_no_endpoint_total", map[string]string{"upstream": "f"}); ok {
		t.Error("counter series left after Close")
	}
}

func TestReplacedPoolKeepsSeries(t *testing.T) {
	m := NewMetrics("test")
	w := pushWatch(t, ep(1, 1, 0, ""))
	old := newPool(t, Config{Name: "u", Metrics: m}, w)
	_ = newPool(t, Config{Name: "u", Metrics: m}, w)
	old.Close()
	if _, ok := gather(t, m, "podkit_test_endpoint_in_flight", map[string]string{"upstream": "u"}); !ok {
		t.Error("closing the replaced pool dropped the new pool's series")
	}
}

func TestAcquireConcurrent(t *testing.T) {
	for _, policy := range Policies {
		t.Run(string(policy), func(t *testing.T) {
			w := pushWatch(t, ep(1, 1, 0, "a"), ep(2, 2, 0, "b"), ep(3, 1, 1, "a"))
			chk := newFlaky()
			p := newPool(t, Config{Policy: policy, Zone: "a", Limits: Limits{MaxConnections: 6, MaxRequests: 6},
				Check:   CheckConfig{Checker: chk, Interval: 2 * time.Millisecond, Rise: 1, Fall: 1},
				Outlier: OutlierConfig{ConsecutiveFailures: 2, BaseEjection: time.Millisecond, MaxPercent: 100}}, w)
			run(t, p)
			// Discovery updates and health flips while 8 goroutines pick.
			stop := make(chan struct{})
			updated := make(chan struct{})
			go func() {
				defer close(updated)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					chk.set(i % 4)
					eps := []discovery.Endpoint{ep(1, 1, 0, "a"), ep(2, 2, 0, "b"), ep(3+i%2, 1, 1, "a")}
					w.Update(discovery.Set{Endpoints: eps})
					p.Snapshot()
					p.Usable()
					time.Sleep(time.Millisecond)
				}
			}()
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					var tried []*Endpoint
					for i := range 5000 {
						k := Kind(g % 2)
						e, err := p.Acquire(Hint{Kind: k, Key: uint64(i), HasKey: true, Tried: tried})
						if err != nil {
							if !errors.Is(err, ErrOverloaded) && !errors.Is(err, ErrNoEndpoint) {
								t.Errorf("Acquire: %v", err)
								return
							}
							continue
						}
						if done, err := p.StartDial(e); err == nil {
							done()
						}
						r := Result(rand.IntN(6))
						tried = append(tried[:0], e)
						p.RetryAllowed()
						p.Release(e, k, r)
					}
				})
			}
			wg.Wait()
			close(stop)
			<-updated
			if p.InFlight(Conn) != 0 || p.InFlight(Request) != 0 || p.pending.Load() != 0 {
				t.Errorf("counts left: conn %d request %d pending %d", p.InFlight(Conn), p.InFlight(Request), p.pending.Load())
			}
			for _, st := range p.Snapshot() {
				if st.InFlight != 0 {
					t.Errorf("%s: %d in flight after every release", st.Address, st.InFlight)
				}
			}
		})
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

func TestCloseStopsChecks(t *testing.T) {
	chk := newFlaky()
	p := newPool(t, Config{Check: CheckConfig{Checker: chk, Interval: 5 * time.Millisecond}}, pushWatch(t, ep(1, 1, 0, "")))
	run(t, p)
	testdeps.WaitFor(t, "a few checks", func() bool { return chk.checks(1) >= 3 })
	p.Close()
	n := chk.checks(1)
	// Acquire still works on the last snapshot.
	e, err := p.Acquire(Hint{})
	if err != nil {
		t.Fatal(err)
	}
	p.Release(e, Conn, OK)
	p.Close() // twice is fine
	chk2 := newFlaky()
	p2 := newPool(t, Config{Check: CheckConfig{Checker: chk2, Interval: 5 * time.Millisecond}}, pushWatch(t, ep(1, 1, 0, "")))
	run(t, p2)
	testdeps.WaitFor(t, "checks of a second pool", func() bool { return chk2.checks(1) >= 5 })
	if got := chk.checks(1); got > n+1 {
		t.Errorf("%d checks after Close", got-n)
	}
	// Run after Close returns at once.
	p.Run(t.Context())
}
