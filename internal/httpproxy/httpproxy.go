// Package httpproxy is podkit's HTTP/1.1 reverse-proxy engine: the one
// place that reads HTTP/1 requests from clients and relays them to
// HTTP/1.1 backends. tls-proxy's http mode runs on it; components that
// route, split or fan out HTTP build on it instead of writing their own.
//
// # What it takes
//
// A Proxy (New(Config)) is given client connections one at a time by its
// caller (ServeConn, one goroutine each) as a Client: the connection that
// carries the client's bytes (for tls-proxy a *tls.Conn, already
// handshaken), optionally the socket under it and extra header lines to
// add to every request from it. Each request goes to Config.Backend, or to
// the Backend that Config.Route picks for it. A Backend is an address (or
// a Dial function) with a pool of keep-alive connections. Hooks
// (Config.Rejected, BackendError, Served) report what happened, for
// metrics; none of them is needed.
//
// ServeHTTP relays a request that net/http has already read (an HTTP/2
// stream, say) the same way, over the same backend pools.
//
// # What it guarantees
//
// Framing follows RFC 9112. A request head must end in CRLF CRLF and fit
// in 16 KiB; its lines end in CRLF (a bare LF, a bare CR, or any control
// character in a field is a 400); leading empty lines are skipped. Field
// names are tokens: whitespace before the colon and obsolete line folding
// (a line starting with SP or HTAB) are 400. HTTP/1.1 requests need
// exactly one Host. The body length is decided once, here, and the
// backend only ever sees a request whose framing is unambiguous:
//
//   - Transfer-Encoding and Content-Length together: 400 (RFC 9112 6.1).
//   - Transfer-Encoding in an HTTP/1.0 request, or in more than one field
//     line: 400.
//   - Transfer-Encoding whose final coding is not chunked: 400 (RFC 9112
//     6.3); chunked after another coding (gzip, chunked): 501, as the
//     engine relays only chunked framing.
//   - Content-Length must be 1*DIGIT (at most 18): a list, a sign or
//     whitespace inside is 400; several field lines with differing values
//     are 400, with the same value one line is forwarded.
//   - A chunked body's size lines must be hex (at most 15 digits) with an
//     optional extension, every line ends in CRLF and is at most 4 KiB,
//     chunk data is followed by CRLF, and trailer lines are field lines;
//     anything else is 400.
//
// A request that fails these checks is answered by the engine itself
// (Rejected is told why) and the client connection is closed; nothing of
// it reaches a backend, except for a chunked body that turns out bad
// after its head was forwarded: the backend connection is then closed
// mid-message and never reused.
//
// Hop-by-hop fields (Connection and those it names, Keep-Alive,
// Proxy-Connection, TE, Upgrade unless upgrading, Proxy-Authorization)
// are removed both ways; so are X-Forwarded-For, -Proto, -Host, Forwarded
// and Config.DropHeader in requests, so a client cannot forge them.
// Client.Header is added to every request; X-Forwarded-Host carries the
// client's Host.
//
// Keep-alive: an HTTP/1.1 client connection stays open unless either
// side says Connection: close, the response is delimited by the
// backend's close, or the Proxy is draining. Pipelined requests are
// answered in order, one at a time. Backend connections are reused only
// after a complete response with nothing extra; a bodiless request on a
// reused connection that the backend had closed is retried once on a new
// one. Expect: 100-continue is answered by the engine; other 1xx
// responses are relayed. An Upgrade (WebSocket) request gets the
// backend's 101 and then both connections are spliced until either side
// ends or both are idle for IdleTimeout. A backend that answers before it
// has read the whole body (413, say) has that answer relayed, and the
// client connection is then closed with a lingering close.
//
// Errors and limits: a head larger than 16 KiB is 431; a malformed
// request 400; an unsupported transfer coding 501; an HTTP version other
// than 1.0 and 1.1, 505; a backend that cannot be reached, closes early
// or sends a malformed response, 502; one that does not read the request
// or answer within IdleTimeout, 504. Each of these answers carries
// Connection: close and the connection is closed after it. A client that
// sends no complete head within HeaderTimeout, or nothing within
// IdleTimeout between requests, is closed without an answer. A backend
// that fails in the middle of a response makes the engine close the
// client connection, so the client sees a truncated message, never a
// wrong one.
package httpproxy

