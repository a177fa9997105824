package tlsproxy

import (
	"context"
	"crypto/tls"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/podkit/podkit/internal/httpproxy"
)

// HTTP/2 clients are served by net/http's server: each connection that
// negotiated "h2" is handed to it through chanListener, and the HTTP
// engine's ServeHTTP sends its requests to the target over the same
// pooled HTTP/1.1 connections as the HTTP/1.1 path. What stays here is
// what is tls-proxy's own: the server, the hand-off of handshaken
// connections, and the X-Forwarded-* and client-certificate lines, set
// per connection.

func (p *Proxy) startH2() {
	p.h2ln = newChanListener()
	p.h2 = &http.Server{
		Handler:           p.engine,
		ReadHeaderTimeout: p.cfg.HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		ErrorLog:          log.New(slogWriter{p.log}, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			var st tls.ConnectionState
			if tc, ok := c.(*tls.Conn); ok {
				st = tc.ConnectionState()
			}
			return httpproxy.WithHeader(ctx, p.forwardedHeader(c.RemoteAddr(), &st))
		},
	}
	go p.h2.Serve(p.h2ln)
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
