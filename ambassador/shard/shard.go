// Package shard is the sharding ambassador: the application talks to one
// local port and podkit shards its keys over several Redis or memcached
// servers, exactly as twemproxy (nutcracker) does for the same
// nutcracker.yml: same hashes, same ketama ring, same modula order, so a
// migration keeps every key on its server.
//
// One process serves every pool of the file. Redis pools speak RESP2 and
// RESP3 with pipelining, split MGET/MSET/DEL/UNLINK/EXISTS/TOUCH across
// servers and merge the replies, run MULTI/EXEC on the one server a
// transaction's keys hash to, and refuse with a clear error what cannot
// be sharded. memcached pools speak the text protocol and the meta
// commands. Each server connection is shared by many clients: the
// requests read from all ready clients go out in one write, and replies
// are matched in order. What moves the bytes is the platform's data path
// (path.go): event loops on Linux (loop_linux.go), a goroutine per client
// elsewhere (goroutines_other.go).
//
// Failures follow twemproxy (timeout, server_failure_limit,
// server_retry_timeout, auto_eject_hosts), plus fail_closed, which marks a
// failing server down without moving its keys. The configuration reloads
// on SIGHUP or when the file changes; a bad file is refused with its line
// and the running configuration kept.
package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/retry"
)

// Proxy is the shard component.
type Proxy struct {
	cfg    Config
	limits limits
	m      *metrics
	log    *slog.Logger

	mu        sync.Mutex // serialises reloads; guards listeners, running, statsLn
	listeners map[string]*listener
	current   atomic.Pointer[[]*pool]
	counters  map[string]*poolCounters
	reloader  *container.Reloader[[]Pool]
	path      dataPath
	running   bool // from the first configuration until the drain (px.mu)
	started   time.Time
	statsLn   net.Listener // twemproxy's stats port (px.mu)

	wg sync.WaitGroup
}

var (
	_ container.Component  = (*Proxy)(nil)
	_ container.Configured = (*Proxy)(nil)
)

// listener is one pool's listening socket and its clients.
type listener struct {
	name   string
	listen string
	proto  string
	ln     net.Listener
	pool   atomic.Pointer[pool]
	path   dataPath

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
	listenerClients
}

// New validates cfg and returns a Proxy. The pools are read (and the
// file checked) here, so a bad configuration fails before anything runs.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, _, err := cfg.pools(); err != nil {
		return nil, err
	}
	px := &Proxy{
		cfg:       cfg,
		limits:    limits{maxBulk: cfg.MaxBulk},
		listeners: map[string]*listener{},
		counters:  map[string]*poolCounters{},
	}
	px.m = newMetrics(px.pools)
	var files func() []string
	if cfg.ConfigFile != "" {
		files = func() []string { return []string{cfg.ConfigFile} }
	}
	px.reloader = container.NewReloader(container.Reload[[]Pool]{
		Subsystem: "shard",
		What:      "configuration",
		Files:     files,
		Interval:  cfg.WatchInterval,
		Load:      px.reloadPools,
		Apply:     px.reapply,
		Attrs:     func(specs []Pool) []any { return []any{"pools", len(specs)} },
	})
	return px, nil
}

// Name implements container.Component.
func (px *Proxy) Name() string { return "shard" }

// EffectiveConfig implements container.Configured: the flags and the
// pools in force.
func (px *Proxy) EffectiveConfig() any {
	var pools []Pool
	for _, p := range px.pools() {
		pools = append(pools, p.cfg)
	}
	return struct {
		Config
		Pools []Pool `json:"pools"`
	}{px.cfg, pools}
}

func (px *Proxy) pools() []*pool {
	if p := px.current.Load(); p != nil {
		return *p
	}
	return nil
}

// PoolAddr returns the address pool name listens on, once Run has
// started it (nil before, or for a pool the configuration does not have).
func (px *Proxy) PoolAddr(name string) net.Addr {
	px.mu.Lock()
	defer px.mu.Unlock()
	if l, ok := px.listeners[name]; ok {
		return l.ln.Addr()
	}
	return nil
}

// errNotRunning is Reload's error outside Run.
var errNotRunning = errors.New("shard: Reload called before Run started the proxy, or after it stopped")

