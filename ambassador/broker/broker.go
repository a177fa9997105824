// Package broker is the service-brokering ambassador: the application
// talks to one address on localhost, and the broker finds the real
// service wherever the pod runs (a static list, a file, DNS, Kubernetes
// EndpointSlices — see package discovery), balances over its endpoints,
// checks their health, ejects outliers and retries where that is safe.
//
// Each upstream is a listener bound to a discovery source, in one of two
// modes:
//
//   - tcp: any protocol (Redis, MySQL, PostgreSQL, gRPC...). Each client
//     connection goes to one endpoint; a failed connect moves to the next
//     endpoint until each was tried once; then bytes are spliced both
//     ways (splice(2) on Linux when no TLS is originated), half-closes are
//     passed on and an idle connection is closed.
//   - http: HTTP/1.1 and h2c (prior knowledge) on podkit's HTTP engine,
//     with a keep-alive pool per endpoint, X-Forwarded-*, each request
//     balanced on its own, and idempotent requests retried once on
//     another endpoint after a failed connect or a reset before any
//     response byte, within a retry budget.
//
// One upstream comes from flags; several from a YAML file, which is
// reloaded on SIGHUP and when it changes: an unchanged upstream keeps its
// listener and connections, a changed one takes new settings for new
// connections, a removed one stops accepting while its connections
// drain, and a bad file changes nothing.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/httpproxy"
	"github.com/podkit/podkit/internal/retry"
	"github.com/podkit/podkit/internal/tlsconf"
	"github.com/podkit/podkit/internal/upstream"
)

// Broker is the broker component.
type Broker struct {
	cfg Config
	m   *metrics
	log atomic.Pointer[slog.Logger]

	reloader    *container.Reloader[[]Upstream]
	tlsReloader *container.Reloader[struct{}]

	mu   sync.Mutex // serialises apply; guards svcs, running, host
	svcs []*svc
	live atomic.Pointer[[]*svc] // svcs, for readers that must not wait
	// injectedUsed are the Config.Listeners taken (each serves once).
	injectedUsed map[net.Listener]bool
	running      bool
	host         *container.Host

	wg sync.WaitGroup // accept loops and connections

	httpMu sync.Mutex
	https  []*httpMode // every http engine made, for a forced stop
}

var (
	_ container.Component   = (*Broker)(nil)
	_ container.Configured  = (*Broker)(nil)
	_ container.AdminRouter = (*Broker)(nil)
)

// svc is one listener and the generation of settings it serves with.
type svc struct {
	b      *Broker
	listen string // the address as configured
	ln     net.Listener
	cur    atomic.Pointer[gen]
	closed atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// gen is one generation of an upstream's settings: its discovery watch,
// pool, TLS client and (http) engine. A reload that changes the upstream
// makes a new one; connections keep the one they were accepted with.
type gen struct {
	spec   Upstream
	watch  *discovery.Watch
	pool   *upstream.Pool
	cancel context.CancelFunc
	tls    *tlsconf.Client
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	http   *httpMode // nil in tcp mode
}

// New validates cfg and returns a Broker. The upstreams (and the file)
// are checked here, so a bad configuration fails before anything runs.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := cfg.upstreams(); err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, m: newMetrics()}
	b.log.Store(slog.Default())
	var files func() []string
	if cfg.ConfigFile != "" {
		files = func() []string { return []string{cfg.ConfigFile} }
	}
	b.reloader = container.NewReloader(container.Reload[[]Upstream]{
		Subsystem: "broker",
		What:      "configuration",
		Files:     files,
		Interval:  cfg.WatchInterval,
		Load:      b.load,
		Apply:     b.reapply,
		Attrs:     func(us []Upstream) []any { return []any{"upstreams", len(us)} },
	})
	b.tlsReloader = container.NewReloader(container.Reload[struct{}]{
		Subsystem: "broker_upstream_tls",
		What:      "upstream TLS files",
		Files:     b.tlsFiles,
		Interval:  cfg.WatchInterval,
		Load:      b.reloadTLS,
		Apply:     func(struct{}) error { return nil },
	})
	return b, nil
}

// Name implements container.Component.
func (b *Broker) Name() string { return "broker" }

func (b *Broker) logger() *slog.Logger { return b.log.Load() }

// EffectiveConfig implements container.Configured: the flags and the
// upstreams in force.
func (b *Broker) EffectiveConfig() any {
	ups := b.Upstreams()
	cfg := b.cfg
	cfg.Upstream = cfg.base()
	return struct {
		Config
		Upstreams []Upstream `json:"upstreams"`
	}{cfg, ups}
}

// Upstreams returns the upstreams in force.
func (b *Broker) Upstreams() []Upstream {
	var ups []Upstream
	for _, s := range b.services() {
		ups = append(ups, s.cur.Load().spec)
	}
	return ups
}

