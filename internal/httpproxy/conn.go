package httpproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// The HTTP/1.1 path: one goroutine per client connection reads request
// heads in place from a pooled buffer, rewrites only the headers it must,
// and relays bodies verbatim over pooled keep-alive connections to the
// backend. Nothing is re-serialised that can be copied.

const (
	headBufSize  = 16 << 10 // largest request or response head
	writeBufSize = 16 << 10 // one TLS record
)

var (
	errEOF        = io.EOF
	clientReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headBufSize) }}
	clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}
)

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// conn is one HTTP/1.x client connection.
type conn struct {
	p       *Proxy
	c       net.Conn // Client.Conn
	sock    net.Conn // Client.Socket, or c
	buf     Buffer
	tracker Tracker
	br      *bufio.Reader
	bw      *bufio.Writer
	peekFn  func() error // c.peek, bound once

	fwd []byte // Client.Header
	// back is the backend connection this client connection keeps
	// between requests, so the hot path takes no shared lock; it goes
	// back to its pool when the client leaves or a request goes to
	// another backend.
	back *backendConn
	req  msg
	resp msg
	rq   Request

	readDeadline  time.Time // last read deadline set on the client
	waitDeadline  time.Time // on its readyWait
	lastDone      time.Time // when the last response was sent
	writeDeadline time.Time
	custom        bool // readDeadline is not the idle deadline
	linger        bool // answered without reading the request's body: lingerClose
}

// ServeConn serves HTTP/1.x requests from cl until the connection ends,
// and returns. It does not close cl.Conn; the caller does.
func (p *Proxy) ServeConn(cl Client) {
	c := &conn{p: p, c: cl.Conn, sock: cl.Socket, buf: cl.Buffer, tracker: cl.Tracker, fwd: cl.Header}
	if c.sock == nil {
		c.sock = cl.Conn
	}
	c.rq.m = &c.req
	c.rq.conn = cl.Conn
	c.br = clientReaders.Get().(*bufio.Reader)
	c.br.Reset(cl.Conn)
	c.bw = clientWriters.Get().(*bufio.Writer)
	c.bw.Reset(cl.Conn)
	defer func() {
		if c.back != nil {
			c.back.b.put(c.back)
			c.back = nil
		}
		c.br.Reset(nil)
		clientReaders.Put(c.br)
		c.bw.Reset(nil)
		clientWriters.Put(c.bw)
	}()
	c.serve()
	if c.linger {
		c.lingerClose()
	}
}

func (c *conn) setIdle(idle bool) bool {
	if c.tracker != nil {
		if !c.tracker.Idle(idle) {
			return false
		}
	}
	return !(idle && c.p.draining.Load())
}

// Lingering close (nginx's lingering_close): the proxy answered a request
// whose body it did not read, and the client may still be sending it.
// Closing at once would make the kernel answer the unread bytes with a
// reset, which can discard the answer before the client reads it. So the
// proxy stops writing (close_notify, then FIN) and reads and discards what
// the client still sends, until it stops, lingerIdle passes without a
// byte, or lingerTime in all.
const (
	lingerTime = 30 * time.Second
	lingerIdle = 5 * time.Second
)

func (c *conn) lingerClose() {
	if hc, ok := c.c.(halfCloser); ok {
		hc.CloseWrite()
	}
	if c.sock != c.c {
		if hc, ok := c.sock.(halfCloser); ok {
			hc.CloseWrite()
		}
	}
	end := time.Now().Add(lingerTime)
	buf := make([]byte, 32<<10)
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		d := now.Add(lingerIdle)
		if d.After(end) {
			d = end
		}
		c.sock.SetReadDeadline(d)
		if _, err := c.sock.Read(buf); err != nil {
			return
		}
	}
}

// refreshRead sets the client's idle read deadline if the last one is
// getting old (setting it on every read would cost more than it buys).
func (c *conn) refreshRead(now time.Time) {
	idle := c.p.cfg.IdleTimeout
	if c.custom || c.readDeadline.Sub(now) < idle-idle/4 {
		c.readDeadline = now.Add(idle)
		c.custom = false
		c.c.SetReadDeadline(c.readDeadline)
	}
}

