// Package tlsproxy adds HTTPS to a legacy service: `podkit tls-proxy`
// terminates TLS (1.2 with AEAD suites only, or 1.3) and forwards to a
// target on loopback or a unix socket in the same pod.
//
// In http mode (the default) it speaks HTTP/1.1 and HTTP/2 to clients and
// HTTP/1.1 with pooled keep-alive connections to the target, passes
// WebSocket upgrades through, sets X-Forwarded-For, -Proto and -Host
// (stripping any copies the client sent), and can redirect plain HTTP to
// https. In tcp mode it is a layer-4 tunnel: TLS in, bytes out, optionally
// preceded by a PROXY protocol v2 header.
//
// Certificates come from PEM files and are reloaded on SIGHUP and when the
// files change, without dropping connections; a bad new pair is rejected
// and the old one kept. With --client-ca it requires client certificates
// (mutual TLS), optionally restricted by CN, DNS SAN or URI SAN, and in
// http mode forwards the verified identity in X-Forwarded-Client-Cert.
// Readiness follows a health check of the target.
package tlsproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/httpproxy"
	"github.com/podkit/podkit/internal/rawsock"
	"github.com/podkit/podkit/internal/retry"
)

// Proxy is the tls-proxy component.
type Proxy struct {
	cfg    Config
	target target
	certs  *certStore
	m      *metrics
	log    *slog.Logger

	addr  container.BoundAddr // the TLS listener's, once Run is serving
	ready chan struct{}

	engine  *httpproxy.Proxy   // the HTTP/1.1 engine (http mode), made by Run
	backend *httpproxy.Backend // the target, with its keep-alive pool
	h2      *http.Server
	h2ln    *chanListener
	stopped atomic.Bool // set when Run's context ends: finish and close

	connMu sync.Mutex
	conns  map[*trackedConn]struct{}
	connWG sync.WaitGroup

	reloader *container.Reloader[*material] // the certificates'

	gc *gcSettings // applied by Command, for the log

	rejects *rejectLog

	certHeaderLower string
}

var (
	_ container.Component  = (*Proxy)(nil)
	_ container.Configured = (*Proxy)(nil)
)

// New validates cfg, loads the certificates and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, _, _ := parseTarget(cfg.Target)
	var alpn []string
	if cfg.Mode == ModeHTTP {
		alpn = []string{"h2", "http/1.1"}
	}
	p := &Proxy{
		cfg:    cfg,
		target: t,
		m:      newMetrics(),
		log:    cfg.Logger,
		ready:  make(chan struct{}),
		conns:  map[*trackedConn]struct{}{},

		rejects: newRejectLog(),

		certHeaderLower: strings.ToLower(cfg.ClientCertHeader),
	}
	if p.log == nil {
		p.log = slog.Default().With("component", "tls-proxy")
	}
	// Made before the first load, so that a change during it is seen.
	p.reloader = container.NewReloader(container.Reload[*material]{
		Subsystem: "tlsproxy",
		What:      "certificate",
		Files:     func() []string { return certFiles(&p.cfg) },
		Interval:  cfg.WatchInterval,
		Load:      func(ctx context.Context) (*material, error) { return p.certs.reload(ctx) },
		Apply:     p.installCert,
		Attrs: func(m *material) []any {
			return []any{"subject", m.Leaf().Subject.String(), "dns", m.Leaf().DNSNames, "uris", sanURIs(m.Leaf().URIs),
				"not_after", m.Leaf().NotAfter.UTC().Format(time.RFC3339)}
		},
		Logger: p.log,
	})
	certs, err := newCertStore(&p.cfg, alpn)
	if err != nil {
		return nil, err
	}
	p.certs = certs
	return p, nil
}

// Command is the `podkit tls-proxy` subcommand.
func Command() cli.Command {
	return container.Command("tls-proxy",
		"add HTTPS (or mutual TLS) in front of a legacy service in the same pod",
		"--target HOST:PORT|unix:/PATH (--cert FILE --key FILE | --self-signed) [--mode http|tcp] [flags]",
		func(fs *flag.FlagSet) container.BuildFunc {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(args []string) (container.Component, error) {
				if err := container.NoArgs(args); err != nil {
					return nil, err
				}
				p, err := New(cfg)
				if err != nil {
					var ue *cli.UsageError
					if errors.Is(err, ErrBadCertificate) && !errors.As(err, &ue) {
						// Unreadable or bad files: name them, exit 2 too.
						return nil, &cli.UsageError{Msg: err.Error()}
					}
					return nil, err
				}
				gc := applyGC(p.cfg.GCPercent, "/sys/fs/cgroup")
				p.gc = &gc
				return p, nil
			}
		})
}

