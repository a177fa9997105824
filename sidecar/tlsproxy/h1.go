package tlsproxy

import (
	"bufio"
	"crypto/tls"
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
// target. Nothing is re-serialised that can be copied.

const (
	headBufSize  = 16 << 10 // largest request or response head
	writeBufSize = 16 << 10 // one TLS record
)

var (
	errEOF           = io.EOF
	clientReaders    = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headBufSize) }}
	clientWriters    = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}
	errBackendClosed = errors.New("target closed the connection before answering")
)

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// h1conn is one HTTP/1.x client connection.
type h1conn struct {
	p   *Proxy
	tc  *tls.Conn
	raw *trackedConn
	rd  tlsReader // tc, as br reads it
	br  *bufio.Reader
	bw  *bufio.Writer

	fwd []byte // "X-Forwarded-For: ip\r\nX-Forwarded-Proto: https\r\n" [+ client cert]
	// back is the target connection this client connection keeps between
	// requests, so the hot path takes no shared lock; it goes back to the
	// pool when the client leaves.
	back *backendConn
	req  msg
	resp msg

	readDeadline  time.Time // last read deadline set on the client
	waitDeadline  time.Time // on its readyWait
	lastDone      time.Time // when the last response was sent
	writeDeadline time.Time
	custom        bool // readDeadline is not the idle deadline
	linger        bool // answered without reading the request's body: lingerClose
}

func (p *Proxy) serveH1(tc *tls.Conn, raw *trackedConn, st *tls.ConnectionState) {
	c := &h1conn{p: p, tc: tc, raw: raw}
	c.rd.tc = tc
	c.br = clientReaders.Get().(*bufio.Reader)
	c.br.Reset(&c.rd)
	c.bw = clientWriters.Get().(*bufio.Writer)
	c.bw.Reset(tc)
	defer func() {
		if c.back != nil {
			p.pool.put(c.back)
			c.back = nil
		}
		c.br.Reset(nil)
		clientReaders.Put(c.br)
		c.bw.Reset(nil)
		clientWriters.Put(c.bw)
	}()
	ip := "unknown"
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
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
	c.fwd = fwd
	c.serve()
	if c.linger {
		c.lingerClose()
	}
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

func (c *h1conn) lingerClose() {
	c.tc.CloseWrite()
	if hc, ok := c.raw.Conn.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
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
		c.raw.Conn.SetReadDeadline(d)
		if _, err := c.raw.Conn.Read(buf); err != nil {
			return
		}
	}
}

// refreshRead sets the client's idle read deadline if the last one is
// getting old (setting it on every read would cost more than it buys).
func (c *h1conn) refreshRead(now time.Time) {
	idle := c.p.cfg.IdleTimeout
	if c.custom || c.readDeadline.Sub(now) < idle-idle/4 {
		c.readDeadline = now.Add(idle)
		c.custom = false
		c.raw.Conn.SetReadDeadline(c.readDeadline)
	}
}

func (c *h1conn) refreshWrite(now time.Time) {
	idle := c.p.cfg.IdleTimeout
	if c.writeDeadline.Sub(now) < idle-idle/4 {
		c.writeDeadline = now.Add(idle)
		c.raw.Conn.SetWriteDeadline(c.writeDeadline)
	}
}

func (c *h1conn) serve() {
	if !c.serveRequest() {
		return
	}
	// A keep-alive connection: from the second request on, wait for each
	// next one without reading (readyWait), where that is available.
	if w := newReadyWait(c.raw.Conn); w != nil {
		c.serveWaiting(w)
		return
	}
	for c.serveRequest() {
	}
}

// serveWaiting serves requests until the connection ends, waiting for
// each next one on w.
func (c *h1conn) serveWaiting(w *readyWait) {
	defer w.close()
	if !c.raw.setWait(w) {
		return
	}
	defer c.raw.setWait(nil)
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
					w.setDeadline(c.waitDeadline)
				}
				return !c.raw.setIdle(true)
			}
		}
	})
}

// pending reports whether the start of another request has been read
// already (it is in bufio's or crypto/tls's buffers). It makes no system
// call.
func (c *h1conn) pending() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	if !c.rd.more && c.raw.recs.whole {
		return false // nothing in crypto/tls either
	}
	c.raw.probe = true
	_, err := c.br.Peek(1)
	c.raw.probe = false
	// Any other error (a buffered close_notify) is for serveRequest to
	// see.
	return err != errNothingBuffered
}

// tlsReader reads the client's TLS connection for bufio, noting whether
// crypto/tls may hold decrypted bytes not yet read.
type tlsReader struct {
	tc   *tls.Conn
	more bool // the last Read filled its buffer
}

func (r *tlsReader) Read(b []byte) (int, error) {
	n, err := r.tc.Read(b)
	r.more = n > 0 && n == len(b)
	return n, err
}