func (c *conn) refreshWrite(now time.Time) {
	idle := c.p.cfg.IdleTimeout
	if c.writeDeadline.Sub(now) < idle-idle/4 {
		c.writeDeadline = now.Add(idle)
		c.c.SetWriteDeadline(c.writeDeadline)
	}
}

func (c *conn) serve() {
	if !c.serveRequest() {
		return
	}
	// A keep-alive connection: from the second request on, wait for each
	// next one without reading (readyWait), where that is available.
	if w := newReadyWait(c.sock); w != nil {
		c.serveWaiting(w)
		return
	}
	for c.serveRequest() {
	}
}

// serveWaiting serves requests until the connection ends, waiting for
// each next one on w.
func (c *conn) serveWaiting(w *readyWait) {
	defer w.close()
	if c.tracker != nil {
		if !c.tracker.Waiting(w) {
			return
		}
		defer c.tracker.Waiting(nil)
	}
	if c.p.draining.Load() {
		return
	}
	w.run(func() bool {
		// Called when the connection has more to read (at first: may
		// have).
		for {
			if !c.serveRequest() {
				return true
			}
			if !c.pending() {
				// Waiting for the next request: the idle timeout
				// applies.
				if idle := c.p.cfg.IdleTimeout; c.waitDeadline.Sub(c.lastDone) < idle-idle/4 {
					c.waitDeadline = c.lastDone.Add(idle)
					w.SetReadDeadline(c.waitDeadline)
				}
				return !c.setIdle(true)
			}
		}
	})
}

// pending reports whether the start of another request has been read
// already (it is in the engine's buffer, or Conn's). It makes no system
// call.
func (c *conn) pending() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	if c.buf == nil {
		return false
	}
	return c.buf.Pending(c.peekFn)
}

// peek is Buffer.Pending's probe.
func (c *conn) peek() error {
	_, err := c.br.Peek(1)
	return err
}

// serveRequest reads the next request and answers it. It reports whether
// the connection stays open.
func (c *conn) serveRequest() bool {
	p := c.p
	if c.peekFn == nil {
		c.peekFn = c.peek
	}
	if !c.setIdle(true) {
		return false
	}
	// Waiting for the next request: the idle timeout applies, from the
	// end of the last one.
	now := c.lastDone
	if now.IsZero() {
		now = time.Now()
	}
	c.refreshRead(now)
	if _, err := c.br.Peek(1); err != nil {
		c.setIdle(false)
		return false
	}
	c.setIdle(false)
	if p.draining.Load() {
		// Drain may have woken the read just now: undo that.
		c.custom = true
		c.refreshRead(time.Now())
	}
	head, err := readHead(c.br, c.headerWait)
	if err != nil {
		switch {
		case errors.Is(err, errHeadTooLarge):
			c.reject(431, "header_too_large", "Request Header Fields Too Large")
		case errors.Is(err, io.EOF):
		default:
			var ne net.Error
			if !errors.As(err, &ne) {
				c.reject(400, "bad_request", "Bad Request")
			}
		}
		return false
	}
	if c.custom {
		c.refreshRead(time.Now())
	}
	return c.handle(head)
}

// headerWait runs before a read for the rest of a head: the client has
// HeaderTimeout from now.
func (c *conn) headerWait() {
	if !c.custom {
		c.custom = true
		c.readDeadline = time.Now().Add(c.p.cfg.HeaderTimeout)
		c.c.SetReadDeadline(c.readDeadline)
	}
}

// reject answers a request the proxy will not forward, and the connection
// then closes.
func (c *conn) reject(code int, reason, text string) {
	c.rejectBody(code, reason, text, text+"\n")
}