// Reload rereads the configuration and applies it; on error the running
// configuration is kept. It is what SIGHUP and a file change do. It
// needs a running proxy: before Run has applied the first configuration,
// or once Run is draining, it returns an error and changes nothing.
func (px *Proxy) Reload() error {
	px.mu.Lock()
	running := px.running
	px.mu.Unlock()
	if !running {
		return errNotRunning
	}
	return px.reloader.Reload(context.Background())
}

// probePeriod is how often the readiness check runs, probing the servers
// that have no open connection.
const probePeriod = 5 * time.Second

// acceptRetry is the wait after a failed Accept (out of file
// descriptors, say): a constant 50ms, so the loop neither spins nor
// waits long once the cause has cleared.
var acceptRetry = retry.Policy{Initial: 50 * time.Millisecond, Multiplier: 1}

// Run implements container.Component.
func (px *Proxy) Run(ctx context.Context, h *container.Host) error {
	px.log = h.Logger()
	px.started = time.Now()
	if err := h.Registerer().Register(px.m); err != nil {
		return err
	}
	if px.cfg.MbufSize != 0 {
		px.log.Info("--mbuf-size (nutcracker's -m) is accepted and ignored: podkit sizes its buffers itself", "mbuf_size", px.cfg.MbufSize)
	}
	if px.cfg.StatsInterval != 0 {
		px.log.Info("--stats-interval (nutcracker's -i) is accepted and ignored: podkit's stats are current at every read", "stats_interval_ms", px.cfg.StatsInterval)
	}
	path, err := newDataPath(px, px.cfg.EventLoops)
	if err != nil {
		return err
	}
	px.path = path
	defer path.stop()
	statsLn, err := px.statsListen()
	if err != nil {
		return err
	}
	specs, err := px.loadPools()
	if err == nil {
		err = px.apply(specs)
	}
	if err != nil {
		px.closeAll()
		if statsLn != nil {
			statsLn.Close()
		}
		return err
	}
	if statsLn != nil {
		px.mu.Lock()
		px.statsLn = statsLn
		px.mu.Unlock()
		px.log.Info("twemproxy stats listening", "addr", statsLn.Addr().String())
		statsCtx, stopStats := context.WithCancel(context.Background())
		statsDone := make(chan struct{})
		go func() { px.serveStats(statsCtx, statsLn); close(statsDone) }()
		defer func() { stopStats(); <-statsDone }()
	}
	px.m.lastOK.Set(1)
	px.mu.Lock()
	px.running = true
	px.mu.Unlock()
	// The configuration reloads on SIGHUP and when --config changes.
	reloads, err := px.reloader.Start(ctx, h)
	if err != nil {
		px.mu.Lock()
		px.running = false
		px.mu.Unlock()
		px.closeAll()
		return err
	}
	h.AddCheck(container.Check{Name: "pools", Ready: true, Period: probePeriod, Func: px.checkServers})
	h.AddCheck(container.Check{Name: "servers", Period: probePeriod, Func: px.checkEachServer})
	h.SetReady(true)
	watchdog := make(chan struct{})
	defer close(watchdog)
	go px.watchTimeouts(watchdog)

	<-ctx.Done()
	<-reloads // a reload under way finishes before the drain
	px.drain(h.DrainContext())
	return nil
}

// loadPools reads the pools (--config's, or the flags') and validates
// them.
func (px *Proxy) loadPools() ([]Pool, error) {
	specs, warns, err := px.cfg.pools()
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		px.log.Warn("configuration: " + w.String())
	}
	return specs, nil
}

// reloadPools is the reload's load step: --config, read and validated.
func (px *Proxy) reloadPools(context.Context) ([]Pool, error) {
	if px.cfg.ConfigFile == "" {
		return nil, fmt.Errorf("%w: no --config", container.ErrUnchanged)
	}
	specs, err := px.loadPools()
	if err != nil {
		px.m.lastOK.Set(0)
	}
	return specs, err
}

// reapply is the reload's swap step. A reload that gets here as Run
// drains changes nothing.
func (px *Proxy) reapply(specs []Pool) error {
	px.mu.Lock()
	defer px.mu.Unlock()
	if !px.running {
		return errNotRunning
	}
	err := px.applyLocked(specs)
	px.m.lastOK.Set(b2f(err == nil))
	return err
}

