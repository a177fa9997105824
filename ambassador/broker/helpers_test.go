package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/container/containertest"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/internal/upstream"
)

// running is a Broker hosted by container.Run for a test.
type running struct {
	t     testing.TB
	b     *Broker
	admin string
	logs  fmt.Stringer
	host  *container.Host
	stop  func()
}

// flagConfig is a config for one upstream named "up" from flags, with
// checks and ejections quick enough for tests.
func flagConfig(source, mode string) Config {
	cfg := DefaultConfig()
	u := &cfg.Upstream
	u.Name, u.Listen, u.Source, u.Mode = "up", "127.0.0.1:0", source, mode
	u.HealthCheck.Interval, u.HealthCheck.Timeout = 200*time.Millisecond, time.Second
	u.HealthCheck.Rise, u.HealthCheck.Fall = 2, 2
	u.Outlier.Ejection = 500 * time.Millisecond
	u.Outlier.MaxEjection = 2 * time.Second
	u.Outlier.Failures = 3
	cfg.WatchInterval = 100 * time.Millisecond
	return cfg
}

// start runs a Broker for cfg until the test ends.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := containertest.Host(t, b)
	r := &running{t: t, b: b, admin: h.Admin, logs: h.Logs, stop: h.Stop}
	testdeps.WaitFor(t, "the broker to listen", func() bool {
		h.Exited()
		b.mu.Lock()
		defer b.mu.Unlock()
		r.host = b.host
		return b.running
	})
	return r
}

// addr is the listen address of upstream name.
func (r *running) addr(name string) string {
	a := r.b.Addr(name)
	if a == nil {
		r.t.Fatalf("upstream %q does not listen", name)
	}
	return a.String()
}

// get fetches an admin path.
func (r *running) get(path string) (int, string) {
	r.t.Helper()
	resp, err := http.Get(r.admin + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// endpoint returns the state of one endpoint of upstream name.
func (r *running) endpoint(name, addr string) (upstream.EndpointStatus, bool) {
	for _, u := range r.b.endpoints() {
		if u.Name != name {
			continue
		}
		for _, e := range u.Endpoints {
			if e.Address == addr {
				return e, true
			}
		}
	}
	return upstream.EndpointStatus{}, false
}

// counter is the value of a broker counter.
func (r *running) counter(name string, labels ...string) float64 {
	var v float64
	switch name {
	case "connections":
		v = testutil.ToFloat64(r.b.m.connections.WithLabelValues(labels...))
	case "connect_errors":
		v = testutil.ToFloat64(r.b.m.connectErrors.WithLabelValues(labels...))
	case "rejected":
		v = testutil.ToFloat64(r.b.m.rejected.WithLabelValues(labels...))
	case "requests":
		v = testutil.ToFloat64(r.b.m.requests.WithLabelValues(labels...))
	default:
		r.t.Fatalf("no counter %s", name)
	}
	return v
}

// metrics returns the /metrics text.
func (r *running) metrics() string {
	_, body := r.get("/metrics")
	return body
}

// endpointsJSON decodes GET /endpoints.
func (r *running) endpointsJSON() []upstreamStatus {
	r.t.Helper()
	code, body := r.get("/endpoints")
	if code != 200 {
		r.t.Fatalf("GET /endpoints = %d %s", code, body)
	}
	var out struct {
		Upstreams []upstreamStatus `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		r.t.Fatalf("GET /endpoints: %v in %s", err, body)
	}
	return out.Upstreams
}

// echo is a TCP server that echoes what it reads, and closes its side
// once the client closed its own.
func echo(t testing.TB) *testdeps.TCPServer {
	return testdeps.ServeTCP(t, func(c net.Conn) {
		io.Copy(c, c)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	})
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func static(addrs ...string) string { return "static:" + strings.Join(addrs, ",") }
