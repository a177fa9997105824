package discovery

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podkit/podkit/discovery/internal/dnsclient"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestParseDNS(t *testing.T) {
	good := []struct {
		in         string
		kind, name string
		port       int
	}{
		{"dns:redis:6379", "dns", "redis", 6379},
		{"dns:redis.default.svc.cluster.local.:6379", "dns", "redis.default.svc.cluster.local.", 6379},
		{"srv:_redis._tcp.example.com", "srv", "_redis._tcp.example.com", 0},
		{"srv:_http._tcp.web.service.consul.", "srv", "_http._tcp.web.service.consul.", 0},
	}
	for _, tt := range good {
		src, err := Parse(tt.in, Options{})
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		s := src.(*dnsSource)
		if s.Kind() != tt.kind || s.name != tt.name || s.port != tt.port || s.String() != tt.in {
			t.Errorf("Parse(%q) = %s %q port %d", tt.in, s.Kind(), s.name, s.port)
		}
	}
	bad := []struct{ in, want string }{
		{"dns:redis", "want NAME:PORT"},
		{"dns:redis:", "port \"\" is not a number"},
		{"dns:redis:0", "port \"0\" is not a number in 1..65535"},
		{"dns:redis:70000", "is not a number in 1..65535"},
		{"dns::6379", "the name is empty"},
		{"dns:bad..name:6379", "not a valid DNS name"},
		{"dns:-x:6379", "not a valid DNS name"},
		{"dns:10.0.0.1:6379", "is an IP address"},
		{"dns:[::1]:6379", "is an IP address"},
		{"dns:a b:1", "not a valid DNS name"},
		{"srv:_redis._tcp.example.com:6379", "the ports come from the SRV records"},
		{"srv:_redis._tcp..example.com", "not a valid DNS name"},
		{"srv:" + strings.Repeat("a", 64) + ".com", "not a valid DNS name"},
	}
	for _, tt := range []struct{ resolver, want string }{{"10.0.0.10", "10.0.0.10:53"}, {"::1", "[::1]:53"}, {"dns.internal:5353", "dns.internal:5353"}} {
		src, err := Parse("dns:redis:6379", Options{Resolver: tt.resolver})
		if err != nil || src.(*dnsSource).opts.Resolver != tt.want {
			t.Errorf("resolver %q: %v, want %q", tt.resolver, err, tt.want)
		}
	}
	for _, r := range []string{"dns.internal", "10.0.0.1:0", "a b:53"} {
		if _, err := Parse("srv:_a._tcp.b", Options{Resolver: r}); !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "DNS resolver") {
			t.Errorf("resolver %q: err = %v, want ErrBadSource naming the DNS resolver", r, err)
		}
	}
	for _, tt := range bad {
		_, err := Parse(tt.in, Options{})
		if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q): err = %v, want ErrBadSource containing %q", tt.in, err, tt.want)
		}
	}
}

// dnsOptions asks the test's dnsmasq, re-resolving on TTLs of one second:
// MaxRefresh is an hour, so a change seen within the test's wait came
// from the TTL, not from the upper bound.
func dnsOptions(d *testdeps.Dnsmasq) Options {
	return Options{Resolver: d.Addr(), MinRefresh: 100 * time.Millisecond, MaxRefresh: time.Hour}
}