// apply swaps the pools specs in: new pools start listening, changed
// pools get their new servers and ring, removed pools stop listening;
// servers that did not change keep their connections. On error nothing
// has changed.
func (px *Proxy) apply(specs []Pool) error {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.applyLocked(specs)
}

// applyLocked is apply with px.mu held.
func (px *Proxy) applyLocked(specs []Pool) error {
	old := map[string]*server{}
	for _, p := range px.pools() {
		for _, s := range p.servers {
			old[s.key] = s
		}
	}
	// Build everything before changing anything.
	var (
		built   []*pool
		opened  = map[string]net.Listener{}
		fail    error
		keep    = map[string]bool{}
		newKeys = map[string]bool{}
	)
	for _, spec := range specs {
		p, err := buildPool(spec, px.limits, px.log, px.m, old, px.path)
		if err != nil {
			fail = fmt.Errorf("pool %q: %w", spec.Name, err)
			break
		}
		ctr := px.counters[spec.Name]
		if ctr == nil {
			ctr = &poolCounters{}
		}
		p.counters = ctr
		built = append(built, p)
		for _, s := range p.servers {
			newKeys[s.key] = true
		}
		if l, ok := px.listeners[spec.Name]; ok && l.listen == spec.Listen && l.proto == spec.Protocol {
			keep[spec.Name] = true
			continue
		}
		ln, err := listen(spec.Listen)
		if err != nil {
			fail = fmt.Errorf("pool %q: listen %s: %w", spec.Name, spec.Listen, err)
			break
		}
		opened[spec.Name] = ln
	}
	if fail != nil {
		for _, ln := range opened {
			ln.Close()
		}
		for _, p := range built {
			for _, s := range p.servers {
				if old[s.key] == nil {
					s.retire(0)
				} else {
					s.owner.Store(px.poolOf(s))
				}
			}
		}
		return fail
	}
	// Swap.
	for _, p := range built {
		px.counters[p.cfg.Name] = p.counters
		if keep[p.cfg.Name] {
			px.listeners[p.cfg.Name].pool.Store(p)
			continue
		}
		if l, ok := px.listeners[p.cfg.Name]; ok {
			l.stop(5 * time.Second)
		}
		l := &listener{name: p.cfg.Name, listen: p.cfg.Listen, proto: p.cfg.Protocol, ln: opened[p.cfg.Name], path: px.path}
		l.pool.Store(p)
		px.listeners[p.cfg.Name] = l
		px.wg.Add(1)
		go px.accept(l)
		px.log.Info("pool listening", "pool", p.cfg.Name, "listen", l.ln.Addr().String(), "protocol", p.cfg.Protocol,
			"servers", len(p.servers), "hash", p.cfg.Hash, "distribution", p.cfg.Distribution)
	}
	names := map[string]bool{}
	for _, p := range built {
		names[p.cfg.Name] = true
	}
	for name, l := range px.listeners {
		if !names[name] {
			l.stop(5 * time.Second)
			delete(px.listeners, name)
			delete(px.counters, name)
		}
	}
	live := map[[2]string]bool{}
	for _, p := range built {
		for _, s := range p.servers {
			live[[2]string{p.cfg.Name, s.cfg.Name}] = true
		}
	}
	// Publish the new routing before retiring removed servers: a request
	// routed with the old ring is still served by its server.
	px.current.Store(&built)
	for key, s := range old {
		if !newKeys[key] {
			s.retire(10 * time.Second)
			if p := s.owner.Load(); p != nil && !live[[2]string{p.cfg.Name, s.cfg.Name}] {
				px.m.latency.DeleteLabelValues(p.cfg.Name, s.cfg.Name)
			}
		}
	}
	for _, p := range built {
		if p.cfg.Preconnect {
			for _, s := range p.servers {
				for _, c := range s.cs[:s.n2] {
					c.connectNow()
				}
			}
		}
	}
	return nil
}

// poolOf finds the running pool a server belongs to (after a failed
// reload pointed it at a pool that was not swapped in).
func (px *Proxy) poolOf(s *server) *pool {
	for _, p := range px.pools() {
		for _, x := range p.servers {
			if x == s {
				return p
			}
		}
	}
	return s.owner.Load()
}

