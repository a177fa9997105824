package shard

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/ambassador/shard/internal/ketama"
)

// Error kinds counted by podkit_shard_server_errors_total.
const (
	kindConnect    = "connect"
	kindConnection = "connection"
	kindTimeout    = "timeout"
	kindDown       = "down"
)

type limits struct {
	maxBulk int
}

// pool is the running form of a Pool: its servers and the current ring.
// A reload builds a new pool value; servers whose spec and connection
// settings did not change are carried over with their connections.
type pool struct {
	cfg    Pool
	hash   ketama.HashFunc
	limits limits
	log    *slog.Logger

	servers  []*server // twemproxy's order (sorted by name)
	ring     atomic.Pointer[ketama.Ring]
	ringMu   sync.Mutex
	counters *poolCounters
}

// server is one backend server and its connections.
type server struct {
	owner atomic.Pointer[pool]
	cfg   Server
	key   string  // identity across reloads
	cs    []*conn // RESP2 (or memcached) connections, then RESP3 ones
	n2    int     // how many of cs are RESP2 or memcached
	log   *slog.Logger

	failures  atomic.Int32
	state     atomic.Uint32 // what the last connection attempt found: stateUnknown, stateUp, stateDown
	lastErr   string        // why the last attempt failed (errMu)
	down      atomic.Bool   // ejected (auto_eject_hosts) or marked down (fail_closed)
	downMu    sync.Mutex
	downUntil time.Time
	retired   atomic.Bool

	requests atomic.Uint64 // replies read (twemproxy's responses)
	open     atomic.Int64
	// twemproxy's stats (see stats.go)
	sent      atomic.Uint64 // requests written
	sentBytes atomic.Uint64
	respBytes atomic.Uint64
	connects  atomic.Uint64 // connections made
	eofs      atomic.Uint64 // connections the server closed
	connErrs  atomic.Uint64 // connections that failed or broke
	timeouts  atomic.Uint64 // connections closed by the timeout
	ejectedAt atomic.Int64  // when last ejected or marked down, µs since the epoch
	ejections atomic.Uint64
	errMu     sync.Mutex
	errs      map[string]uint64
	latency   prometheus.Observer
}

// serverKey identifies a server with its connection settings: a reload
// that changes neither keeps the server's connections.
func serverKey(p Pool, s Server) string {
	return fmt.Sprintf("%s|%s|%s|%s|%d|%s|%v|%d|%s", p.Name, s.Spec, s.Network, p.Protocol, p.RedisDB, p.RedisAuth, p.TCPKeepalive, p.ServerConnections, p.Timeout)
}

// buildPool builds the running pool, reusing servers from old by key. The
// data path says how many connections a server gets and owns each (with
// event loops, each loop has its own connections to each server).
func buildPool(cfg Pool, lim limits, log *slog.Logger, m *metrics, old map[string]*server, dp dataPath) (*pool, error) {
	h, err := ketama.Hash(cfg.Hash)
	if err != nil {
		return nil, err
	}
	p := &pool{cfg: cfg, hash: h, limits: lim, log: log.With("pool", cfg.Name)}
	specs := append([]Server(nil), cfg.Servers...)
	ring := make([]ketama.Server, len(specs))
	for i, s := range specs {
		ring[i] = ketama.Server{Name: s.Name, Weight: uint32(s.Weight)}
	}
	// twemproxy keeps servers sorted by name; the order decides modula.
	order := make([]int, len(specs))
	for i := range order {
		order[i] = i
	}
	sortByName(order, specs)
	for _, i := range order {
		s := specs[i]
		key := serverKey(cfg, s)
		srv := old[key]
		if srv == nil {
			srv = &server{cfg: s, key: key, errs: map[string]uint64{}, log: p.log.With("server", s.Name, "addr", s.Addr)}
			n := dp.conns(cfg.ServerConnections)
			srv.n2 = n
			if cfg.Protocol == Redis {
				n *= 2
			}
			for i := range n {
				c := &conn{srv: srv, resp3: i >= srv.n2}
				dp.own(c, i)
				srv.cs = append(srv.cs, c)
			}
			srv.latency = m.latency.WithLabelValues(cfg.Name, s.Name)
		}
		srv.owner.Store(p)
		p.servers = append(p.servers, srv)
	}
	p.rebuild()
	return p, nil
}

