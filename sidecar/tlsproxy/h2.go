package tlsproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// HTTP/2 clients are served by net/http's server: each connection that
// negotiated "h2" is handed to it through chanListener, and requests go to
// the target over HTTP/1.1 with net/http's transport.

type identityKey struct{}

func (p *Proxy) startH2() {
	p.h2ln = newChanListener()
	rp := &httputil.ReverseProxy{
		Rewrite:      p.rewriteH2,
		Transport:    p.h2Transport(),
		BufferPool:   bufPool{},
		ErrorHandler: p.h2Error,
		ErrorLog:     log.New(slogWriter{p.log}, "", 0),
	}
	p.h2 = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rp.ServeHTTP(w, r)
			p.m.reqH2.Observe(time.Since(start).Seconds())
		}),
		ReadHeaderTimeout: p.cfg.HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		ErrorLog:          log.New(slogWriter{p.log}, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
					return context.WithValue(ctx, identityKey{}, clientIdentity(pc[0]))
				}
			}
			return ctx
		},
	}
	go p.h2.Serve(p.h2ln)
}

func (p *Proxy) rewriteH2(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = p.targetHost()
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	pr.Out.Header.Del("Forwarded")
	pr.Out.Header.Del(p.cfg.ClientCertHeader)
	if id, ok := pr.In.Context().Value(identityKey{}).(string); ok {
		pr.Out.Header.Set(p.cfg.ClientCertHeader, id)
	}
}

// targetHost is the host part used in URLs to the target.
func (p *Proxy) targetHost() string {
	if p.target.network == "unix" {
		return "localhost"
	}
	return p.target.addr
}

func (p *Proxy) h2Transport() *http.Transport {
	d := &net.Dialer{Timeout: p.cfg.DialTimeout}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, p.target.network, p.target.addr)
			if err != nil {
				p.m.backendErrs.WithLabelValues("dial").Inc()
			}
			return c, err
		},
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     16 << 10,
		ReadBufferSize:      16 << 10,
	}
}

func (p *Proxy) h2Error(w http.ResponseWriter, r *http.Request, err error) {
	code, kind := http.StatusBadGateway, "read"
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		// The client went away; nothing to answer.
		return
	case errors.As(err, &ne) && ne.Timeout():
		code, kind = http.StatusGatewayTimeout, "timeout"
	}
	if !errors.As(err, new(*net.OpError)) || kind == "timeout" {
		p.m.backendErrs.WithLabelValues(kind).Inc()
	}
	p.m.rejected.WithLabelValues("backend").Inc()
	p.log.Warn("target request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	w.WriteHeader(code)
}

// chanListener is a net.Listener fed with already-handshaken connections.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// bufPool is httputil.BufferPool over the proxy's buffer pool.
type bufPool struct{}

func (bufPool) Get() []byte  { return *getBuf() }
func (bufPool) Put(b []byte) { putBuf(&b) }

// slogWriter adapts net/http's log.Logger output to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	msg := string(b)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.l.Debug("http server", "msg", msg)
	return len(b), nil
}
