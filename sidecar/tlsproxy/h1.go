package tlsproxy

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/podkit/podkit/internal/httpproxy"
)

// The HTTP/1.1 path is internal/httpproxy's engine: tls-proxy hands it
// each client connection that did not negotiate h2, with what only
// tls-proxy knows — the TCP socket under the TLS connection, whether
// crypto/tls still holds decrypted bytes (Pending, below), the
// connection's place in the graceful stop, and the X-Forwarded-* and
// client-certificate lines for its requests.

// newEngine returns the HTTP engine for p's target and metrics.
func (p *Proxy) newEngine() *httpproxy.Proxy {
	p.backend = httpproxy.NewBackend(p.target.network, p.target.addr, p.cfg.DialTimeout)
	return httpproxy.New(httpproxy.Config{
		Name:          "tls-proxy",
		Backend:       p.backend,
		IdleTimeout:   p.cfg.IdleTimeout,
		HeaderTimeout: p.cfg.HeaderTimeout,
		DropHeader:    p.cfg.ClientCertHeader,
		Rejected:      func(reason string) { p.m.rejected.WithLabelValues(reason).Inc() },
		BackendError:  func(kind string) { p.m.backendErrs.WithLabelValues(kind).Inc() },
		Served: func(proto string, d time.Duration) {
			if proto == httpproxy.HTTP2 {
				p.m.reqH2.Observe(d.Seconds())
			} else {
				p.m.reqH1.Observe(d.Seconds())
			}
		},
		Logger: p.log,
	})
}

// forwardedHeader is the lines tls-proxy adds to a client's requests:
// "X-Forwarded-For: ip\r\nX-Forwarded-Proto: https\r\n" and, with a
// verified client certificate, its identity.
func (p *Proxy) forwardedHeader(remote net.Addr, st *tls.ConnectionState) []byte {
	ip := "unknown"
	if ta, ok := remote.(*net.TCPAddr); ok {
		ip = ta.IP.String()
	}
	fwd := make([]byte, 0, 128)
	fwd = append(fwd, "X-Forwarded-For: "...)
	fwd = append(fwd, ip...)
	fwd = append(fwd, "\r\nX-Forwarded-Proto: https\r\n"...)
	if len(st.PeerCertificates) > 0 {
		fwd = append(fwd, p.cfg.ClientCertHeader...)
		fwd = append(fwd, ": "...)
		fwd = append(fwd, clientIdentity(st.PeerCertificates[0])...)
		fwd = append(fwd, "\r\n"...)
	}
	return fwd
}

func (p *Proxy) serveH1(tc *tls.Conn, raw *trackedConn, st *tls.ConnectionState) {
	c := &h1client{Conn: tc, raw: raw}
	p.engine.ServeConn(httpproxy.Client{
		Conn:    c,
		Socket:  raw.Conn,
		Buffer:  c,
		Tracker: raw,
		Header:  p.forwardedHeader(raw.RemoteAddr(), st),
	})
}

// h1client is the client's TLS connection as the engine reads it: it
// notes whether crypto/tls may hold decrypted bytes not yet read.
type h1client struct {
	*tls.Conn
	raw  *trackedConn
	more bool // the last Read filled its buffer
}

func (c *h1client) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.more = n > 0 && n == len(b)
	return n, err
}

// Pending implements httpproxy.Buffer: whether crypto/tls holds bytes of
// the client's next request already, without a system call.
//
// It rests on crypto/tls's record handling (TestCryptoTLSAssumptions
// checks each point against the Go in use):
//   - a Read that returned less than its buffer left no decrypted bytes
//     of that record behind;
//   - crypto/tls reads the socket only when it holds no whole record, so
//     after a socket read of exactly one whole record (recordScan) it
//     holds nothing more once that record is returned;
//   - otherwise a probe read that finds the socket "empty" (the
//     trackedConn answers errNothingBuffered, a temporary net.Error)
//     gets that error back from crypto/tls, which keeps the connection
//     usable, while a whole record it holds is decrypted and returned
//     without touching the socket.
func (c *h1client) Pending(peek func() error) bool {
	if !c.more && c.raw.recs.whole {
		return false // nothing in crypto/tls either
	}
	c.raw.probe = true
	err := peek()
	c.raw.probe = false
	// Any other error (a buffered close_notify) is for the engine's next
	// read to see.
	return err != errNothingBuffered
}

// Idle implements httpproxy.Tracker: an HTTP/1.1 connection waiting for
// a request (true) or serving one. It returns false if the proxy is
// stopping and the connection should close instead of waiting.
func (c *trackedConn) Idle(idle bool) bool {
	// Only the connection's goroutine writes idle: it may read it
	// without the lock.
	if c.idle != idle {
		c.mu.Lock()
		c.idle = idle
		c.mu.Unlock()
	}
	return !(idle && c.p.stopped.Load())
}

// Waiting implements httpproxy.Tracker: where the connection waits when
// idle (nil: in Read). It returns false if the proxy is stopping.
func (c *trackedConn) Waiting(w httpproxy.Waker) bool {
	c.mu.Lock()
	c.wait = w
	c.mu.Unlock()
	return !c.p.stopped.Load()
}
