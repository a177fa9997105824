package upstream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// pushed is a discovery source the test drives by calling Watch.Update
// itself, for sets no real source can express briefly (priorities, several
// zones, sets that change step by step). The file: source is used where a
// real source is what the test is about.
type pushed struct{}

func (pushed) Run(ctx context.Context, r discovery.Receiver) error { <-ctx.Done(); return nil }
func (pushed) String() string                                      { return "pushed:test" }
func (pushed) Kind() string                                        { return "pushed" }

func pushWatch(t *testing.T, eps ...discovery.Endpoint) *discovery.Watch {
	t.Helper()
	w := discovery.StartWatch(t.Context(), pushed{}, discovery.WatchOptions{Name: "test", Logger: quiet()})
	w.Update(discovery.Set{Endpoints: eps})
	return w
}

func staticWatch(t *testing.T, src string) *discovery.Watch {
	t.Helper()
	s, err := discovery.Parse(src, discovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := discovery.StartWatch(t.Context(), s, discovery.WatchOptions{Name: "test", Logger: quiet()})
	if err := w.WaitSynced(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

// ep is a ready endpoint at 127.0.0.1:port.
func ep(port, weight, priority int, zone string) discovery.Endpoint {
	return discovery.Endpoint{Host: "127.0.0.1", Port: port, Weight: weight, Priority: priority, Zone: zone, Ready: true, Serving: true}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newPool(t *testing.T, cfg Config, w *discovery.Watch) *Pool {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	p, err := New(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// run starts p.Run and waits for it to return at the end of the test.
func run(t *testing.T, p *Pool) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// picks acquires and releases n times, counting the endpoints picked.
func picks(t *testing.T, p *Pool, n int, h func(i int) Hint) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		hint := Hint{}
		if h != nil {
			hint = h(i)
		}
		e, err := p.Acquire(hint)
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		got[e.Addr()]++
		p.Release(e, hint.Kind, OK)
	}
	return got
}

func status(p *Pool, addr string) EndpointStatus {
	for _, s := range p.Snapshot() {
		if s.Address == addr {
			return s
		}
	}
	return EndpointStatus{}
}

// gather returns the value of the series of name whose labels include
// want, and whether it exists.
func gather(t *testing.T, m *Metrics, name string, want map[string]string) (float64, bool) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range m.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// flaky is a Checker that fails the endpoints the test names and passes
// the others; it stands for endpoints going down and up where the test is
// about selection, not about how a check talks to an endpoint.
type flaky struct {
	mu    sync.Mutex
	down  map[string]bool
	calls map[string]int
}

func newFlaky() *flaky { return &flaky{down: map[string]bool{}, calls: map[string]int{}} }

func (f *flaky) checks(port int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[addr(port)]
}

func (f *flaky) set(ports ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = map[string]bool{}
	for _, p := range ports {
		f.down[addr(p)] = true
	}
}

func (f *flaky) Check(ctx context.Context, a string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[a]++
	if f.down[a] {
		return fmt.Errorf("%s is down", a)
	}
	return nil
}

func testWaitUsable(t *testing.T, p *Pool, n int) {
	t.Helper()
	testdeps.WaitFor(t, fmt.Sprintf("%d usable endpoints", n), func() bool { return p.Usable() == n })
}