func sortByName(order []int, specs []Server) {
	tmp := make([]ketama.Server, len(order))
	for i, o := range order {
		tmp[i] = ketama.Server{Name: specs[o].Name, Weight: uint32(o)} // weight carries the index
	}
	ketama.SortServers(tmp)
	for i := range order {
		order[i] = int(tmp[i].Weight)
	}
}

// rebuild recomputes the ring from the servers that are not ejected.
func (p *pool) rebuild() {
	p.ringMu.Lock()
	defer p.ringMu.Unlock()
	servers := make([]ketama.Server, len(p.servers))
	live := make([]bool, len(p.servers))
	for i, s := range p.servers {
		servers[i] = ketama.Server{Name: s.cfg.Name, Weight: uint32(s.cfg.Weight)}
		live[i] = !(p.cfg.AutoEjectHosts && s.down.Load())
	}
	r, err := ketama.NewRing(p.cfg.Distribution, servers, live)
	if err != nil {
		p.log.Error("cannot build the ring", "error", err)
		return
	}
	p.ring.Store(r)
}

// pick returns the server for a key, or nil when no server is live.
func (p *pool) pick(key []byte) *server {
	r := p.ring.Load()
	var h uint32
	if len(p.servers) > 1 && len(key) > 0 {
		h = p.hash(ketama.HashTag(key, p.cfg.HashTag))
	}
	i := r.Pick(h)
	if i < 0 {
		return nil
	}
	return p.servers[i]
}

// pickMeta is pick for a meta command key, base64-decoded when the
// request has the b flag.
func (p *pool) pickMeta(key []byte, b64 bool) *server {
	if b64 {
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(key)))
		n, err := base64.StdEncoding.Decode(dec, key)
		if err == nil {
			key = dec[:n]
		}
	}
	return p.pick(key)
}

// conn returns the server connection for client number id: the first
// half of cs speaks RESP2, the second (Redis only, dialled when first
// used) RESP3.
func (s *server) conn(id uint32, resp3 bool) *conn {
	cs := s.cs[:s.n2]
	if resp3 && len(s.cs) > s.n2 {
		cs = s.cs[s.n2:]
	}
	if len(cs) == 1 {
		return cs[0]
	}
	return cs[id%uint32(len(cs))]
}

// What the last connection attempt to a server (a request's, or the
// readiness probe's) found.
const (
	stateUnknown uint32 = iota // not tried yet
	stateUp
	stateDown
)

// markUp records a connection made or a reply read.
func (s *server) markUp() {
	if s.state.Load() != stateUp {
		s.state.Store(stateUp)
	}
}

// markDown records a failed connection attempt, a lost connection or a
// timeout.
func (s *server) markDown(err error) {
	s.errMu.Lock()
	s.lastErr = err.Error()
	s.errMu.Unlock()
	s.state.Store(stateDown)
}

// live reports whether the server can take requests: its last connection
// attempt succeeded and it is not ejected or marked down.
func (s *server) live() bool { return s.state.Load() == stateUp && !s.down.Load() }

