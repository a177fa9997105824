package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/testdeps"
)

// listener is a real TCP endpoint that the test closes and reopens on the
// same port.
type listener struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	ln   net.Listener
}

func listen(t *testing.T) *listener {
	l := &listener{t: t, addr: "127.0.0.1:0"}
	l.open()
	l.addr = l.ln.Addr().String()
	t.Cleanup(l.close)
	return l
}

func (l *listener) open() {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	testdeps.WaitFor(l.t, "listening on "+l.addr, func() bool {
		l.ln, err = net.Listen("tcp", l.addr)
		return err == nil
	})
	ln := l.ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
}

// counting wraps a Checker and checks the rise/fall rule at every result:
// the k-th failure in a row (k ≤ Fall) is seen while the endpoint is still
// healthy, the k-th pass in a row after going down (k ≤ Rise) while it is
// still unhealthy.
type counting struct {
	c          Checker
	rise, fall int
	pool       atomic.Pointer[Pool]

	mu        sync.Mutex
	fails     map[string]int
	passes    map[string]int
	down      map[string]bool // went down and has not come back
	violation []string
}

func (c *counting) Check(ctx context.Context, addr string) error {
	err := c.c.Check(ctx, addr)
	p := c.pool.Load()
	if p == nil {
		return err
	}
	healthy := status(p, addr).Health == "healthy" // before this result
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.passes[addr] = 0
		c.fails[addr]++
		if c.fails[addr] <= c.fall && !healthy && !c.down[addr] {
			c.violation = append(c.violation, addr+": unhealthy before Fall failed checks")
		}
		if c.fails[addr] >= c.fall {
			c.down[addr] = true
		}
		return err
	}
	c.fails[addr] = 0
	c.passes[addr]++
	if c.down[addr] {
		if c.passes[addr] <= c.rise && healthy {
			c.violation = append(c.violation, addr+": healthy before Rise passed checks")
		}
		if c.passes[addr] >= c.rise {
			c.down[addr] = false
		}
	}
	return nil
}