// Name implements container.Component.
func (p *Proxy) Name() string { return "tls-proxy" }

// EffectiveConfig implements container.Configured.
func (p *Proxy) EffectiveConfig() any { return p.cfg }

// Addr returns the TLS listener's address once Run is serving, or nil.
func (p *Proxy) Addr() net.Addr { return p.addr.Addr() }

// Ready is closed once Run is serving.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Run implements container.Component: it serves until ctx ends, then stops
// accepting, lets open connections finish until h.DrainContext() ends and
// closes what is left.
func (p *Proxy) Run(ctx context.Context, h *container.Host) error {
	p.log = h.Logger()
	if err := p.m.register(h.Registerer()); err != nil {
		return err
	}
	p.setCertMetrics()
	if gc := p.gc; gc != nil {
		p.log.Debug("garbage collector", "gc_percent", gc.percent, "memory_limit", gc.memoryLimit, "memory_limit_from", gc.limitFrom)
	}
	ln, err := container.Listen("--listen "+p.cfg.Listen, p.cfg.Listen, p.cfg.Listener)
	if err != nil {
		return err
	}
	defer ln.Close()

	var redirect *http.Server
	if p.cfg.RedirectHTTP != "" {
		rln, err := container.Listen("--redirect-http "+p.cfg.RedirectHTTP, p.cfg.RedirectHTTP, nil)
		if err != nil {
			return err
		}
		redirect = &http.Server{Handler: redirectHandler(ln.Addr()), ReadHeaderTimeout: p.cfg.HeaderTimeout, IdleTimeout: p.cfg.IdleTimeout}
		go redirect.Serve(rln)
		defer redirect.Close()
	}

	h.AddCheck(container.Check{
		Name:   "target",
		Period: p.cfg.TargetHealthPeriod,
		Ready:  true,
		Func:   p.checkTarget,
	})

	// SIGHUP and file changes reload the certificates.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	reloads, rerr := p.reloader.Start(watchCtx, h)
	if rerr != nil {
		stopWatch()
		return rerr
	}
	defer func() { stopWatch(); <-reloads }()

	if p.cfg.Mode == ModeHTTP {
		p.engine = p.newEngine()
		p.startH2()
	}

	p.addr.Set(ln)
	acceptDone := make(chan error, 1)
	go func() { acceptDone <- p.accept(ctx, h, ln) }()
	h.SetReady(true)
	close(p.ready)
	p.log.Info("serving", "listen", ln.Addr().String(), "target", p.target.String(), "mode", p.cfg.Mode,
		"mtls", p.cfg.ClientCA != "", "cert_not_after", p.certs.current().Leaf().NotAfter.UTC().Format(time.RFC3339))

	select {
	case <-ctx.Done():
	case err = <-acceptDone:
	}
	h.SetReady(false)
	ln.Close()
	if redirect != nil {
		redirect.Close()
	}
	p.shutdown(h.DrainContext())
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// accept runs the accept loop until the listener closes.
func (p *Proxy) accept(ctx context.Context, h *container.Host, ln net.Listener) error {
	var sem chan struct{}
	if p.cfg.MaxConns > 0 {
		sem = make(chan struct{}, p.cfg.MaxConns)
	}
	failures := 0 // accept errors in a row
	for {
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		if h.Paused() {
			if err := h.WaitResumed(ctx); err != nil {
				return nil
			}
		}
		c, err := ln.Accept()
		if err != nil {
			if sem != nil {
				<-sem
			}
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				failures++
				delay := acceptBackoff.Delay(failures)
				p.log.Warn("accept error; retrying", "error", err, "delay", delay.String())
				time.Sleep(delay)
				continue
			}
			return err
		}
		failures = 0
		tc := &trackedConn{Conn: c, sock: rawsock.New(c), p: p, scan: p.cfg.Mode == ModeHTTP}
		if sem != nil {
			tc.release = func() { <-sem }
		}
		p.m.accepted.Inc()
		p.m.open.Inc()
		if !p.track(tc) {
			tc.Close()
			continue
		}
		go p.serveConn(tc)
	}
}

// acceptBackoff spaces accepts that fail for want of a resource (file
// descriptors, memory): 5ms, doubling, at most 1s.
var acceptBackoff = retry.Policy{Initial: 5 * time.Millisecond, Max: time.Second}