import (
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync/atomic"
	"time"
)

// Protocols reported to Config.Served.
const (
	HTTP1 = "http/1.1"
	HTTP2 = "h2"
)

// Config configures a Proxy.
type Config struct {
	// Name starts the text of the engine's own error answers
	// ("tls-proxy: target 127.0.0.1:8080 refused the connection").
	Name string
	// Backend receives every request, unless Route is set.
	Backend *Backend
	// Route, if set, picks the backend for each request once its head is
	// parsed and checked. A nil Backend with an error is answered 502
	// (or the code of a *StatusError) with the error's text.
	Route func(r *Request) (*Backend, error)
	// Pick, if set, replaces Route and Backend: it picks the backend for
	// each attempt at a request once its head is parsed and checked
	// (attempt 0, then one more per retry), and returns done, which the
	// engine calls exactly once with the attempt's Outcome (done may be
	// nil). When the Outcome is Retryable and done returns true, the
	// engine calls Pick again and sends the request to the backend it
	// picks; if Pick then has none, the first failure is answered. A nil
	// Backend is answered with the error's text: 502, or the code of a
	// *StatusError.
	Pick func(r *Request, attempt int) (b *Backend, done func(Outcome) (retry bool), err error)
	// IdleTimeout bounds the wait for a next request, and each read and
	// write of a backend or client while a request is served.
	IdleTimeout time.Duration
	// ResponseTimeout bounds the wait for a response head once the
	// request was sent (0: IdleTimeout); a backend that does not answer
	// within it is answered 504.
	ResponseTimeout time.Duration
	// HeaderTimeout bounds the rest of a request head once its first byte
	// arrived.
	HeaderTimeout time.Duration
	// DropHeader names a request header the caller sets itself (through
	// Client.Header): copies the client sent are removed.
	DropHeader string

	// Rejected is called for each request the engine answers itself:
	// bad_request, header_too_large, not_implemented, backend.
	Rejected func(reason string)
	// BackendError is called for each backend failure: dial, write,
	// read, protocol, timeout.
	BackendError func(kind string)
	// Served is called when a request is done, with HTTP1 or HTTP2 and
	// the time from its head to the end of its response.
	Served func(proto string, d time.Duration)

	// Logger gets warnings about backends (nil: slog.Default()).
	Logger *slog.Logger
}

// Proxy is the engine. It is safe for concurrent use.
type Proxy struct {
	cfg       Config
	log       *slog.Logger
	dropLower string
	dropCanon string
	draining  atomic.Bool
}

// New returns a Proxy for cfg.
func New(cfg Config) *Proxy {
	p := &Proxy{cfg: cfg, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.Default()
	}
	if cfg.DropHeader != "" {
		p.dropLower = strings.ToLower(cfg.DropHeader)
		p.dropCanon = textproto.CanonicalMIMEHeaderKey(cfg.DropHeader)
	}
	return p
}

// Drain makes every client connection close after the response it is
// sending (with Connection: close) instead of waiting for another
// request. It does not interrupt a connection already waiting: the
// caller wakes those, with a past read deadline on Client.Conn and on the
// Waker its Tracker was given; they then see the drain and close.
func (p *Proxy) Drain() { p.draining.Store(true) }

func (p *Proxy) rejected(reason string) {
	if f := p.cfg.Rejected; f != nil {
		f(reason)
	}
}

func (p *Proxy) backendError(kind string) {
	if f := p.cfg.BackendError; f != nil {
		f(kind)
	}
}