// Addr returns the address upstream name listens on, once Run has started
// it (nil before, or for an upstream the configuration does not have).
func (b *Broker) Addr(name string) net.Addr {
	for _, s := range b.services() {
		if s.cur.Load().spec.Name == name {
			return s.ln.Addr()
		}
	}
	return nil
}

// services returns the upstreams in force, without waiting for a reload
// under way (readiness checks and the admin API call it).
func (b *Broker) services() []*svc {
	if p := b.live.Load(); p != nil {
		return *p
	}
	return nil
}

// errNotRunning is Reload's error outside Run.
var errNotRunning = errors.New("broker: Reload called before Run started the broker, or after it stopped")

// Reload rereads --config and applies it, as SIGHUP and a change of the
// file do; on error the running configuration is kept.
func (b *Broker) Reload() error {
	b.mu.Lock()
	running := b.running
	b.mu.Unlock()
	if !running {
		return errNotRunning
	}
	return b.reloader.Reload(context.Background())
}

// acceptRetry is the wait after a failed Accept (out of file
// descriptors, say).
var acceptRetry = retry.Policy{Initial: 50 * time.Millisecond, Multiplier: 1}

// Run implements container.Component.
func (b *Broker) Run(ctx context.Context, h *container.Host) error {
	b.log.Store(h.Logger())
	if err := b.m.register(h.Registerer()); err != nil {
		return err
	}
	ups, err := b.cfg.upstreams()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.host = h
	err = b.applyLocked(ups)
	if err == nil {
		b.running = true
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	reloads, err := b.reloader.Start(ctx, h)
	if err != nil {
		b.shutdown(h.DrainContext())
		return err
	}
	tlsReloads, err := b.tlsReloader.Start(ctx, h)
	if err != nil {
		<-reloads
		b.shutdown(h.DrainContext())
		return err
	}
	h.SetReady(true)
	<-ctx.Done()
	<-reloads
	<-tlsReloads
	b.mu.Lock()
	b.running = false
	b.mu.Unlock()
	b.shutdown(h.DrainContext())
	return nil
}

// shutdown stops accepting, waits for the connections until drain ends,
// then closes what is left and stops the generations.
func (b *Broker) shutdown(drain context.Context) {
	svcs := b.services()
	for _, s := range svcs {
		s.stop()
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-drain.Done():
		for _, s := range svcs {
			s.closeConns()
		}
		b.httpMu.Lock()
		https := slices.Clone(b.https)
		b.httpMu.Unlock()
		for _, h := range https {
			h.abort()
		}
		<-done
	}
	for _, s := range svcs {
		s.cur.Load().close()
	}
}

// load is the reload's load step: --config, read and validated.
func (b *Broker) load(context.Context) ([]Upstream, error) {
	if b.cfg.ConfigFile == "" {
		return nil, fmt.Errorf("%w: no --config", container.ErrUnchanged)
	}
	return b.cfg.upstreams()
}

// reapply is the reload's swap step.
func (b *Broker) reapply(ups []Upstream) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running {
		return errNotRunning
	}
	return b.applyLocked(ups)
}