func listen(addr string) (net.Listener, error) {
	network, a, perm := listenNetwork(addr)
	if network == "unix" {
		os.Remove(a)
	}
	ln, err := net.Listen(network, a)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := os.Chmod(a, perm); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

func (px *Proxy) accept(l *listener) {
	defer px.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			px.log.Warn("accept failed", "pool", l.name, "error", err)
			time.Sleep(acceptRetry.Delay(1))
			continue
		}
		p := l.pool.Load()
		if max := p.cfg.ClientConnections; max > 0 && p.counters.clients.Load() >= int64(max) {
			px.log.Warn("client refused: client_connections reached", "pool", l.name, "client_connections", max)
			nc.Close()
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		px.path.serve(l, p, nc)
	}
}

// stop closes the listener and lets its clients finish the batch in
// hand: their next read fails at once. After grace they are closed.
func (l *listener) stop(grace time.Duration) {
	l.ln.Close()
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.path.stopClients(l, false)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	go func() {
		select {
		case <-done:
		case <-time.After(grace):
			l.path.stopClients(l, true)
		}
	}()
}

// drain stops accepting, lets clients finish what they sent, and closes
// the server connections.
func (px *Proxy) drain(ctx context.Context) {
	px.mu.Lock()
	px.running = false
	ls := make([]*listener, 0, len(px.listeners))
	for _, l := range px.listeners {
		ls = append(ls, l)
	}
	px.mu.Unlock()
	grace := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		grace = time.Until(dl)
	}
	for _, l := range ls {
		l.stop(grace)
	}
	for _, l := range ls {
		done := make(chan struct{})
		go func() { l.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	px.wg.Wait()
	px.closeAll()
}

func (px *Proxy) closeAll() {
	for _, p := range px.pools() {
		for _, s := range p.servers {
			s.retire(0)
		}
	}
}

// checkServers is the readiness check. It probes every server without an
// open connection (an open one's state comes from its traffic), then
// requires every pool to have a live server: one whose last connection
// attempt succeeded and that is not ejected or marked down. One dead
// server does not make the proxy unready while the pool has others (its
// keys get errors, or move with auto_eject_hosts); checkEachServer names
// it on /healthz.
func (px *Proxy) checkServers(ctx context.Context) error {
	pools := px.pools()
	var wg sync.WaitGroup
	for _, p := range pools {
		for _, s := range p.servers {
			if s.open.Load() > 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var d net.Dialer
				c, err := d.DialContext(ctx, s.cfg.Network, s.cfg.Addr)
				if ctx.Err() != nil && err != nil {
					return // the check ran out of time, not the server
				}
				if err != nil {
					s.markDown(err)
					return
				}
				c.Close()
				s.markUp()
			}()
		}
	}
	wg.Wait()
	var errs []error
	for _, p := range pools {
		var why []string
		for _, s := range p.servers {
			if s.live() {
				why = nil
				break
			}
			why = append(why, s.status())
		}
		if why != nil {
			errs = append(errs, fmt.Errorf("pool %s: no live server: %s", p.cfg.Name, strings.Join(why, "; ")))
		}
	}
	return errors.Join(errs...)
}

// checkEachServer names every server that is not live (on /healthz; it
// does not affect readiness).
func (px *Proxy) checkEachServer(context.Context) error {
	var errs []error
	for _, p := range px.pools() {
		for _, s := range p.servers {
			if !s.live() && s.state.Load() != stateUnknown {
				errs = append(errs, fmt.Errorf("pool %s: %s", p.cfg.Name, s.status()))
			}
		}
	}
	return errors.Join(errs...)
}

// status says why a server is not live.
func (s *server) status() string {
	what := "not tried yet"
	switch {
	case s.state.Load() == stateDown:
		s.errMu.Lock()
		what = s.lastErr
		s.errMu.Unlock()
	case s.state.Load() == stateUp:
		what = "up"
	}
	if s.down.Load() {
		what += ", ejected or marked down until its retry"
	}
	return fmt.Sprintf("server %s (%s): %s", s.cfg.Name, s.cfg.Addr, what)
}

// watchTimeouts closes a server connection whose oldest request has
// waited longer than its pool's timeout; the requests on it then fail with
// an error naming the server.
func (px *Proxy) watchTimeouts(stop <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			px.path.checkTimeouts(now)
		}
	}
}
