package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// ServeHTTP forwards a request that net/http has read (tls-proxy: an
// HTTP/2 stream) to its backend over a pooled HTTP/1.1 connection: the
// request head is written straight into the connection's buffer and the
// response is relayed with the same parser as ServeConn, without
// net/http's transport in between. Header lines from WithHeader on the
// request's context are added, as Client.Header is by ServeConn.
// Interim responses are not relayed; a 101 answer is a 502; CONNECT is
// answered 405.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { p.served(HTTP2, time.Since(start)) }()
	idleTO := p.cfg.IdleTimeout
	if r.Method == http.MethodConnect {
		p.rejected("not_implemented")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var rq *Request
	if p.cfg.Route != nil || p.cfg.Pick != nil {
		rq = requestView(r)
	}
	at, err := p.pick(rq, start)
	if at.b == nil {
		text := "no backend for this request"
		if err != nil {
			text = err.Error()
		}
		p.rejected("backend")
		textAnswer(w, routeStatus(err), p.cfg.Name+": "+text+"\n")
		return
	}
	defer at.report(Outcome{Failure: "client"})
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	retryable := !hasBody && idempotent([]byte(r.Method))
	respTO := p.responseTimeout()
	var (
		bc     *backendConn
		reused bool
		resp   msg
		early  bool // answered before the whole body was sent
	)
	for attempt := 0; ; attempt++ {
		b := at.b
		bc, reused, err = b.get(p, hasBody)
		if err != nil {
			if at.failed(rq, "dial", retryable) {
				attempt = -1
				continue
			}
			code, _, text := p.failure(b, err) // counted by the dial
			p.rejected("backend")
			textAnswer(w, code, text)
			return
		}
		p.writeHTTPRequestHead(bc.bw, r, b, hasBody)
		if hasBody {
			bc.refreshWrite(time.Now(), idleTO)
			err = copyHTTPBody(bc, r)
			if err == nil {
				// The backend may have answered on the head already:
				// send the rest, then read (before waiting; see
				// deferWrite).
				if err = bc.bw.Flush(); err != nil {
					err = &backendWriteError{err}
				}
			}
			if err != nil && !errors.Is(err, errBackendWrite) {
				bc.close()
				return // the client failed: nothing more to say
			}
		} else {
			err = bc.sock.deferWrite(bc.bw.Flush)
		}
		switch {
		case err == nil:
			err = bc.readHead(&resp, start, respTO) // sends a deferred request first
		case !isTimeout(err):
			// The backend stopped reading: it may have answered first
			// (413 on the head, say).
			if bc.readHead(&resp, start, respTO) == nil {
				err, early = nil, true
			}
		}
		// Interim responses are not relayed over HTTP/2.
		for err == nil && resp.status < 200 && resp.status != 101 {
			bc.br.Discard(len(resp.head))
			err = bc.readHead(&resp, start, respTO)
		}
		if err != nil && !hasBody && reused && attempt == 0 && !isTimeout(err) {
			bc.close() // a pooled connection the backend had closed
			continue
		}
		if err != nil && !hasBody && beforeAnswer(err) {
			bc.close()
			p.backendError(p.failureKind(b, err))
			if at.failed(rq, p.failureKind(b, err), retryable) {
				attempt = -1
				continue
			}
			code, kind, text := p.failure(b, err)
			p.rejected("backend")
			p.log.Warn("target failed", "target", b.String(), "kind", kind, "method", r.Method, "path", r.URL.Path, "error", err)
			textAnswer(w, code, text)
			return
		}
		break
	}
	b := at.b
	if err == nil && resp.status == 101 {
		err = errUpgradeH2
	}
	if err != nil {
		bc.close()
		code, kind, text := p.failure(b, err)
		at.report(Outcome{Failure: kind})
		p.backendError(kind)
		p.rejected("backend")
		p.log.Warn("target failed", "target", b.String(), "kind", kind, "method", r.Method, "path", r.URL.Path, "error", err)
		textAnswer(w, code, text)
		return
	}
	h := w.Header()
	for _, l := range resp.lines {
		switch l.kind {
		case hKeep:
			name := textproto.CanonicalMIMEHeaderKey(string(resp.head[l.start:l.colon]))
			h[name] = append(h[name], string(trimOWS(resp.head[l.colon+1:l.end-2])))
		case hContentLength:
			if !resp.clDropped {
				h["Content-Length"] = []string{strconv.FormatInt(resp.contentLength, 10)}
			}
		}
	}
	noBody := resp.status == 204 || resp.status == 304 || r.Method == http.MethodHead
	untilClose := !noBody && !resp.chunked && resp.contentLength < 0
	keep := !resp.connClose && !resp.http10 && !untilClose && !early
	w.WriteHeader(resp.status)
	bc.br.Discard(len(resp.head))
	var (
		body io.Reader
		lr   *io.LimitedReader
	)
	switch {
	case noBody:
	case resp.chunked:
		body = httputil.NewChunkedReader(bc.br)
	case resp.contentLength >= 0:
		lr = &io.LimitedReader{R: bc.br, N: resp.contentLength}
		body = lr
	default:
		body = bc.br
	}
	if body != nil {
		err = relayHTTPBody(w, body, bc, idleTO, resp.contentLength >= 0)
		if err == nil && resp.chunked {
			err = skipTrailers(bc.br)
		}
		if err == nil && lr != nil && lr.N > 0 {
			err = io.ErrUnexpectedEOF // the backend closed early
		}
	}
	if err != nil || !keep {
		bc.close()
		var we *writeError
		if err != nil && !errors.As(err, &we) {
			p.backendError("read")
			p.log.Warn("target failed mid-response", "target", b.String(), "error", err)
			at.report(Outcome{Status: resp.status, Failure: "read"})
			panic(http.ErrAbortHandler) // reset the stream: the body is incomplete
		}
		if err != nil {
			at.report(Outcome{Status: resp.status, Failure: "client"})
		} else {
			at.report(Outcome{Status: resp.status})
		}
		return
	}
	at.report(Outcome{Status: resp.status})
	b.put(bc)
}