// responseTimeout is the bound on waiting for a response head.
func (p *Proxy) responseTimeout() time.Duration {
	if p.cfg.ResponseTimeout > 0 {
		return p.cfg.ResponseTimeout
	}
	return p.cfg.IdleTimeout
}

func (p *Proxy) served(proto string, d time.Duration) {
	if f := p.cfg.Served; f != nil {
		f(proto, d)
	}
}

// Client is a client connection handed to ServeConn.
type Client struct {
	// Conn carries the client's bytes: requests are read from it and
	// answers written to it, and its deadlines are set.
	Conn net.Conn
	// Socket is the transport under Conn (for tls-proxy, the TCP
	// connection under the *tls.Conn), or nil if Conn is the socket
	// itself. The engine waits on it for a next request without reading
	// (Linux) and reads and discards from it in a lingering close.
	Socket net.Conn
	// Buffer, if set, tells whether Conn holds bytes that it read from
	// Socket and has not returned yet (crypto/tls's decrypted records).
	// nil means Conn buffers nothing.
	Buffer Buffer
	// Tracker, if set, is told when the connection waits for a request,
	// for a graceful stop.
	Tracker Tracker
	// Header is added to every request from this client: complete field
	// lines, each ending in CRLF (X-Forwarded-For, say).
	Header []byte
}

// Buffer reports what a layered connection holds.
type Buffer interface {
	// Pending reports whether Conn may return bytes without reading
	// Socket. It is called only when the engine's own buffer is empty.
	// It may call peek, which reads Conn through the engine's buffer
	// once, as a probe: the Buffer must make a Socket read during peek
	// return at once with an error that Conn passes on without failing
	// (a net.Error whose Timeout is true); Pending then reports false if
	// peek returned that error.
	Pending(peek func() error) bool
}

// Tracker follows a connection's idle state.
type Tracker interface {
	// Idle is called with true when the connection starts waiting for
	// a request and false when a request starts. It returns false if the
	// connection should close instead of waiting.
	Idle(idle bool) bool
	// Waiting tells where the connection waits for its next request when
	// it does not wait in Conn.Read: a wait on a duplicate of Socket that
	// a past read deadline ends (nil: back in Conn.Read). It returns
	// false if the connection should close instead.
	Waiting(w Waker) bool
}

// Waker is a wait that a read deadline ends.
type Waker interface {
	SetReadDeadline(t time.Time) error
}

// Request is a parsed request head, as Route sees it. It and the slices
// it returns are valid only during the call.
type Request struct {
	m      *msg
	conn   net.Conn // the client's, for RemoteAddr (ServeConn)
	remote string   // the client's address (ServeHTTP), or conn's once asked
	data   any
}

// RemoteAddr is the client's address (host:port), as the listener saw
// it.
func (r *Request) RemoteAddr() string {
	if r.remote == "" && r.conn != nil {
		if a := r.conn.RemoteAddr(); a != nil {
			r.remote = a.String()
		}
	}
	return r.remote
}

// Data is what SetData stored during an earlier Pick for the same
// request (nil at the first attempt): a place for a Pick's own state
// across the attempts of one request (the endpoints already tried, say).
func (r *Request) Data() any { return r.data }

// SetData stores v for the next Pick of the same request.
func (r *Request) SetData(v any) { r.data = v }

// Method returns the request method.
func (r *Request) Method() []byte { return r.m.method }

// Target returns the request target as sent (origin-form: path?query).
func (r *Request) Target() []byte { return r.m.target }

// Host returns the Host header's value (nil for an HTTP/1.0 request
// without one).
func (r *Request) Host() []byte { return r.m.host }

// Header returns the value of the first field line named name (case
// insensitive), or nil.
func (r *Request) Header(name string) []byte {
	m := r.m
	for _, l := range m.lines {
		if strings.EqualFold(string(m.head[l.start:l.colon]), name) {
			return trimOWS(m.head[l.colon+1 : l.end-2])
		}
	}
	return nil
}