// failure counts one failure (a connection that could not be made, broke
// or timed out); after server_failure_limit in a row the server is
// ejected (auto_eject_hosts) or marked down (fail_closed) for
// server_retry_timeout.
func (s *server) failure(err error) {
	s.markDown(err)
	p := s.owner.Load()
	if !p.cfg.AutoEjectHosts && !p.cfg.FailClosed {
		s.log.Warn("server failed", "error", err)
		return
	}
	if s.down.Load() {
		return
	}
	if n := s.failures.Add(1); n < int32(p.cfg.ServerFailureLimit) {
		s.log.Warn("server failed", "error", err, "failures", n, "limit", p.cfg.ServerFailureLimit)
		return
	}
	s.failures.Store(0)
	retry := p.cfg.ServerRetryTimeout
	s.downMu.Lock()
	s.downUntil = time.Now().Add(retry)
	s.downMu.Unlock()
	if s.down.Swap(true) {
		return
	}
	s.ejections.Add(1)
	s.ejectedAt.Store(time.Now().UnixMicro())
	if p.cfg.AutoEjectHosts {
		s.log.Warn("server ejected from the ring; its keys go to the other servers", "error", err, "retry_in", retry.String())
		p.rebuild()
	} else {
		s.log.Warn("server marked down; its keys get errors (fail_closed)", "error", err, "retry_in", retry.String())
	}
	time.AfterFunc(retry, func() {
		s.down.Store(false)
		s.log.Info("retrying server")
		if cur := s.owner.Load(); cur.cfg.AutoEjectHosts {
			cur.rebuild()
		}
	})
}

// success resets the failure count.
func (s *server) success() {
	s.markUp()
	if s.failures.Load() != 0 {
		s.failures.Store(0)
	}
}

// sentBatch counts n requests written in one write of size bytes.
func (s *server) sentBatch(n, size int) {
	s.sent.Add(uint64(n))
	s.sentBytes.Add(uint64(size))
}

// connEnded counts a server connection that ended: timed out, closed by
// the server, closed by the proxy (not counted), or broken.
func (s *server) connEnded(err error, timedOut bool) {
	switch {
	case timedOut:
		s.timeouts.Add(1)
	case errors.Is(err, io.EOF):
		s.eofs.Add(1)
	case err == nil || errors.Is(err, net.ErrClosed):
	default:
		s.connErrs.Add(1)
	}
}

func (s *server) countError(kind string, n int) {
	s.errMu.Lock()
	s.errs[kind] += uint64(n)
	s.errMu.Unlock()
}

// observe records a completed request and the size of its reply.
func (s *server) observe(r *request, n int) {
	s.requests.Add(1)
	s.respBytes.Add(uint64(n))
	s.success()
	s.latency.Observe(time.Since(r.sent).Seconds())
}

// failAll completes requests with an error naming the server.
func (s *server) failAll(reqs []*request, reason, kind string) {
	if len(reqs) == 0 {
		return
	}
	s.countError(kind, len(reqs))
	p := s.owner.Load()
	msg := s.errorReply(p.cfg.Protocol, reason)
	for _, r := range reqs {
		r.complete(msg, true)
	}
}

func (s *server) errorReply(protocol, reason string) []byte {
	text := fmt.Sprintf("podkit shard: server %s (%s): %s", s.cfg.Name, s.cfg.Addr, reason)
	if protocol == Redis {
		return []byte("-ERR " + text + "\r\n")
	}
	return []byte("SERVER_ERROR " + text + "\r\n")
}

// downReply is the error for a key whose server is marked down.
func (s *server) downReply(protocol string) []byte {
	s.downMu.Lock()
	left := time.Until(s.downUntil).Round(time.Millisecond)
	s.downMu.Unlock()
	s.countError(kindDown, 1)
	return s.errorReply(protocol, fmt.Sprintf("down after %d failures, retrying in %s (fail_closed)", s.owner.Load().cfg.ServerFailureLimit, max(left, 0)))
}

// retireSettle is how long a retired server keeps its connections before
// they may close when idle: on the goroutine-per-client path (off Linux)
// a client that routed a request with the previous ring just before a
// reload may not have queued it yet. (An event loop routes and queues in
// one step, and checks busy in the loop.)
const retireSettle = 250 * time.Millisecond

// retire closes the server's connections once nothing is in flight on
// them (after retireSettle), or after grace.
func (s *server) retire(grace time.Duration) {
	s.retired.Store(true)
	go func() {
		deadline := time.Now().Add(grace)
		if grace > 0 {
			time.Sleep(min(retireSettle, grace))
		}
		for time.Now().Before(deadline) {
			busy := false
			for _, c := range s.cs {
				busy = busy || c.busy()
			}
			if !busy {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, c := range s.cs {
			c.close()
		}
	}()
}
