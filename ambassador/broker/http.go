package broker

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/internal/httpproxy"
	"github.com/podkit/podkit/internal/upstream"
)

// headerTimeout bounds a request head once its first byte came.
const headerTimeout = 10 * time.Second

// httpMode is an http upstream's engine, one per generation: the HTTP/1
// engine with a keep-alive pool per endpoint address (kept across
// discovery refreshes), and an HTTP/2 server for h2c connections whose
// streams go through the same engine.
type httpMode struct {
	b     *Broker
	g     *gen
	proxy *httpproxy.Proxy
	h2    *http.Server
	h2ln  *connListener

	mu       sync.Mutex
	backends map[string]*httpproxy.Backend
	waiting  map[*tracker]struct{}
	draining atomic.Bool
}

func (b *Broker) newHTTP(g *gen) *httpMode {
	h := &httpMode{b: b, g: g, backends: map[string]*httpproxy.Backend{}, waiting: map[*tracker]struct{}{}}
	b.httpMu.Lock()
	b.https = append(b.https, h)
	b.httpMu.Unlock()
	u := g.spec
	dur := b.m.duration.WithLabelValues(u.Name)
	h.proxy = httpproxy.New(httpproxy.Config{
		Name:            "broker: upstream " + strconv.Quote(u.Name),
		Pick:            h.pick,
		IdleTimeout:     u.idle(),
		HeaderTimeout:   headerTimeout,
		ResponseTimeout: u.Timeouts.Request,
		Served:          func(_ string, d time.Duration) { dur.Observe(d.Seconds()) },
		Logger:          b.logger().With("upstream", u.Name),
	})
	h.h2ln = newConnListener()
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h.h2 = &http.Server{
		Handler:           h.proxy,
		Protocols:         &protos,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       u.idle(),
		ErrorLog:          log.New(discard{}, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return httpproxy.WithHeader(ctx, forwarded(c.RemoteAddr()))
		},
	}
	go h.h2.Serve(h.h2ln)
	return h
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// forwarded is the X-Forwarded-* lines for a client.
func forwarded(remote net.Addr) []byte {
	ip := "unknown"
	if ta, ok := remote.(*net.TCPAddr); ok {
		ip = ta.IP.String()
	}
	return []byte("X-Forwarded-For: " + ip + "\r\nX-Forwarded-Proto: http\r\n")
}

// reqState is a request's state across its attempts.
type reqState struct {
	tried []*upstream.Endpoint
}

// pick is the engine's Pick: an endpoint from the pool for each attempt
// at a request, and the report of how it went.
func (h *httpMode) pick(r *httpproxy.Request, attempt int) (*httpproxy.Backend, func(httpproxy.Outcome) bool, error) {
	g, m := h.g, h.b.m
	u := g.spec
	st, _ := r.Data().(*reqState)
	if st == nil {
		st = &reqState{}
		r.SetData(st)
	}
	hint := upstream.Hint{Kind: upstream.Request, Tried: st.tried}
	if u.Balance == string(upstream.RingHash) {
		if name := u.hashHeader(); name != "" {
			if v := r.Header(name); v != nil {
				hint.Key, hint.HasKey = upstream.HashKey(v), true
			}
		} else if host, _, err := net.SplitHostPort(r.RemoteAddr()); err == nil {
			hint.Key, hint.HasKey = upstream.HashString(host), true
		}
	}
	e, err := g.pool.Acquire(hint)
	if err != nil {
		if attempt == 0 {
			reason := reasonNoEndpoint
			if errors.Is(err, upstream.ErrOverloaded) {
				reason = reasonOverloaded
			}
			m.rejected.WithLabelValues(u.Name, reason).Inc()
		}
		return nil, nil, &httpproxy.StatusError{Code: http.StatusServiceUnavailable, Err: err}
	}
	if slices.Contains(st.tried, e) {
		// No endpoint left that this request has not tried.
		g.pool.Release(e, upstream.Request, upstream.ClientGone)
		return nil, nil, errors.New("no other endpoint to retry on")
	}
	st.tried = append(st.tried, e)
	addr := e.Addr()
	done := func(o httpproxy.Outcome) bool {
		res, class := upstream.OK, "error"
		switch {
		case o.Status >= 100:
			class = strconv.Itoa(o.Status/100) + "xx"
		}
		switch {
		case o.Failure == "dial":
			res = upstream.ConnectFailed
			m.connectErrors.WithLabelValues(u.Name, addr).Inc()
		case o.Failure == "timeout":
			res = upstream.Timeout
		case o.Status >= 500:
			res = upstream.Status5xx
		case o.Failure == "client":
			res = upstream.ClientGone
		case o.Failure != "" && o.Status == 0:
			res = upstream.Reset
		}
		m.requests.WithLabelValues(u.Name, addr, class).Inc()
		g.pool.Release(e, upstream.Request, res)
		return o.Retryable && attempt < u.Retries.Attempts && g.pool.RetryAllowed()
	}
	return h.backend(addr), done, nil
}

// backend is the engine's backend for an endpoint address, with its
// keep-alive pool.
func (h *httpMode) backend(addr string) *httpproxy.Backend {
	h.mu.Lock()
	defer h.mu.Unlock()
	if be, ok := h.backends[addr]; ok {
		return be
	}
	u := h.g.spec
	be := httpproxy.NewBackend("tcp", addr, u.Timeouts.Connect)
	dial, connect := h.g.dial, u.Timeouts.Connect
	m, name := h.b.m, u.Name
	be.Dial = func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), connect)
		defer cancel()
		c, err := dial(ctx, "tcp", addr)
		if err == nil {
			m.connections.WithLabelValues(name, addr).Inc()
		}
		return c, err
	}
	h.backends[addr] = be
	return be
}

