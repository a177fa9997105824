package tlsproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"time"
)

// serveH2 forwards one HTTP/2 request to the target over a pooled
// HTTP/1.1 connection: the request head is written straight into the
// connection's buffer and the response is relayed with the same parser as
// the HTTP/1.1 path, without net/http's transport in between.
func (p *Proxy) serveH2(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { p.m.reqH2.Observe(time.Since(start).Seconds()) }()
	if r.Method == http.MethodConnect {
		p.m.rejected.WithLabelValues("not_implemented").Inc()
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	var (
		bc     *backendConn
		reused bool
		err    error
		resp   msg
		early  bool // answered before the whole body was sent
	)
	for attempt := 0; ; attempt++ {
		bc, reused, err = p.pool.get(hasBody)
		if err != nil {
			code, _, text := p.failure(err) // counted by the dial
			p.m.rejected.WithLabelValues("backend").Inc()
			h2Text(w, code, text)
			return
		}
		p.writeH2RequestHead(bc.bw, r, hasBody)
		if hasBody {
			bc.refreshWrite(time.Now(), p.cfg.IdleTimeout)
			err = copyH2Body(bc, r)
			if err == nil {
				// The target may have answered on the head already:
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
			err = bc.readHead(&resp, start) // sends a deferred request first
		case !isTimeout(err):
			// The target stopped reading: it may have answered first
			// (413 on the head, say).
			if bc.readHead(&resp, start) == nil {
				err, early = nil, true
			}
		}
		// Interim responses are not relayed over HTTP/2.
		for err == nil && resp.status < 200 && resp.status != 101 {
			bc.br.Discard(len(resp.head))
			err = bc.readHead(&resp, start)
		}
		if err != nil && !hasBody && reused && attempt == 0 && !isTimeout(err) {
			bc.close() // a pooled connection the target had closed
			continue
		}
		break
	}
	if err == nil && resp.status == 101 {
		err = errUpgradeH2
	}
	if err != nil {
		bc.close()
		p.h2Fail(w, r, err)
		return
	}
	h := w.Header()
	for _, l := range resp.lines {
		switch l.kind {
		case hKeep:
			name := textproto.CanonicalMIMEHeaderKey(string(resp.head[l.start:l.colon]))
			h[name] = append(h[name], string(trimOWS(resp.head[l.colon+1:l.end-2])))
		case hContentLength:
			if !resp.chunked {
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
		err = relayH2Body(w, body, bc, p.cfg.IdleTimeout, resp.contentLength >= 0)
		if err == nil && resp.chunked {
			err = skipTrailers(bc.br)
		}
		if err == nil && lr != nil && lr.N > 0 {
			err = io.ErrUnexpectedEOF // the target closed early
		}
	}
	if err != nil || !keep {
		bc.close()
		var we *writeError
		if err != nil && !errors.As(err, &we) {
			p.m.backendErrs.WithLabelValues("read").Inc()
			p.log.Warn("target failed mid-response", "target", p.target.String(), "error", err)
			panic(http.ErrAbortHandler) // reset the stream: the body is incomplete
		}
		return
	}
	p.pool.put(bc)
}

// h2Fail answers 502 or 504 for a target that failed before answering,
// saying what failed.
func (p *Proxy) h2Fail(w http.ResponseWriter, r *http.Request, err error) {
	code, kind, text := p.failure(err)
	p.m.backendErrs.WithLabelValues(kind).Inc()
	p.m.rejected.WithLabelValues("backend").Inc()
	p.log.Warn("target failed", "target", p.target.String(), "kind", kind, "method", r.Method, "path", r.URL.Path, "error", err)
	h2Text(w, code, text)
}

// h2Text answers code with a short text body.
func h2Text(w http.ResponseWriter, code int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(text)))
	w.WriteHeader(code)
	io.WriteString(w, text)
}

// h2Drop lists request headers that do not go to the target: hop-by-hop
// ones, and those the proxy sets itself.
var h2Drop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Transfer-Encoding": true, "Upgrade": true, "Proxy-Authorization": true,
	"Content-Length": true, "Host": true, "Forwarded": true,
	"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true,
}

func (p *Proxy) writeH2RequestHead(w *bufio.Writer, r *http.Request, hasBody bool) {
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(r.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	host := r.Host
	if host == "" {
		host = p.targetHost()
	}
	w.WriteString(headerSafe(host))
	w.WriteString("\r\n")
	ccHeader := textproto.CanonicalMIMEHeaderKey(p.cfg.ClientCertHeader)
	for k, vv := range r.Header {
		if h2Drop[k] || k == ccHeader || !validHeaderName(k) {
			continue
		}
		if k == "Cookie" && len(vv) > 1 {
			// HTTP/2 may split cookies; HTTP/1.1 wants one header.
			w.WriteString("Cookie: ")
			for i, v := range vv {
				if i > 0 {
					w.WriteString("; ")
				}
				w.WriteString(headerSafe(v))
			}
			w.WriteString("\r\n")
			continue
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(headerSafe(v))
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
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(ip)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-Proto: https\r\n")
	if r.Host != "" {
		w.WriteString("X-Forwarded-Host: ")
		w.WriteString(headerSafe(r.Host))
		w.WriteString("\r\n")
	}
	if id, ok := r.Context().Value(identityKey{}).(string); ok {
		w.WriteString(p.cfg.ClientCertHeader)
		w.WriteString(": ")
		w.WriteString(id)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
}

// copyH2Body sends the request body: as is with a Content-Length, chunked
// otherwise.
func copyH2Body(bc *backendConn, r *http.Request) error {
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

// relayH2Body copies the response body to the client, flushing whenever
// the target has nothing more buffered, so streams stream.
func relayH2Body(w http.ResponseWriter, body io.Reader, bc *backendConn, idle time.Duration, sized bool) error {
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