func TestTCPHealthCheck(t *testing.T) {
	a, b, c := listen(t), listen(t), listen(t)
	src, err := discovery.Parse("static:"+a.addr+","+b.addr+","+c.addr, discovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := discovery.StartWatch(t.Context(), src, discovery.WatchOptions{Logger: quiet()})
	if err := w.WaitSynced(t.Context()); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	m := NewMetrics("test")
	chk := &counting{c: TCPCheck(nil), rise: 3, fall: 2, fails: map[string]int{}, passes: map[string]int{}, down: map[string]bool{}}
	p := newPool(t, Config{Name: "tcp", Logger: logs.logger(), Metrics: m, Check: CheckConfig{
		Checker: chk, Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 3, Fall: 2,
	}}, w)
	chk.pool.Store(p)
	// A new endpoint is healthy before any check.
	if p.Usable() != 3 || status(p, b.addr).Health != "healthy" {
		t.Fatalf("before checks: usable %d, %+v", p.Usable(), status(p, b.addr))
	}
	run(t, p)

	b.close()
	testWaitUsable(t, p, 2)
	st := status(p, b.addr)
	if st.Health != "unhealthy" || st.LastCheckError == "" || st.Usable {
		t.Errorf("closed endpoint: %+v", st)
	}
	if n := picks(t, p, 30, nil)[b.addr]; n != 0 {
		t.Errorf("unhealthy endpoint picked %d times", n)
	}
	b.open()
	testWaitUsable(t, p, 3)
	chk.mu.Lock()
	passes := chk.passes[b.addr]
	chk.mu.Unlock()
	if passes < 3 {
		t.Errorf("healthy again after %d passed checks, want Rise 3", passes)
	}

	chk.mu.Lock()
	if len(chk.violation) > 0 {
		t.Errorf("rise/fall violated: %v", chk.violation)
	}
	chk.mu.Unlock()
	if n := logs.count("endpoint unhealthy"); n != 1 {
		t.Errorf("%d 'endpoint unhealthy' lines, want 1:\n%s", n, logs.b.String())
	}
	if n := logs.count("endpoint healthy"); n != 1 {
		t.Errorf("%d 'endpoint healthy' lines, want 1", n)
	}
	for _, to := range []string{"healthy", "unhealthy"} {
		if v, ok := gather(t, m, "podkit_test_endpoint_health_transitions_total", map[string]string{"upstream": "tcp", "endpoint": b.addr, "to": to}); v != 1 || !ok {
			t.Errorf("transitions to %s = %v, want 1", to, v)
		}
	}
	if v, ok := gather(t, m, "podkit_test_endpoint_healthy", map[string]string{"endpoint": b.addr}); v != 1 || !ok {
		t.Errorf("endpoint_healthy = %v (%v), want 1", v, ok)
	}

	// All down: the error says so; readiness sees 0 usable.
	a.close()
	b.close()
	c.close()
	testWaitUsable(t, p, 0)
	if _, err := p.Acquire(Hint{}); !errors.Is(err, ErrNoEndpoint) || !strings.Contains(err.Error(), "all 3 endpoints unhealthy") {
		t.Errorf("all down: Acquire = %v", err)
	}
}

func TestHTTPCheck(t *testing.T) {
	var code atomic.Int64
	code.Store(200)
	var gotHost, gotPath atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		gotPath.Store(r.URL.Path)
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	chk := HTTPCheck(HTTPCheckConfig{Path: "healthz", Host: "svc.example"})

	for _, tc := range []struct {
		code int
		err  string
	}{
		{200, ""},
		{204, ""},
		{302, ""},
		{404, "GET /healthz: status 404, want 200-399"},
		{503, "status 503"},
	} {
		code.Store(int64(tc.code))
		err := chk.Check(t.Context(), addr)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("status %d: Check = %v, want %q", tc.code, err, tc.err)
		}
	}
	if gotHost.Load() != "svc.example" || gotPath.Load() != "/healthz" {
		t.Errorf("request had Host %v and path %v", gotHost.Load(), gotPath.Load())
	}
	if err := HTTPCheck(HTTPCheckConfig{Lo: 500, Hi: 599}).Check(t.Context(), addr); err != nil {
		t.Errorf("status range 500-599 refused 503: %v", err)
	}

	// In a pool: 503 takes the endpoint out, 200 brings it back.
	code.Store(200)
	w := staticWatch(t, "static:"+addr)
	p := newPool(t, Config{Check: CheckConfig{Checker: chk, Interval: 20 * time.Millisecond, Rise: 1, Fall: 1}}, w)
	run(t, p)
	code.Store(503)
	testWaitUsable(t, p, 0)
	if st := status(p, addr); !strings.Contains(st.LastCheckError, "status 503") {
		t.Errorf("last check error %q", st.LastCheckError)
	}
	code.Store(200)
	testWaitUsable(t, p, 1)
}

func TestHTTPCheckTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.WriteHeader(500)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake below
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	conf := &tls.Config{RootCAs: roots, ServerName: "example.com"}
	if err := HTTPCheck(HTTPCheckConfig{TLS: conf}).Check(t.Context(), addr); err != nil {
		t.Errorf("TLS check: %v", err)
	}
	// A dial that does the handshake itself (as tlsconf.Client.Dial).
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		d := tls.Dialer{Config: conf}
		return d.DialContext(ctx, network, a)
	}
	if err := HTTPCheck(HTTPCheckConfig{Dial: dial}).Check(t.Context(), addr); err != nil {
		t.Errorf("check through a TLS dial: %v", err)
	}
	// An untrusted server fails.
	if err := HTTPCheck(HTTPCheckConfig{TLS: &tls.Config{ServerName: "example.com"}}).Check(t.Context(), addr); err == nil {
		t.Error("check against an untrusted certificate passed")
	}
}

func TestCheckTimeout(t *testing.T) {
	silent := testdeps.SilentTCP(t)
	chk := HTTPCheck(HTTPCheckConfig{})
	w := staticWatch(t, "static:"+silent)
	p := newPool(t, Config{Check: CheckConfig{Checker: chk, Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond, Fall: 1}}, w)
	run(t, p)
	testWaitUsable(t, p, 0)
	if st := status(p, silent); !strings.Contains(st.LastCheckError, "no answer within 50ms") {
		t.Errorf("last check error %q", st.LastCheckError)
	}
}