func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// serveConn handshakes and hands the connection to its mode.
func (p *Proxy) serveConn(raw *trackedConn) {
	handedOff := false
	defer func() {
		if !handedOff {
			raw.Close()
		}
	}()
	tc := tls.Server(raw, p.certs.config())
	start := time.Now()
	raw.SetDeadline(start.Add(p.cfg.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		reason := handshakeReason(err)
		p.m.handshakeErrs.WithLabelValues(reason).Inc()
		if reason == "client_cert" || reason == "not_allowed" {
			p.rejects.log(p.log, reason, raw.RemoteAddr().String(), err)
		} else {
			p.log.Debug("handshake failed", "remote", raw.RemoteAddr().String(), "reason", reason, "error", err)
		}
		return
	}
	p.m.handshakeDur.Observe(time.Since(start).Seconds())
	raw.handshook = start
	raw.SetDeadline(time.Time{})
	if p.cfg.Mode == ModeTCP {
		p.serveTCP(tc, raw)
		return
	}
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == "h2" {
		if p.h2ln.deliver(tc) {
			handedOff = true
		}
		return
	}
	p.serveH1(tc, raw, &state)
}

func handshakeReason(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, ErrClientNotAllowed):
		return "not_allowed"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) || strings.Contains(err.Error(), "client didn't provide a certificate") || strings.Contains(err.Error(), "certificate") {
		return "client_cert"
	}
	return "protocol"
}

// trackedConn is a client connection: it counts bytes (TLS records) and
// releases its --max-conns slot when closed.
type trackedConn struct {
	net.Conn
	sock      io.ReadWriter // Conn's reads and writes (see rawSock)
	p         *Proxy
	release   func()
	once      sync.Once
	handshook time.Time

	in, out atomic.Int64

	// probe makes Read return errNothingBuffered instead of reading
	// the socket (h1client.Pending); only the connection's goroutine
	// reads.
	probe bool
	recs  recordScan // with scan: TLS record boundaries in what Read returned
	scan  bool

	// For graceful stop of HTTP/1.1 connections.
	mu   sync.Mutex
	idle bool
	wait httpproxy.Waker // where an idle connection waits, if not in Read
}

const flushBytes = 256 << 10

func (c *trackedConn) Read(b []byte) (int, error) {
	if c.probe {
		return 0, errNothingBuffered
	}
	n, err := c.sock.Read(b)
	if c.scan {
		c.recs.scan(b[:n])
	}
	if v := c.in.Add(int64(n)); v >= flushBytes {
		c.p.m.bytesIn.Add(float64(c.in.Swap(0)))
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.sock.Write(b)
	if v := c.out.Add(int64(n)); v >= flushBytes {
		c.p.m.bytesOut.Add(float64(c.out.Swap(0)))
	}
	return n, err
}

// Close closes the connection once and settles its accounting.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		p := c.p
		p.untrack(c)
		p.m.open.Dec()
		if !c.handshook.IsZero() {
			p.m.connDur.Observe(time.Since(c.handshook).Seconds())
		}
		if c.release != nil {
			c.release()
		}
		// A Read or Write still returning after Close adds to the
		// counters below but is not flushed; metrics tolerate that.
		p.m.bytesIn.Add(float64(c.in.Swap(0)))
		p.m.bytesOut.Add(float64(c.out.Swap(0)))
	})
	return err
}

// wake ends a wait for the next request (the caller holds c.mu).
func (c *trackedConn) wakeLocked() {
	c.Conn.SetReadDeadline(aLongTimeAgo)
	if c.wait != nil {
		c.wait.SetReadDeadline(aLongTimeAgo)
	}
}

// errNothingBuffered is what a probing Read returns (see trackedConn.probe).
// crypto/tls passes it on without failing the connection, as it does a
// deadline's timeout: it is a temporary net.Error.
var errNothingBuffered net.Error = nothingBuffered{}

type nothingBuffered struct{}

func (nothingBuffered) Error() string   { return "nothing buffered" }
func (nothingBuffered) Timeout() bool   { return true }
func (nothingBuffered) Temporary() bool { return true }

// recordScan follows TLS record boundaries in the bytes read from a
// client, so that the HTTP/1.1 path can tell, without asking crypto/tls
// (which costs an allocation), that it holds no record not yet decrypted.
type recordScan struct {
	hdr  [5]byte
	hdrN int // bytes of the next record's header seen
	rem  int // bytes of the current record still to come
	// whole: the last read held exactly one record, from its first byte
	// to its last. crypto/tls reads only when it has no whole record
	// left, so it then decrypted that record and holds no more.
	whole bool
}