// applyLocked swaps ups in (b.mu held). An upstream matches a running
// one by name, else by listen address. A matched upstream whose settings
// are unchanged is left alone; one whose settings changed gets a new
// generation (new connections use it); one whose address changed gets a
// new listener. Running upstreams nothing matches stop accepting, and
// their connections drain. Everything that can fail (listening, sources,
// TLS files) is done before anything changes: on error nothing has.
func (b *Broker) applyLocked(ups []Upstream) error {
	type plan struct {
		spec Upstream
		old  *svc // matched running upstream, or nil
		g    *gen // new generation, or nil (unchanged)
		ln   net.Listener
	}
	var (
		plans   []*plan
		matched = map[*svc]bool{}
	)
	byName := map[string]*svc{}
	for _, s := range b.svcs {
		byName[s.cur.Load().spec.Name] = s
	}
	for _, u := range ups {
		p := &plan{spec: u}
		if s, ok := byName[u.Name]; ok && !matched[s] {
			p.old = s
		}
		plans = append(plans, p)
		if p.old != nil {
			matched[p.old] = true
		}
	}
	for _, p := range plans {
		if p.old != nil {
			continue
		}
		for _, s := range b.svcs {
			if !matched[s] && s.listen == p.spec.Listen && !isPortZero(s.listen) {
				p.old = s
				matched[s] = true
				break
			}
		}
	}
	fail := func(err error) error {
		for _, p := range plans {
			if p.g != nil {
				p.g.close()
			}
			if p.ln != nil {
				p.ln.Close()
			}
		}
		return err
	}
	for _, p := range plans {
		if p.old != nil && reflect.DeepEqual(p.old.cur.Load().spec, p.spec) {
			continue
		}
		g, err := b.newGen(p.spec)
		if err != nil {
			return fail(fmt.Errorf("upstream %q: %w", p.spec.Name, err))
		}
		p.g = g
		if p.old == nil || p.old.listen != p.spec.Listen {
			var injected net.Listener
			if l := b.cfg.Listeners[p.spec.Name]; l != nil && !b.injectedUsed[l] {
				injected = l
			}
			ln, err := container.Listen(fmt.Sprintf("upstream %q: listen", p.spec.Name), p.spec.Listen, injected)
			if err != nil {
				return fail(err)
			}
			p.ln = ln
		}
	}
	// Nothing can fail from here on.
	for _, p := range plans {
		if p.ln != nil && p.ln == b.cfg.Listeners[p.spec.Name] {
			if b.injectedUsed == nil {
				b.injectedUsed = map[net.Listener]bool{}
			}
			b.injectedUsed[p.ln] = true
		}
	}
	var next []*svc
	for _, p := range plans {
		switch {
		case p.g == nil: // unchanged
			next = append(next, p.old)
		case p.ln == nil: // same listener, new settings
			old := p.old.cur.Swap(p.g)
			b.started(p.g, p.old)
			old.retire(p.g)
			b.logger().Info("upstream changed; new connections use the new settings", "upstream", p.spec.Name, "listen", p.old.ln.Addr().String())
			next = append(next, p.old)
		default: // a new listener
			s := &svc{b: b, listen: p.spec.Listen, ln: p.ln, conns: map[net.Conn]struct{}{}}
			s.cur.Store(p.g)
			b.started(p.g, s)
			if p.old != nil {
				p.old.stop()
				p.old.cur.Load().retire(p.g)
			}
			b.wg.Add(1)
			go s.accept()
			b.logger().Info("upstream listening", "upstream", p.spec.Name, "mode", p.spec.Mode, "listen", p.ln.Addr().String(), "source", p.spec.Source)
			if !container.IsLoopbackAddr(p.spec.Listen) {
				b.logger().Warn("the upstream listens on a non-loopback address: it is reachable from the network", "upstream", p.spec.Name, "listen", p.spec.Listen)
			}
			next = append(next, s)
		}
	}
	for _, s := range b.svcs {
		if !matched[s] {
			g := s.cur.Load()
			s.stop()
			g.retire(nil)
			b.m.forget(g.spec.Name)
			b.logger().Info("upstream removed; it stops accepting and its connections drain", "upstream", g.spec.Name)
		}
	}
	b.svcs = next
	b.live.Store(&next)
	return nil
}

func isPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// started registers what a new generation needs from the host: its
// readiness check (once per upstream name).
func (b *Broker) started(g *gen, s *svc) {
	name := g.spec.Name
	if b.host == nil {
		return
	}
	b.m.upstream(name)
	if b.m.checked(name) {
		return
	}
	b.host.AddCheck(container.Check{
		Name:   "upstream " + name,
		Ready:  true,
		Period: time.Second,
		Func: func(context.Context) error {
			for _, s := range b.services() {
				if g := s.cur.Load(); g.spec.Name == name {
					return g.readiness()
				}
			}
			return nil // removed: nothing to wait for
		},
	})
}

// readiness is nil while the pool has a usable endpoint, else why not.
func (g *gen) readiness() error {
	if g.pool.Usable() > 0 {
		return nil
	}
	synced, derr := g.watch.Status()
	switch {
	case !synced && derr != nil:
		return fmt.Errorf("upstream %q: discovery has no answer yet: %w", g.spec.Name, derr)
	case !synced:
		return fmt.Errorf("upstream %q: waiting for discovery's first answer from %s", g.spec.Name, g.spec.Source)
	}
	err := g.pool.Err()
	if err == nil {
		err = fmt.Errorf("upstream %q: no usable endpoint", g.spec.Name)
	}
	if derr != nil {
		err = fmt.Errorf("%w (and discovery fails: %v)", err, derr)
	}
	return err
}

