package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/ambassador/broker"
)

// The broker demo's flapping backend: it stops brokerDemoUp after it
// (re)starts and stays away for brokerDemoDown.
const (
	brokerDemoUp   = 30 * time.Second
	brokerDemoDown = 15 * time.Second
)

// startBroker runs three small HTTP backends and podkit broker in front of
// them (http mode, round robin, HTTP health checks every second). The
// third backend stops every 30 s and comes back 15 s later, so GET
// /endpoints shows it turn unhealthy, traffic move to the other two, and
// the backend taken back once it passes its checks.
func startBroker(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	var backs []*demoBackend
	stopAll := func() {
		for _, b := range backs {
			b.stop()
		}
	}
	var addrs []string
	for i := range 3 {
		ln, err := d.listen()
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		b := &demoBackend{name: fmt.Sprintf("backend-%d", i+1), addr: ln.Addr().String()}
		b.serve(ln)
		backs = append(backs, b)
		addrs = append(addrs, b.addr)
	}
	ln, err := d.listen()
	if err != nil {
		stopAll()
		return nil, nil, err
	}
	cfg := broker.DefaultConfig()
	u := &cfg.Upstream
	u.Name = "demo"
	u.Listen = ln.Addr().String()
	u.Source = "static:" + strings.Join(addrs, ",")
	u.Mode = broker.HTTP
	u.HealthCheck.Type = broker.CheckHTTP
	u.HealthCheck.Path = "/healthz"
	u.HealthCheck.Interval = time.Second
	u.HealthCheck.Timeout = 500 * time.Millisecond
	u.HealthCheck.Rise = 2
	u.HealthCheck.Fall = 2
	u.Timeouts.Connect = time.Second
	cfg.Listeners = map[string]net.Listener{u.Name: ln}
	bk, err := broker.New(cfg)
	if err != nil {
		ln.Close()
		stopAll()
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, bk)
	if err != nil {
		ln.Close()
		stopAll()
		return nil, nil, err
	}
	flapDone := make(chan struct{})
	go func() {
		defer close(flapDone)
		backs[2].flap(ctx, d)
	}()
	out := make(chan error, 1)
	go func() {
		err := <-errc // the broker has drained: its backends may go
		<-flapDone
		stopAll()
		out <- err
	}()
	return []Endpoint{
		{"broker", fmt.Sprintf("HTTP over 3 demo backends; %s stops every %s for %s (curl it a few times)", backs[2].name, brokerDemoUp, brokerDemoDown), "http://" + u.Listen + "/"},
		{"broker", "its endpoints: health, ejections, in flight (as Envoy's /clusters)", admin + "/endpoints?format=text"},
	}, out, nil
}

// demoBackend is a tiny HTTP server that says who it is, and can be
// stopped and started again on the same address.
type demoBackend struct {
	name, addr string
	mu         sync.Mutex
	srv        *http.Server
}

func (b *demoBackend) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (%s) answered %s %s\n", b.name, b.addr, r.Method, r.URL.Path)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the server and its connections.
func (b *demoBackend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// flap stops the backend brokerDemoUp after each start and starts it
// again brokerDemoDown later, until ctx ends.
func (b *demoBackend) flap(ctx context.Context, d *env) {
	wait := func(t time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(t):
			return true
		}
	}
	for wait(brokerDemoUp) {
		b.stop()
		d.cfg.Log.Info("podkit demo: a broker backend stopped; it comes back soon", "backend", b.name, "addr", b.addr, "in", brokerDemoDown)
		if !wait(brokerDemoDown) {
			return
		}
		for {
			ln, err := net.Listen("tcp", b.addr)
			if err == nil {
				b.serve(ln)
				d.cfg.Log.Info("podkit demo: a broker backend is back", "backend", b.name, "addr", b.addr)
				break
			}
			if errors.Is(err, net.ErrClosed) || !wait(time.Second) {
				return
			}
		}
	}
}