type headerKey struct{}

// WithHeader returns ctx carrying header lines (each ending in CRLF) that
// ServeHTTP adds to the requests whose context it is: set it from
// http.Server.ConnContext for a connection's X-Forwarded-For, say.
func WithHeader(ctx context.Context, lines []byte) context.Context {
	return context.WithValue(ctx, headerKey{}, lines)
}

// requestView makes a Request for Route from a net/http request (a
// synthetic head: ServeHTTP is not the hot path of a Route user).
func requestView(r *http.Request) *Request {
	var sb strings.Builder
	sb.WriteString(r.Method + " " + r.URL.RequestURI() + " HTTP/1.1\r\nHost: " + HeaderSafe(r.Host) + "\r\n")
	for k, vv := range r.Header {
		if !ValidHeaderName(k) {
			continue
		}
		for _, v := range vv {
			sb.WriteString(k + ": " + HeaderSafe(v) + "\r\n")
		}
	}
	sb.WriteString("\r\n")
	m := &msg{}
	if parseRequest(m, []byte(sb.String()), "") != nil {
		m.reset(nil)
		m.method, m.target = []byte(r.Method), []byte(r.URL.RequestURI())
	}
	return &Request{m: m, remote: r.RemoteAddr}
}

// textAnswer answers code with a short text body.
func textAnswer(w http.ResponseWriter, code int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(text)))
	w.WriteHeader(code)
	io.WriteString(w, text)
}

// httpDrop lists request headers that do not go to the backend: hop-by-hop
// ones, and those the proxy sets itself.
var httpDrop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Transfer-Encoding": true, "Upgrade": true, "Proxy-Authorization": true,
	"Content-Length": true, "Host": true, "Forwarded": true,
	"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true,
}

func (p *Proxy) writeHTTPRequestHead(w *bufio.Writer, r *http.Request, b *Backend, hasBody bool) {
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(r.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	host := r.Host
	if host == "" {
		host = b.Host()
	}
	w.WriteString(HeaderSafe(host))
	w.WriteString("\r\n")
	// Fields named by Connection are hop-by-hop too (an HTTP/1.1
	// request; HTTP/2 has no Connection).
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if httpDrop[k] || k == p.dropCanon || !ValidHeaderName(k) || len(conn) > 0 && namedIn(conn, k) {
			continue
		}
		if k == "Cookie" && len(vv) > 1 {
			// HTTP/2 may split cookies; HTTP/1.1 wants one header.
			w.WriteString("Cookie: ")
			for i, v := range vv {
				if i > 0 {
					w.WriteString("; ")
				}
				w.WriteString(HeaderSafe(v))
			}
			w.WriteString("\r\n")
			continue
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(HeaderSafe(v))
			w.WriteString("\r\n")
		}
	}
	switch {
	case !hasBody:
		if r.ContentLength == 0 && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			w.WriteString("Content-Length: 0\r\n")
		}
	case r.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(r.ContentLength, 10))
		w.WriteString("\r\n")
	default:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if lines, ok := r.Context().Value(headerKey{}).([]byte); ok {
		w.Write(lines)
	}
	if r.Host != "" {
		w.WriteString("X-Forwarded-Host: ")
		w.WriteString(HeaderSafe(r.Host))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
}

// copyHTTPBody sends the request body: as is with a Content-Length,
// chunked otherwise.
func copyHTTPBody(bc *backendConn, r *http.Request) error {
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	chunked := r.ContentLength <= 0
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			var werr error
			if chunked {
				bc.bw.WriteString(strconv.FormatInt(int64(n), 16))
				bc.bw.WriteString("\r\n")
				bc.bw.Write(buf[:n])
				_, werr = bc.bw.WriteString("\r\n")
			} else {
				_, werr = bc.bw.Write(buf[:n])
			}
			if werr != nil {
				return &backendWriteError{werr}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if chunked {
		if _, err := bc.bw.WriteString("0\r\n\r\n"); err != nil {
			return &backendWriteError{err}
		}
	}
	return nil
}

// relayHTTPBody copies the response body to the client, flushing whenever
// the backend has nothing more buffered, so streams stream.
func relayHTTPBody(w http.ResponseWriter, body io.Reader, bc *backendConn, idle time.Duration, sized bool) error {
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		bc.refreshRead(time.Now(), idle)
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return &writeError{werr}
			}
			if !sized && bc.br.Buffered() == 0 {
				rc.Flush()
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// skipTrailers consumes the trailer section after the last chunk.
func skipTrailers(br *bufio.Reader) error {
	for {
		line, err := readLine(br, nil)
		if err != nil {
			return err
		}
		if len(line) == 2 {
			return nil
		}
	}
}

// namedIn reports whether one of the Connection field values lists
// name.
func namedIn(conn []string, name string) bool {
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// HeaderSafe drops the bytes that may not appear in a header value (control
// characters other than tab): what a proxy writes into a header it builds.
func HeaderSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return strings.Map(func(r rune) rune {
				if r < 0x20 && r != '\t' || r == 0x7f {
					return -1
				}
				return r
			}, s)
		}
	}
	return s
}

// ValidHeaderName reports whether s is a valid HTTP field name: a
// non-empty RFC 9110 token.
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether b is an RFC 9110 tchar.
func isTokenChar(b byte) bool {
	return tokenTable[b]
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
