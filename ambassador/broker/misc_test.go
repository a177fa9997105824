package broker

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestMetricsNames: the broker's metrics, discovery's and the pool's are
// on /metrics under podkit_broker_.
func TestMetricsNames(t *testing.T) {
	srv := echo(t)
	dead := deadAddr(t)
	r := start(t, flagConfig(static(srv.Addr(), dead), TCP))
	for range 4 {
		c, err := net.Dial("tcp", r.addr("up"))
		if err != nil {
			t.Fatal(err)
		}
		echoOnce(c, "x")
		c.Close()
	}
	web := backend(t, "web", 200)
	r2 := start(t, flagConfig(static(web), HTTP))
	httpGet(t, &http.Client{}, "GET", "http://"+r2.addr("up")+"/", "")
	m := r.metrics() + r2.metrics()
	for _, name := range []string{
		"podkit_broker_connections_total{", "podkit_broker_active_connections{", "podkit_broker_connect_errors_total{",
		"podkit_broker_rejected_total{", "podkit_broker_requests_total{", "podkit_broker_request_duration_seconds_bucket{",
		"podkit_broker_reloads_total{", "podkit_broker_upstream_tls_reloads_total{",
		"podkit_broker_discovery_updates_total{", "podkit_broker_discovery_endpoints{",
		"podkit_broker_endpoint_healthy{", "podkit_broker_endpoint_in_flight{",
	} {
		if !strings.Contains(m, name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

// TestDrain: on stop the listener closes at once, and an established
// connection goes on until it ends (within the drain timeout).
func TestDrain(t *testing.T) {
	srv := echo(t)
	r := start(t, flagConfig(static(srv.Addr()), TCP))
	addr := r.addr("up")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The broker has accepted and relayed it (a connection still in the
	// listen backlog when the listener closes is reset, as with any
	// server).
	if got, err := echoOnce(c, "before"); err != nil || got != "before" {
		t.Fatalf("the connection before the stop: %q, %v", got, err)
	}
	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }()
	testdeps.WaitFor(t, "the listener closed", func() bool {
		c2, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c2.Close()
		}
		return err != nil
	})
	if got, err := echoOnce(c, "draining"); err != nil || got != "draining" {
		t.Errorf("the established connection during the drain: %q, %v", got, err)
	}
	select {
	case <-stopped:
		t.Fatal("stopped with a connection still open")
	default:
	}
	c.Close()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop once the connection ended")
	}
}

// TestNonLoopbackListen: a --listen reachable from the network is
// allowed, with a warning.
func TestNonLoopbackListen(t *testing.T) {
	srv := echo(t)
	cfg := flagConfig(static(srv.Addr()), TCP)
	cfg.Upstream.Listen = "0.0.0.0:0"
	r := start(t, cfg)
	if !strings.Contains(r.logs.String(), "reachable from the network") {
		t.Errorf("no warning in:\n%s", r.logs.String())
	}
	c, err := net.Dial("tcp", r.addr("up"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := echoOnce(c, "hi"); err != nil || got != "hi" {
		t.Errorf("echo: %q, %v", got, err)
	}
}

// TestInjectedListener: Config.Listeners serves an upstream on a
// listener the program made.
func TestInjectedListener(t *testing.T) {
	srv := echo(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := flagConfig(static(srv.Addr()), TCP)
	cfg.Upstream.Listen = ln.Addr().String()
	cfg.Listeners = map[string]net.Listener{"up": ln}
	r := start(t, cfg)
	if r.addr("up") != ln.Addr().String() {
		t.Fatalf("listens on %s, want the injected %s", r.addr("up"), ln.Addr())
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := echoOnce(c, "hi"); err != nil || got != "hi" {
		t.Errorf("echo: %q, %v", got, err)
	}
}