// forget drops the backend of an address discovery no longer lists.
func (h *httpMode) forget(addr string) {
	h.mu.Lock()
	be := h.backends[addr]
	delete(h.backends, addr)
	h.mu.Unlock()
	if be != nil {
		be.CloseIdle()
	}
}

// closeIdle closes every backend's idle connections.
func (h *httpMode) closeIdle() {
	for _, be := range h.backendList() {
		be.CloseIdle()
	}
}

// backendList is every endpoint's backend, as of now.
func (h *httpMode) backendList() []*httpproxy.Backend {
	h.mu.Lock()
	defer h.mu.Unlock()
	bes := make([]*httpproxy.Backend, 0, len(h.backends))
	for _, be := range h.backends {
		bes = append(bes, be)
	}
	return bes
}

// abort closes every connection of the engine, client and backend: the
// drain deadline has passed.
func (h *httpMode) abort() {
	h.drain()
	h.h2.Close()
	for _, be := range h.backendList() {
		be.Abort()
	}
}

// drain makes keep-alive connections close after the response they are
// sending, wakes those waiting for a request so they close now, and
// sends HTTP/2 connections GOAWAY.
func (h *httpMode) drain() {
	if h.draining.Swap(true) {
		return
	}
	h.proxy.Drain()
	h.mu.Lock()
	for t := range h.waiting {
		t.wake()
	}
	h.mu.Unlock()
	h.h2ln.Close()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if h.h2.Shutdown(ctx) != nil {
			h.h2.Close()
		}
	}()
}

// serve serves one client connection: h2c (prior knowledge) through the
// HTTP/2 server, HTTP/1 through the engine.
func (h *httpMode) serve(s *svc, c net.Conn) {
	active := h.b.m.active.WithLabelValues(h.g.spec.Name)
	active.Inc()
	defer active.Dec()
	if isH2C(c, headerTimeout) {
		wc := &watchedConn{Conn: c, closed: make(chan struct{})}
		if h.h2ln.hand(wc) {
			<-wc.closed
		}
		return
	}
	t := &tracker{h: h, conn: c}
	h.mu.Lock()
	h.waiting[t] = struct{}{}
	h.mu.Unlock()
	if h.draining.Load() {
		t.wake() // a drain that began before the connection was listed
	}
	h.proxy.ServeConn(httpproxy.Client{Conn: c, Tracker: t, Header: forwarded(c.RemoteAddr())})
	h.mu.Lock()
	delete(h.waiting, t)
	h.mu.Unlock()
}

// tracker follows an HTTP/1 connection's waits for a next request, so
// a drain can wake it: the engine then sees the drain and closes it.
type tracker struct {
	h    *httpMode
	conn net.Conn
	mu   sync.Mutex
	idle bool
	w    httpproxy.Waker
}

func (t *tracker) Idle(idle bool) bool {
	t.mu.Lock()
	t.idle = idle
	t.mu.Unlock()
	return !(idle && t.h.draining.Load())
}

func (t *tracker) Waiting(w httpproxy.Waker) bool {
	t.mu.Lock()
	t.w = w
	t.mu.Unlock()
	return w == nil || !t.h.draining.Load()
}

// wake ends a wait for a next request.
func (t *tracker) wake() {
	t.mu.Lock()
	defer t.mu.Unlock()
	past := time.Unix(1, 0)
	if t.idle {
		t.conn.SetReadDeadline(past)
	}
	if t.w != nil {
		t.w.SetReadDeadline(past)
	}
}

// watchedConn tells when the HTTP/2 server closed it.
type watchedConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// connListener hands connections to an http.Server.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// hand gives c to the server; false if the listener is closed (c is
// then closed).
func (l *connListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		c.Close()
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