// newGen builds a generation for u and starts its discovery and pool.
func (b *Broker) newGen(u Upstream) (*gen, error) {
	opts := b.cfg.discoveryOptions()
	opts.Logger = b.logger()
	src, err := discovery.Parse(u.Source, opts)
	if err != nil {
		return nil, err
	}
	g := &gen{spec: u}
	dialer := &net.Dialer{Timeout: u.Timeouts.Connect}
	g.dial = dialer.DialContext
	if u.TLS != nil {
		c, err := tlsconf.NewClient(tlsconf.ClientFiles{
			CA: u.TLS.CA, Cert: u.TLS.Cert, Key: u.TLS.Key, ServerName: u.TLS.ServerName, SANs: u.TLS.SANs,
		})
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		g.tls = c
		g.dial = c.Dial
	}
	checker, err := g.checker()
	if err != nil {
		return nil, err
	}
	policy, _ := upstream.ParsePolicy(u.Balance)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.watch = discovery.StartWatch(ctx, src, discovery.WatchOptions{
		Name: u.Name, Logger: b.logger(), Metrics: b.m.disc,
	})
	// The pool starts from the watch's set: wait a little for the first
	// answer, so that a static or file source has its endpoints before
	// the listener opens; a slower source (DNS, Kubernetes) fills the
	// pool once it answers, readiness staying 503 until then.
	wctx, wcancel := context.WithTimeout(ctx, firstAnswerWait)
	if err := g.watch.WaitSynced(wctx); err != nil {
		b.logger().Warn("discovery has not answered yet; the upstream starts with no endpoint", "upstream", u.Name, "source", u.Source, "error", err)
	}
	wcancel()
	g.pool, err = upstream.New(upstream.Config{
		Name:   u.Name,
		Policy: policy,
		Zone:   u.Zone,
		Check: upstream.CheckConfig{
			Checker: checker, Interval: u.HealthCheck.Interval, Timeout: u.HealthCheck.Timeout,
			Rise: u.HealthCheck.Rise, Fall: u.HealthCheck.Fall,
		},
		Outlier: upstream.OutlierConfig{
			ConsecutiveFailures: u.Outlier.Failures, BaseEjection: u.Outlier.Ejection,
			MaxEjection: u.Outlier.MaxEjection, MaxPercent: u.Outlier.MaxPercent,
		},
		Limits: upstream.Limits{
			MaxConnections: u.Limits.MaxConnections, MaxRequests: u.Limits.MaxRequests, MaxPending: u.Limits.MaxPending,
		},
		RetryBudget: retryBudget(u.Retries.Budget),
		Logger:      b.logger(),
		Metrics:     b.m.pool,
	}, g.watch)
	if err != nil {
		cancel()
		return nil, err
	}
	go g.pool.Run(ctx)
	go b.follow(ctx, g)
	if u.Mode == HTTP {
		g.http = b.newHTTP(g)
	}
	return g, nil
}

// firstAnswerWait bounds the wait for a new upstream's first discovery
// answer.
const firstAnswerWait = 3 * time.Second

// retryBudget maps the configured budget to the pool's: 0 means no
// retries beyond the pool's minimum, which the pool spells negative.
func retryBudget(f float64) float64 {
	if f == 0 {
		return -1
	}
	return f
}

// follow drops the per-endpoint series and backends of endpoints that
// leave discovery.
func (b *Broker) follow(ctx context.Context, g *gen) {
	known := map[string]bool{}
	for {
		ch := g.watch.Changed()
		now := map[string]bool{}
		for _, e := range g.watch.Current().Endpoints {
			now[e.Addr()] = true
		}
		for a := range known {
			if !now[a] {
				b.m.forgetEndpoint(g.spec.Name, a)
				if g.http != nil {
					g.http.forget(a)
				}
			}
		}
		known = now
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// retire ends a generation that next replaces (nil: the upstream is
// gone): its discovery and checks stop; connections still on it keep
// their endpoints until they end, and http keep-alive connections close
// after the response they are sending.
func (g *gen) retire(next *gen) {
	if g.http != nil {
		g.http.drain()
	}
	g.close()
}

// close stops the generation's discovery, pool and idle backend
// connections.
func (g *gen) close() {
	g.cancel()
	g.pool.Close()
	if g.http != nil {
		g.http.closeIdle()
	}
}

// accept serves the listener until it closes.
func (s *svc) accept() {
	defer s.b.wg.Done()
	var fails int
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.b.logger().Warn("accept failed; retrying", "listen", s.ln.Addr().String(), "error", err)
			time.Sleep(acceptRetry.Delay(fails))
			fails++
			continue
		}
		fails = 0
		g := s.cur.Load()
		if !s.track(c) {
			c.Close()
			return
		}
		go func() {
			defer s.untrack(c)
			if g.http != nil {
				g.http.serve(s, c)
			} else {
				s.b.serveTCP(g, c)
			}
		}()
	}
}

func (s *svc) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.b.wg.Add(1)
	s.wg.Add(1)
	return true
}

func (s *svc) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
	s.b.wg.Done()
}

// stop closes the listener: no new connections.
func (s *svc) stop() {
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	s.ln.Close()
	if g := s.cur.Load(); g.http != nil {
		g.http.drain()
	}
}

// closeConns closes every connection still open (the drain deadline
// passed).
func (s *svc) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
		abortRelay(c) // a relayed pair's sockets are the relay's
	}
}

var _ = httpproxy.HTTP1