// serveRequest reads the next request and answers it. It reports whether
// the connection stays open.
func (c *h1conn) serveRequest() bool {
	p := c.p
	if !c.raw.setIdle(true) {
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
		c.raw.setIdle(false)
		return false
	}
	c.raw.setIdle(false)
	if p.stopped.Load() {
		// Shutdown may have woken the read just now: undo that.
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
// --header-timeout from now.
func (c *h1conn) headerWait() {
	if !c.custom {
		c.custom = true
		c.readDeadline = time.Now().Add(c.p.cfg.HeaderTimeout)
		c.raw.Conn.SetReadDeadline(c.readDeadline)
	}
}

// reject answers a request the proxy will not forward, and the connection
// then closes.
func (c *h1conn) reject(code int, reason, text string) {
	c.rejectBody(code, reason, text, text+"\n")
}

// rejectBody is reject with a body of its own.
func (c *h1conn) rejectBody(code int, reason, text, body string) {
	c.p.m.rejected.WithLabelValues(reason).Inc()
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

// handle forwards one request and its response. It reports whether the
// connection stays open for the next request.
func (c *h1conn) handle(head []byte) bool {
	p := c.p
	start := time.Now()
	r := &c.req
	if err := parseRequest(r, head, p.certHeaderLower); err != nil {
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
	hasBody := r.chunked || r.contentLength > 0
	upgrade := r.connUpgrade && len(r.upgrade) > 0 && !r.http10
	keepClient := !r.connClose && !r.http10 && !p.stopped.Load()

	var (
		bc     *backendConn
		reused bool
		err    error
		early  bool // answered before the whole body was sent
	)
	for attempt := 0; ; attempt++ {
		bc, reused, err = c.backend(hasBody, start)
		if err != nil {
			c.br.Discard(len(head))
			code, _, text := p.failure(err)
			c.rejectBody(code, "backend", statusText(code), text)
			return false
		}
		c.writeRequestHead(bc.bw, r, upgrade)
		if !hasBody {
			// The head goes out with the first read of the answer.
			err = bc.sock.deferWrite(bc.bw.Flush)
			if err == nil {
				err = bc.readHead(&c.resp, start)
			}
			if err != nil && reused && attempt == 0 && !isTimeout(err) {
				// A pooled connection the target had closed: try a new one.
				bc.close()
				continue
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
				err = bc.readHead(&c.resp, start)
			case !errors.Is(err, errBackendWrite):
				// The client failed: it gets nothing more.
				bc.close()
				return false
			case !isTimeout(err):
				// The target stopped reading: it may have answered
				// first (413 on the head, say). The rest of the body
				// is not read, so the client connection closes after.
				if bc.readHead(&c.resp, start) == nil {
					err, early = nil, true
				}
			}
		}
		break
	}
	if err != nil {
		bc.close()
		c.targetFailed(err)
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
		if err := bc.readHead(resp, start); err != nil {
			bc.close()
			p.m.backendErrs.WithLabelValues("read").Inc()
			return false
		}
	}
	resp := &c.resp
	if resp.status == 101 {
		if !upgrade {
			bc.close()
			c.targetFailed(errUnaskedUpgrade)
			return false
		}
		c.writeResponseHead(resp, true)
		bc.br.Discard(len(resp.head))
		p.m.reqH1.Observe(time.Since(start).Seconds())
		if err := c.bw.Flush(); err != nil {
			bc.close()
			return false
		}
		c.raw.Conn.SetDeadline(time.Time{})
		bc.c.SetDeadline(time.Time{})
		splice(end{c.br, c.tc, c.tc}, end{bc.br, bc.sock, bc.c}, p.cfg.IdleTimeout)
		bc.close()
		return false
	}

	noBody := resp.status == 204 || resp.status == 304 || foldEq(r.method, "head")
	untilClose := !noBody && !resp.chunked && resp.contentLength < 0
	keepBackend := !resp.connClose && !resp.http10 && !untilClose && !r.http10 && !early
	if untilClose || early || p.stopped.Load() {
		keepClient = false
	}
	c.linger = early
	c.writeResponseHead(resp, keepClient)
	bc.br.Discard(len(resp.head))
	block := func() {
		now := time.Now()
		c.bw.Flush()
		bc.refreshRead(now, p.cfg.IdleTimeout)
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
	p.m.reqH1.Observe(done.Sub(start).Seconds())
	if err != nil {
		bc.close()
		var we *writeError
		if !errors.As(err, &we) {
			p.m.backendErrs.WithLabelValues("read").Inc()
			p.log.Warn("target failed mid-response", "target", p.target.String(), "error", err)
		}
		return false
	}
	if keepBackend && bc.br.Buffered() == 0 {
		bc.idleSince = done
		c.back = bc
	} else {
		bc.close()
	}
	return keepClient
}

// targetFailed answers 502 or 504 for a target that failed before its
// answer, saying what failed.
func (c *h1conn) targetFailed(err error) {
	code, kind, text := c.p.failure(err)
	c.p.m.backendErrs.WithLabelValues(kind).Inc()
	c.p.log.Warn("target failed", "target", c.p.target.String(), "kind", kind, "error", err)
	c.rejectBody(code, "backend", statusText(code), text)
}

// backend returns the connection kept from the previous request if it is
// still good, or one from the pool.
func (c *h1conn) backend(probe bool, now time.Time) (*backendConn, bool, error) {
	if bc := c.back; bc != nil {
		c.back = nil
		idle := now.Sub(bc.idleSince)
		if idle <= backendMaxIdleTime && (!(probe || idle > backendProbeAfter) || alive(bc.c)) {
			return bc, true, nil
		}
		bc.close()
	}
	return c.p.pool.get(probe)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeRequestHead writes the rewritten request head to the target.
func (c *h1conn) writeRequestHead(w *bufio.Writer, r *msg, upgrade bool) {
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
		w.WriteString(c.p.targetHost())
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

// writeResponseHead writes the target's response head to the client,
// without its hop-by-hop headers.
func (c *h1conn) writeResponseHead(r *msg, keep bool) {
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
			if !r.chunked {
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

// copyRequestBody relays the request body to the target.
func (c *h1conn) copyRequestBody(bc *backendConn, r *msg) error {
	block := func() {
		now := time.Now()
		bc.refreshWrite(now, c.p.cfg.IdleTimeout)
		bc.bw.Flush()
		c.refreshRead(now)
	}
	bc.refreshWrite(time.Now(), c.p.cfg.IdleTimeout)
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