// rejectBody is reject with a body of its own.
func (c *conn) rejectBody(code int, reason, text, body string) {
	c.p.rejected(reason)
	c.bw.WriteString("HTTP/1.1 ")
	c.bw.WriteString(strconv.Itoa(code))
	c.bw.WriteString(" ")
	c.bw.WriteString(text)
	c.bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	c.bw.WriteString(strconv.Itoa(len(body)))
	c.bw.WriteString("\r\nConnection: close\r\n\r\n")
	c.bw.WriteString(body)
	c.refreshWrite(time.Now())
	c.bw.Flush()
}

// pick picks the backend for the parsed request's first attempt.
func (c *conn) pick(start time.Time) (*attempt, error) {
	return c.p.pick(&c.rq, start)
}

// pick picks the backend for r's first attempt: Pick's, Route's or
// Config.Backend.
func (p *Proxy) pick(r *Request, start time.Time) (*attempt, error) {
	at := &attempt{p: p, start: start}
	var err error
	switch {
	case p.cfg.Pick != nil:
		at.b, at.done, err = p.cfg.Pick(r, 0)
		if at.b == nil {
			at.done = nil
		}
	case p.cfg.Route != nil:
		at.b, err = p.cfg.Route(r)
	default:
		at.b = p.cfg.Backend
	}
	return at, err
}