func startDNSWatch(t *testing.T, src string, o Options) (*Watch, *Metrics) {
	t.Helper()
	s, err := Parse(src, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := NewMetrics("test")
	w := StartWatch(ctx, s, WatchOptions{Metrics: m})
	t.Cleanup(func() {
		cancel()
		<-w.Done()
	})
	return w, m
}

func hostPorts(s Set) []string {
	var out []string
	for _, e := range s.Endpoints {
		out = append(out, e.Addr())
	}
	return out
}

func waitEndpoints(t *testing.T, w *Watch, want ...string) {
	t.Helper()
	testdeps.WaitFor(t, "endpoints "+strings.Join(want, " "), func() bool {
		return slices.Equal(hostPorts(w.Current()), want)
	})
}

func TestDNSRecords(t *testing.T) {
	d := testdeps.StartDnsmasq(t, "192.0.2.2 redis.test\n192.0.2.1 redis.test\n::1 redis.test\n192.0.2.9 other.test\n", "", 1)
	w, _ := startDNSWatch(t, "dns:redis.test:6379", dnsOptions(d))
	ctx, cancel := context.WithTimeout(context.Background(), testdeps.WaitTimeout)
	defer cancel()
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	got := w.Current().Endpoints
	want := []Endpoint{
		{Host: "192.0.2.1", Port: 6379, Weight: 1, Ready: true, Serving: true},
		{Host: "192.0.2.2", Port: 6379, Weight: 1, Ready: true, Serving: true},
		{Host: "::1", Port: 6379, Weight: 1, Ready: true, Serving: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	// A record changed in dnsmasq reaches the Watch on the TTL.
	d.SetHosts("192.0.2.1 redis.test\n192.0.2.3 redis.test\n")
	waitEndpoints(t, w, "192.0.2.1:6379", "192.0.2.3:6379")
	if _, err := w.Status(); err != nil {
		t.Fatalf("status after the change: %v", err)
	}
}

func TestDNSNXDOMAINAtStart(t *testing.T) {
	d := testdeps.StartDnsmasq(t, "192.0.2.1 redis.test\n", "", 1)
	w, m := startDNSWatch(t, "dns:missing.test:6379", dnsOptions(d))
	testdeps.WaitFor(t, "a failed refresh", func() bool { _, err := w.Status(); return err != nil })
	synced, err := w.Status()
	if synced {
		t.Error("synced without an answer")
	}
	if !errors.Is(err, dnsclient.ErrNotFound) || !strings.Contains(err.Error(), "missing.test") || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("err = %v, want NXDOMAIN naming missing.test", err)
	}
	if n := testutil.ToFloat64(m.errors.WithLabelValues("dns:missing.test:6379", "dns")); n < 1 {
		t.Errorf("errors_total = %v", n)
	}
	if len(w.Current().Endpoints) != 0 {
		t.Errorf("endpoints without an answer: %v", w.Current())
	}

	// The name appears: the retries find it.
	d.SetHosts("192.0.2.1 redis.test\n192.0.2.5 missing.test\n")
	waitEndpoints(t, w, "192.0.2.5:6379")
}

func TestDNSNameDisappears(t *testing.T) {
	d := testdeps.StartDnsmasq(t, "192.0.2.1 redis.test\n192.0.2.2 redis.test\n", "", 1)
	w, m := startDNSWatch(t, "dns:redis.test:6379", dnsOptions(d))
	waitEndpoints(t, w, "192.0.2.1:6379", "192.0.2.2:6379")
	errs := m.errors.WithLabelValues("dns:redis.test:6379", "dns")
	before := testutil.ToFloat64(errs)

	d.SetHosts("192.0.2.9 other.test\n")
	testdeps.WaitFor(t, "the refresh to fail", func() bool { _, err := w.Status(); return err != nil })
	_, err := w.Status()
	if !errors.Is(err, dnsclient.ErrNotFound) || !strings.Contains(err.Error(), "redis.test") {
		t.Errorf("err = %v, want NXDOMAIN naming redis.test", err)
	}
	if got := hostPorts(w.Current()); !slices.Equal(got, []string{"192.0.2.1:6379", "192.0.2.2:6379"}) {
		t.Errorf("the last good set was not kept: %v", got)
	}
	if after := testutil.ToFloat64(errs); after <= before {
		t.Errorf("errors_total %v -> %v, want it to rise", before, after)
	}
	if h := testutil.ToFloat64(m.healthy.WithLabelValues("dns:redis.test:6379")); h != 0 {
		t.Errorf("healthy = %v while failing", h)
	}

	// The name comes back with another address.
	d.SetHosts("192.0.2.4 redis.test\n")
	waitEndpoints(t, w, "192.0.2.4:6379")
	testdeps.WaitFor(t, "the error to clear", func() bool { _, err := w.Status(); return err == nil })
}

func TestSRV(t *testing.T) {
	hosts := "192.0.2.1 r1.test\n192.0.2.2 r2.test\n::1 r2.test\n"
	conf := "srv-host=_redis._tcp.svc.test,r1.test,6379,0,5\n" +
		"srv-host=_redis._tcp.svc.test,r2.test,6380,0,0\n" +
		"srv-host=_redis._tcp.svc.test,r1.test,7000,1,2\n" +
		"srv-host=_redis._tcp.svc.test,gone.test,6379,0,1\n" // no address: left out
	d := testdeps.StartDnsmasq(t, hosts, conf, 1)
	w, _ := startDNSWatch(t, "srv:_redis._tcp.svc.test", dnsOptions(d))
	ctx, cancel := context.WithTimeout(context.Background(), testdeps.WaitTimeout)
	defer cancel()
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{
		{Host: "192.0.2.1", Port: 6379, Weight: 5, Priority: 0, Name: "r1.test", Ready: true, Serving: true},
		{Host: "192.0.2.1", Port: 7000, Weight: 2, Priority: 1, Name: "r1.test", Ready: true, Serving: true},
		{Host: "192.0.2.2", Port: 6380, Weight: 1, Priority: 0, Name: "r2.test", Ready: true, Serving: true},
		{Host: "::1", Port: 6380, Weight: 1, Priority: 0, Name: "r2.test", Ready: true, Serving: true},
	}
	if got := w.Current().Endpoints; !slices.Equal(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	// SRV records are read at dnsmasq's start: a restart on the same port
	// changes them, and the change reaches the Watch on the TTL.
	d.Restart(hosts, "srv-host=_redis._tcp.svc.test,r2.test,6390,0,3\n")
	waitEndpoints(t, w, "192.0.2.2:6390", "[::1]:6390")
	if e := w.Current().Endpoints[0]; e.Weight != 3 || e.Name != "r2.test" {
		t.Errorf("after the change: %+v", e)
	}

	// No SRV record at all: a failure, the last set stays.
	d.Restart(hosts, "")
	testdeps.WaitFor(t, "the refresh to fail", func() bool { _, err := w.Status(); return err != nil })
	if _, err := w.Status(); !strings.Contains(err.Error(), "_redis._tcp.svc.test") {
		t.Errorf("err = %v, want it to name the SRV name", err)
	}
	if got := hostPorts(w.Current()); !slices.Equal(got, []string{"192.0.2.2:6390", "[::1]:6390"}) {
		t.Errorf("the last good set was not kept: %v", got)
	}
}

func TestSRVNoTargetResolves(t *testing.T) {
	d := testdeps.StartDnsmasq(t, "", "srv-host=_x._tcp.svc.test,gone.test,1,0,1\n", 1)
	w, _ := startDNSWatch(t, "srv:_x._tcp.svc.test", dnsOptions(d))
	testdeps.WaitFor(t, "a failed refresh", func() bool { _, err := w.Status(); return err != nil })
	synced, err := w.Status()
	if synced || !strings.Contains(err.Error(), "gone.test") || !strings.Contains(err.Error(), "no SRV target") {
		t.Errorf("synced %t, err = %v: want a failure naming the target", synced, err)
	}
}

// TestDNSDeadNameserver: a nameserver that never answers is a timeout
// reported to the Watch, not a hang.
func TestDNSDeadNameserver(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	src, err := Parse("dns:redis.test:6379", Options{Resolver: pc.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	src.(*dnsSource).timeout = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	w := StartWatch(ctx, src, WatchOptions{})
	defer func() { cancel(); <-w.Done() }()
	testdeps.WaitFor(t, "a failed refresh", func() bool { _, err := w.Status(); return err != nil })
	_, err = w.Status()
	if !errors.Is(err, dnsclient.ErrTimeout) || !strings.Contains(err.Error(), pc.LocalAddr().String()) {
		t.Errorf("err = %v, want a timeout naming the server", err)
	}
}

// TestDNSResolvConf: without Options.Resolver the source reads
// resolv.conf on every refresh; one it cannot use is a failure that says so.
func TestDNSResolvConf(t *testing.T) {
	src, err := Parse("dns:redis.test:6379", Options{MinRefresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/resolv.conf"
	testdeps.ReplaceFile(t, path, "search example.com\n")
	src.(*dnsSource).resolvConf = path
	ctx, cancel := context.WithCancel(context.Background())
	w := StartWatch(ctx, src, WatchOptions{})
	defer func() { cancel(); <-w.Done() }()
	testdeps.WaitFor(t, "a failed refresh", func() bool { _, err := w.Status(); return err != nil })
	if _, err := w.Status(); !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no nameserver") {
		t.Errorf("err = %v, want it to name the file and what is wrong", err)
	}
}

func TestRefreshWait(t *testing.T) {
	// The wait after a success is the TTL, clamped; checked through Run
	// would take wall-clock time, so the arithmetic is checked here.
	o := Options{MinRefresh: time.Second, MaxRefresh: 30 * time.Second}
	for _, tt := range []struct{ ttl, want time.Duration }{
		{0, time.Second}, {5 * time.Second, 5 * time.Second}, {time.Hour, 30 * time.Second},
	} {
		if got := refreshAfter(tt.ttl, o); got != tt.want {
			t.Errorf("refreshAfter(%v) = %v, want %v", tt.ttl, got, tt.want)
		}
	}
}

// failTimes is a Receiver that records when each failure came.
type failTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func (f *failTimes) Update(Set) {}
func (f *failTimes) Failed(error) {
	f.mu.Lock()
	f.times = append(f.times, time.Now())
	f.mu.Unlock()
}

// TestDNSFailureBacksOff: failed refreshes are retried MinRefresh apart
// at first, then further apart (doubling, 10% jitter), never in a loop.
// Only lower bounds are checked: a loaded machine makes the gaps longer,
// never shorter.
func TestDNSFailureBacksOff(t *testing.T) {
	d := testdeps.StartDnsmasq(t, "", "", 1)
	src, err := Parse("dns:missing.test:1", Options{Resolver: d.Addr(), MinRefresh: 50 * time.Millisecond, MaxRefresh: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f := &failTimes{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx, f); close(done) }()
	defer func() { cancel(); <-done }()
	testdeps.WaitFor(t, "six failures", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.times) >= 6 })
	f.mu.Lock()
	defer f.mu.Unlock()
	// Waits: 50, 100, 200, 400, 400 ms, each at least 90% of that.
	for i, want := range []time.Duration{45, 90, 180, 360, 360} {
		if gap := f.times[i+1].Sub(f.times[i]); gap < want*time.Millisecond {
			t.Errorf("gap %d = %v, want at least %v", i+1, gap, want*time.Millisecond)
		}
	}
}