func (r *recordScan) scan(b []byte) {
	aligned := r.hdrN == 0 && r.rem == 0
	records := 0
	for len(b) > 0 {
		if r.rem > 0 {
			k := min(r.rem, len(b))
			r.rem -= k
			b = b[k:]
			if r.rem == 0 {
				records++
			}
			continue
		}
		k := copy(r.hdr[r.hdrN:], b)
		r.hdrN += k
		b = b[k:]
		if r.hdrN == len(r.hdr) {
			r.hdrN = 0
			r.rem = int(r.hdr[3])<<8 | int(r.hdr[4])
			if r.rem == 0 {
				records++
			}
		}
	}
	r.whole = aligned && records == 1 && r.hdrN == 0 && r.rem == 0
}

func (p *Proxy) track(c *trackedConn) bool {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.stopped.Load() {
		return false
	}
	p.conns[c] = struct{}{}
	p.connWG.Add(1)
	return true
}

func (p *Proxy) untrack(c *trackedConn) {
	p.connMu.Lock()
	if _, ok := p.conns[c]; ok {
		delete(p.conns, c)
		p.connWG.Done()
	}
	p.connMu.Unlock()
}

// aLongTimeAgo is a deadline in the past, to wake blocked reads.
var aLongTimeAgo = time.Unix(1, 0)

// shutdown closes idle connections at once, lets active ones finish until
// ctx ends, then closes the rest.
func (p *Proxy) shutdown(ctx context.Context) {
	p.stopped.Store(true)
	if p.engine != nil {
		p.engine.Drain()
	}
	if p.h2 != nil {
		go p.h2.Shutdown(ctx)
	}
	p.connMu.Lock()
	for c := range p.conns {
		c.mu.Lock()
		if c.idle {
			c.wakeLocked()
		}
		c.mu.Unlock()
	}
	open := len(p.conns)
	p.connMu.Unlock()
	if open > 0 {
		p.log.Info("draining connections", "open", open)
	}
	done := make(chan struct{})
	go func() { p.connWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.connMu.Lock()
		n := len(p.conns)
		for c := range p.conns {
			c.Conn.Close()
			c.mu.Lock()
			c.wakeLocked() // a wait on a duplicate descriptor does not see the close
			c.mu.Unlock()
		}
		p.connMu.Unlock()
		p.log.Warn("closed connections still open at the drain deadline", "closed", n)
		<-done
	}
	if p.h2 != nil {
		p.h2.Close()
	}
	if p.backend != nil {
		p.backend.CloseIdle()
	}
}

// Reload re-reads the certificate files now, as SIGHUP does. On error the
// certificate being served is kept.
func (p *Proxy) Reload() error { return p.reloader.Reload(context.Background()) }

// installCert is a reload's swap step.
func (p *Proxy) installCert(m *material) error {
	p.certs.install(m)
	p.setCertMetrics()
	return nil
}

func (p *Proxy) setCertMetrics() {
	p.m.certExpiry.Set(float64(p.certs.current().Leaf().NotAfter.Unix()))
}

// checkTarget is the readiness check: the --target-health URL answers
// 2xx/3xx, or the target accepts a connection.
func (p *Proxy) checkTarget(ctx context.Context) error {
	if p.cfg.TargetHealth != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.TargetHealth, nil)
		if err != nil {
			return err
		}
		resp, err := healthClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("%s answered %s", p.cfg.TargetHealth, resp.Status)
		}
		return nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, p.target.network, p.target.addr)
	if err != nil {
		return err
	}
	if p.cfg.ProxyProtocol {
		// A health check is what the LOCAL command is for: the target
		// then does not log a connection without a header.
		if dl, ok := ctx.Deadline(); ok {
			c.SetWriteDeadline(dl)
		}
		if _, err := c.Write(proxyHeaderLocal()); err != nil {
			c.Close()
			return err
		}
	}
	return c.Close()
}

var healthClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// redirectHandler 301s every request to the same host and path on https,
// at the TLS listener's port.
func redirectHandler(tlsAddr net.Addr) http.Handler {
	port := ""
	if ta, ok := tlsAddr.(*net.TCPAddr); ok && ta.Port != 443 {
		port = fmt.Sprint(ta.Port)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			http.Error(w, "missing Host header", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") { // IPv6 literal
			host = "[" + strings.Trim(host, "[]") + "]"
		}
		if port != "" {
			host += ":" + port
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}