// handle forwards one request and its response. It reports whether the
// connection stays open for the next request.
func (c *conn) handle(head []byte) bool {
	p := c.p
	idleTO := p.cfg.IdleTimeout
	start := time.Now()
	r := &c.req
	if err := parseRequest(r, head, p.dropLower); err != nil {
		c.br.Discard(len(head))
		switch {
		case errors.Is(err, errNotImplemented):
			c.reject(501, "not_implemented", "Not Implemented")
		case errors.Is(err, errBadVersion):
			c.reject(505, "bad_request", "HTTP Version Not Supported")
		default:
			c.reject(400, "bad_request", "Bad Request")
		}
		return false
	}
	c.rq.data = nil
	at, err := c.pick(start)
	if at.b == nil {
		c.br.Discard(len(head))
		text := "no backend for this request"
		if err != nil {
			text = err.Error()
		}
		code := routeStatus(err)
		c.rejectBody(code, "backend", statusText(code), p.cfg.Name+": "+text+"\n")
		return false
	}
	// Whatever ends the request ends its attempt: a report that has not
	// been made by then is the client's going away.
	defer at.report(Outcome{Failure: "client"})
	hasBody := r.chunked || r.contentLength > 0
	upgrade := r.connUpgrade && len(r.upgrade) > 0 && !r.http10
	keepClient := !r.connClose && !r.http10 && !p.draining.Load()
	retryable := !hasBody && !upgrade && idempotent(r.method)
	respTO := p.responseTimeout()

	var (
		bc     *backendConn
		reused bool
		early  bool // answered before the whole body was sent
	)
	for attempt := 0; ; attempt++ {
		b := at.b
		bc, reused, err = c.backend(b, hasBody, start)
		if err != nil {
			if at.failed(&c.rq, "dial", retryable) {
				attempt = -1
				continue
			}
			c.br.Discard(len(head))
			code, _, text := p.failure(b, err)
			c.rejectBody(code, "backend", statusText(code), text)
			return false
		}
		c.writeRequestHead(bc.bw, r, b, upgrade)
		if !hasBody {
			// The head goes out with the first read of the answer.
			err = bc.sock.deferWrite(bc.bw.Flush)
			if err == nil {
				err = bc.readHead(&c.resp, start, respTO)
			}
			if err != nil && reused && attempt == 0 && !isTimeout(err) {
				// A pooled connection the backend had closed: try a
				// new one.
				bc.close()
				continue
			}
			if err != nil && beforeAnswer(err) {
				// Closed or reset before any answer: another backend
				// may take it.
				bc.close()
				c.p.backendError(p.failureKind(b, err))
				if at.failed(&c.rq, p.failureKind(b, err), retryable) {
					attempt = -1
					continue
				}
				c.br.Discard(len(head))
				code, _, text := p.failure(b, err)
				c.p.log.Warn("target failed", "target", b.String(), "error", err)
				c.rejectBody(code, "backend", statusText(code), text)
				return false
			}
			c.br.Discard(len(head))
		} else {
			c.br.Discard(len(head))
			if r.expect100 {
				c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
				if err = c.bw.Flush(); err != nil {
					bc.close()
					return false
				}
			}
			err = c.copyRequestBody(bc, r)
			if err == nil {
				if err = bc.bw.Flush(); err != nil {
					err = &backendWriteError{err}
				}
			}
			switch {
			case err == nil:
				err = bc.readHead(&c.resp, start, respTO)
			case errors.Is(err, errBadRequest):
				// The body's framing is bad: the backend has part of
				// a message and loses its connection; the client
				// gets its 400.
				bc.close()
				c.reject(400, "bad_request", "Bad Request")
				return false
			case !errors.Is(err, errBackendWrite):
				// The client failed: it gets nothing more.
				bc.close()
				return false
			case !isTimeout(err):
				// The backend stopped reading: it may have answered
				// first (413 on the head, say). The rest of the body
				// is not read, so the client connection closes after.
				if bc.readHead(&c.resp, start, respTO) == nil {
					err, early = nil, true
				}
			}
		}
		break
	}
	b := at.b
	if err != nil {
		bc.close()
		at.report(Outcome{Failure: p.failureKind(b, err)})
		c.backendFailed(b, err)
		return false
	}

	// Interim responses (100 Continue was answered by the proxy; 102,
	// 103) go to the client as they come.
	for resp := &c.resp; resp.status < 200 && resp.status != 101; {
		c.writeResponseHead(resp, true)
		bc.br.Discard(len(resp.head))
		if err := c.bw.Flush(); err != nil {
			bc.close()
			return false
		}
		if err := bc.readHead(resp, start, respTO); err != nil {
			bc.close()
			p.backendError("read")
			at.report(Outcome{Failure: "read"})
			return false
		}
	}
	resp := &c.resp
	if resp.status == 101 {
		if !upgrade {
			bc.close()
			at.report(Outcome{Status: 101, Failure: "protocol"})
			c.backendFailed(b, errUnaskedUpgrade)
			return false
		}
		at.report(Outcome{Status: 101})
		c.writeResponseHead(resp, true)
		bc.br.Discard(len(resp.head))
		p.served(HTTP1, time.Since(start))
		if err := c.bw.Flush(); err != nil {
			bc.close()
			return false
		}
		c.c.SetDeadline(time.Time{})
		bc.c.SetDeadline(time.Time{})
		Splice(End{c.br, c.c, c.c}, End{bc.br, bc.sock, bc.c}, idleTO)
		bc.close()
		return false
	}

	noBody := resp.status == 204 || resp.status == 304 || foldEq(r.method, "head")
	untilClose := !noBody && !resp.chunked && resp.contentLength < 0
	keepBackend := !resp.connClose && !resp.http10 && !untilClose && !r.http10 && !early
	if untilClose || early || p.draining.Load() {
		keepClient = false
	}
	c.linger = early
	c.writeResponseHead(resp, keepClient)
	bc.br.Discard(len(resp.head))
	block := func() {
		now := time.Now()
		c.bw.Flush()
		bc.refreshRead(now, idleTO)
		c.refreshWrite(now)
	}
	c.refreshWrite(start)
	switch {
	case noBody:
	case resp.chunked:
		_, err = copyChunked(c.bw, bc.br, block)
	case resp.contentLength >= 0:
		_, err = copyN(c.bw, bc.br, resp.contentLength, block)
	default:
		_, err = copyEOF(c.bw, bc.br, block)
	}
	if err == nil {
		if err = c.bw.Flush(); err != nil {
			err = &writeError{err}
		}
	}
	done := time.Now()
	c.lastDone = done
	p.served(HTTP1, done.Sub(start))
	if err != nil {
		bc.close()
		var we *writeError
		if !errors.As(err, &we) {
			p.backendError("read")
			p.log.Warn("target failed mid-response", "target", b.String(), "error", err)
			at.report(Outcome{Status: resp.status, Failure: "read"})
		} else {
			at.report(Outcome{Status: resp.status, Failure: "client"})
		}
		return false
	}
	at.report(Outcome{Status: resp.status})
	if keepBackend && bc.br.Buffered() == 0 {
		bc.idleSince = done
		c.back = bc
	} else {
		bc.close()
	}
	return keepClient
}

// backendFailed answers 502 or 504 for a backend that failed before its
// answer, saying what failed.
func (c *conn) backendFailed(b *Backend, err error) {
	code, kind, text := c.p.failure(b, err)
	c.p.backendError(kind)
	c.p.log.Warn("target failed", "target", b.String(), "kind", kind, "error", err)
	c.rejectBody(code, "backend", statusText(code), text)
}

// backend returns the connection to b kept from the previous request if
// it is still good, or one from b's pool.
func (c *conn) backend(b *Backend, probe bool, now time.Time) (*backendConn, bool, error) {
	if bc := c.back; bc != nil {
		c.back = nil
		if bc.b != b {
			bc.b.put(bc) // another backend's: back to its pool
		} else {
			idle := now.Sub(bc.idleSince)
			if idle <= backendMaxIdleTime && (!(probe || idle > backendProbeAfter) || alive(bc.c)) {
				return bc, true, nil
			}
			bc.close()
		}
	}
	return b.get(c.p, probe)
}

// writeRequestHead writes the rewritten request head to the backend.
func (c *conn) writeRequestHead(w *bufio.Writer, r *msg, b *Backend, upgrade bool) {
	w.Write(r.method)
	w.WriteByte(' ')
	w.Write(r.target)
	if r.http10 {
		w.WriteString(" HTTP/1.0\r\n")
	} else {
		w.WriteString(" HTTP/1.1\r\n")
	}
	for _, l := range r.lines {
		switch l.kind {
		case hKeep, hHost, hContentLength, hTransferEncoding:
			w.Write(r.head[l.start:l.end])
		case hUpgrade:
			if upgrade {
				w.Write(r.head[l.start:l.end])
			}
		}
	}
	if !r.hasHost {
		w.WriteString("Host: ")
		w.WriteString(b.Host())
		w.WriteString("\r\n")
	}
	w.Write(c.fwd)
	if r.hasHost {
		w.WriteString("X-Forwarded-Host: ")
		w.Write(r.host)
		w.WriteString("\r\n")
	}
	if upgrade {
		w.WriteString("Connection: Upgrade\r\n")
	}
	w.WriteString("\r\n")
}

// writeResponseHead writes the backend's response head to the client,
// without its hop-by-hop headers.
func (c *conn) writeResponseHead(r *msg, keep bool) {
	w := c.bw
	eol := 0
	for eol < len(r.head) && r.head[eol] != '\r' {
		eol++
	}
	w.Write(r.head[:eol+2])
	for _, l := range r.lines {
		switch l.kind {
		case hKeep, hTransferEncoding:
			w.Write(r.head[l.start:l.end])
		case hContentLength:
			if !r.clDropped {
				w.Write(r.head[l.start:l.end])
			}
		case hUpgrade:
			if r.status == 101 {
				w.Write(r.head[l.start:l.end])
			}
		}
	}
	switch {
	case r.status == 101:
		w.WriteString("Connection: Upgrade\r\n")
	case !keep && r.status >= 200:
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
}

var errBackendWrite = errors.New("writing to the target failed")

// copyRequestBody relays the request body to the backend.
func (c *conn) copyRequestBody(bc *backendConn, r *msg) error {
	idle := c.p.cfg.IdleTimeout
	block := func() {
		now := time.Now()
		bc.refreshWrite(now, idle)
		bc.bw.Flush()
		c.refreshRead(now)
	}
	bc.refreshWrite(time.Now(), idle)
	var err error
	if r.chunked {
		_, err = copyChunked(bc.bw, c.br, block)
	} else {
		_, err = copyN(bc.bw, c.br, r.contentLength, block)
	}
	var we *writeError
	if errors.As(err, &we) {
		return &backendWriteError{we.err}
	}
	return err
}
