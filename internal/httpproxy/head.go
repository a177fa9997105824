package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
)

// HTTP/1.1 message heads, parsed in place: the head is a slice of the
// connection's read buffer, header lines are recorded as offsets and
// copied to the other side verbatim unless they are rewritten.

// Errors from parsing a message head.
var (
	errHeadTooLarge   = errors.New("message head too large")
	errBadRequest     = errors.New("malformed message head")
	errNotImplemented = errors.New("unsupported transfer coding")
	errBadVersion     = errors.New("unsupported HTTP version")
)

// header kinds.
const (
	hKeep uint8 = iota
	hDrop       // hop-by-hop or replaced by the proxy
	hHost
	hContentLength
	hTransferEncoding
	hConnection
	hUpgrade
	hExpect
)

// hline is one header line: head[start:end] includes its CRLF; the name
// ends at colon.
type hline struct {
	start, end, colon int
	kind              uint8
}

// msg is a parsed head.
type msg struct {
	head  []byte
	lines []hline
	// request line / status line parts
	method, target []byte
	http10         bool
	status         int
	// framing and connection management
	contentLength int64 // -1: none
	chunked       bool
	teOther       bool // a transfer coding other than chunked
	clDropped     bool // a response's Content-Length that Transfer-Encoding overrides
	connClose     bool
	connKeepAlive bool
	connUpgrade   bool
	upgrade       []byte
	host          []byte
	hasHost       bool
	expect100     bool
	nConnTokens   int
	connTokens    [8][]byte
}

// readHead returns the next message head (up to and including the empty
// line) from br without consuming it; the caller discards len(head) once
// done with it. Leading empty lines are skipped (RFC 9112 section 2.2).
// block is called before each read that would block.
func readHead(br *bufio.Reader, block func()) ([]byte, error) {
	// Skip CRLFs left over between messages.
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] != '\r' && b[0] != '\n' {
			break
		}
		br.Discard(1)
	}
	from := 0
	for {
		n := br.Buffered()
		buf, _ := br.Peek(n)
		if i := bytes.Index(buf[from:], crlfcrlf); i >= 0 {
			return buf[:from+i+4], nil
		}
		if n >= br.Size() {
			return nil, errHeadTooLarge
		}
		if hasBareLF(buf[max(0, from-1):]) {
			// RFC 9112 2.2 lets a recipient take a bare LF for a line
			// end; the engine does not (see the package doc), and
			// rejects the head now rather than wait for a CRLF CRLF.
			return nil, errBadRequest
		}
		from = max(0, n-3)
		if block != nil {
			block()
		}
		if _, err := br.Peek(n + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errHeadTooLarge
			}
			return nil, err
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// hasBareLF reports whether b holds an LF not preceded by CR (an LF at
// b's start counts as preceded).
func hasBareLF(b []byte) bool {
	for i := 1; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return false
		}
		i += j
		if b[i-1] != '\r' {
			return true
		}
	}
	return false
}

// parseRequest parses a request head into m. extraDrop is a header the
// proxy sets itself (the client-cert header) and so strips.
func parseRequest(m *msg, head []byte, extraDrop string) error {
	m.reset(head)
	eol := bytes.Index(head, crlf)
	line := head[:eol]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest
	}
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp2 <= sp1+1 {
		return errBadRequest
	}
	m.method, m.target = line[:sp1], line[sp1+1:sp2]
	for _, c := range m.method {
		if !isTokenChar(c) {
			return errBadRequest
		}
	}
	for _, c := range m.target {
		if c <= ' ' || c == 0x7f {
			return errBadRequest
		}
	}
	switch v := line[sp2+1:]; {
	case string(v) == "HTTP/1.1":
	case string(v) == "HTTP/1.0":
		m.http10 = true
	case len(v) == 8 && bytes.HasPrefix(v, []byte("HTTP/")) && v[6] == '.':
		return errBadVersion
	default:
		return errBadRequest
	}
	if err := m.parseHeaders(eol+2, true, extraDrop); err != nil {
		return err
	}
	if m.chunked || m.teOther {
		if m.contentLength >= 0 || m.http10 {
			return errBadRequest // request smuggling vector (RFC 9112 6.1)
		}
		if m.teOther {
			return errNotImplemented
		}
	}
	if !m.hasHost && !m.http10 {
		return errBadRequest
	}
	return nil
}

// parseResponse parses a response head into m.
func parseResponse(m *msg, head []byte) error {
	m.reset(head)
	eol := bytes.Index(head, crlf)
	line := head[:eol]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return errBadRequest
	}
	if line[7] == '0' {
		m.http10 = true
	} else if line[7] != '1' {
		return errBadRequest
	}
	st := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errBadRequest
		}
		st = st*10 + int(c-'0')
	}
	if len(line) > 12 && line[12] != ' ' || st < 100 {
		return errBadRequest
	}
	for _, c := range line[min(len(line), 13):] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return errBadRequest // the status line is relayed verbatim
		}
	}
	m.status = st
	if err := m.parseHeaders(eol+2, false, ""); err != nil {
		return err
	}
	if (m.chunked || m.teOther) && m.contentLength >= 0 {
		// Transfer-Encoding overrides Content-Length (RFC 9112 6.3); a
		// coding other than chunked last means until the close.
		m.contentLength = -1
		m.clDropped = true
	}
	return nil
}

var crlf = []byte("\r\n")

func (m *msg) reset(head []byte) {
	lines := m.lines[:0]
	*m = msg{head: head, lines: lines, contentLength: -1}
}

// parseHeaders reads header lines starting at off.
func (m *msg) parseHeaders(off int, req bool, extraDrop string) error {
	head := m.head
	end := len(head) - 2 // the final CRLF
	for off < end {
		i := bytes.Index(head[off:], crlf)
		if i < 0 {
			return errBadRequest
		}
		lineEnd := off + i
		line := head[off:lineEnd]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errBadRequest // includes obs-fold lines starting with SP/HT
		}
		name := line[:colon]
		for _, c := range name {
			if !isTokenChar(c) {
				return errBadRequest
			}
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return errBadRequest
			}
		}
		kind, err := m.classify(name, value, req, extraDrop)
		if err != nil {
			return err
		}
		m.lines = append(m.lines, hline{start: off, end: lineEnd + 2, colon: off + colon, kind: kind})
		off = lineEnd + 2
	}
	// Headers named by Connection are hop-by-hop too.
	for i := range m.nConnTokens {
		tok := m.connTokens[i]
		for j := range m.lines {
			l := &m.lines[j]
			if l.kind == hKeep && bytes.EqualFold(head[l.start:l.colon], tok) {
				l.kind = hDrop
			}
		}
	}
	return nil
}

func (m *msg) classify(name, value []byte, req bool, extraDrop string) (uint8, error) {
	switch len(name) {
	case 2:
		if foldEq(name, "te") {
			return hDrop, nil
		}
	case 4:
		if foldEq(name, "host") && req {
			if m.hasHost {
				return 0, errBadRequest
			}
			m.hasHost, m.host = true, value
			return hHost, nil
		}
	case 6:
		if foldEq(name, "expect") && req {
			if foldEq(value, "100-continue") {
				m.expect100 = true
				return hExpect, nil
			}
		}
	case 7:
		if foldEq(name, "upgrade") {
			m.upgrade = value
			return hUpgrade, nil
		}
	case 9:
		if foldEq(name, "forwarded") && req {
			return hDrop, nil
		}
	case 10:
		if foldEq(name, "connection") {
			m.connectionTokens(value)
			return hConnection, nil
		}
		if foldEq(name, "keep-alive") {
			return hDrop, nil
		}
	case 14:
		if foldEq(name, "content-length") {
			n, ok := parseContentLength(value)
			if !ok || m.contentLength >= 0 && m.contentLength != n {
				return 0, errBadRequest
			}
			if m.contentLength >= 0 {
				// The same value again: one line is forwarded (RFC
				// 9112 6.3 says to replace them with one).
				return hDrop, nil
			}
			m.contentLength = n
			return hContentLength, nil
		}
	case 15:
		if req && foldEq(name, "x-forwarded-for") {
			return hDrop, nil
		}
	case 16:
		if foldEq(name, "proxy-connection") || req && foldEq(name, "x-forwarded-host") {
			return hDrop, nil
		}
	case 17:
		if foldEq(name, "transfer-encoding") {
			if req && (m.chunked || m.teOther) {
				return 0, errBadRequest
			}
			// The final coding decides the framing.
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = trimOWS(value[i+1:])
			}
			if foldEq(last, "chunked") {
				if req && !foldEq(value, "chunked") {
					m.teOther = true // another coding first: 501
				} else {
					m.chunked = true
				}
			} else {
				if req {
					// The length cannot be determined: 400 (RFC 9112
					// 6.3).
					return 0, errBadRequest
				}
				m.teOther = true
				m.chunked = false
			}
			return hTransferEncoding, nil
		}
		if req && foldEq(name, "x-forwarded-proto") {
			return hDrop, nil
		}
	case 19:
		if req && foldEq(name, "proxy-authorization") {
			return hDrop, nil
		}
	}
	if req && len(name) == len(extraDrop) && foldEq(name, extraDrop) {
		return hDrop, nil
	}
	return hKeep, nil
}

// connectionTokens records the Connection header's options.
func (m *msg) connectionTokens(v []byte) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = trimOWS(v[:i]), v[i+1:]
		} else {
			tok, v = trimOWS(v), nil
		}
		switch {
		case len(tok) == 0:
		case foldEq(tok, "close"):
			m.connClose = true
		case foldEq(tok, "keep-alive"):
			m.connKeepAlive = true
		case foldEq(tok, "upgrade"):
			m.connUpgrade = true
		default:
			if m.nConnTokens < len(m.connTokens) {
				m.connTokens[m.nConnTokens] = tok
				m.nConnTokens++
			}
		}
	}
}

// parseContentLength accepts 1*DIGIT up to 18 digits.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// foldEq reports whether b equals the lower-case ASCII string s, ignoring
// case.
func foldEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// chunked bodies are copied verbatim while their framing is followed.

const maxChunkLine = 4096

// copyChunked copies one chunked body (through its trailer section) from
// src to dst. block is called before each read that would block.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, block func()) (int64, error) {
	var total int64
	for {
		line, err := readLine(src, block)
		if err != nil {
			return total, err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return total, err
		}
		dst.Write(line)
		total += int64(len(line))
		if size == 0 {
			// Trailer section, up to the empty line.
			for {
				line, err := readLine(src, block)
				if err != nil {
					return total, err
				}
				if len(line) > 2 && !isFieldLine(line[:len(line)-2]) {
					return total, fmt.Errorf("%w: bad trailer line", errBadRequest)
				}
				dst.Write(line)
				total += int64(len(line))
				if len(line) == 2 {
					return total, nil
				}
			}
		}
		n, err := copyN(dst, src, size, block)
		total += n
		if err != nil {
			return total, err
		}
		// The chunk's data ends in CRLF: checked, not just counted, or
		// the two sides could disagree where the next chunk starts.
		if src.Buffered() < 2 {
			if block != nil {
				block()
			}
		}
		crlf, err := src.Peek(2)
		if err != nil {
			return total, unexpectedEOF(err)
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return total, fmt.Errorf("%w: chunk data not followed by CRLF", errBadRequest)
		}
		dst.Write(crlf)
		src.Discard(2)
		total += 2
	}
}

// isFieldLine reports whether line (without its CRLF) is name: value,
// with a token name and a value without control characters.
func isFieldLine(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	for _, c := range line[:colon] {
		if !isTokenChar(c) {
			return false
		}
	}
	for _, c := range line[colon+1:] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// readLine returns the next CRLF-terminated line (a slice of src's buffer,
// valid until the next read), consuming it.
func readLine(src *bufio.Reader, block func()) ([]byte, error) {
	if buf, _ := src.Peek(src.Buffered()); bytes.IndexByte(buf, '\n') < 0 && block != nil {
		block()
	}
	line, err := src.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: chunk line too long", errBadRequest)
		}
		return nil, unexpectedEOF(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' || len(line) > maxChunkLine {
		return nil, fmt.Errorf("%w: bad chunk line", errBadRequest)
	}
	return line, nil
}

// parseChunkSize parses "HEX[;ext]\r\n".
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	digits := 0
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto done
		}
		if digits++; digits > 15 {
			return 0, fmt.Errorf("%w: chunk size too large", errBadRequest)
		}
		n = n<<4 | int64(d)
	}
done:
	if digits == 0 {
		return 0, fmt.Errorf("%w: bad chunk size", errBadRequest)
	}
	rest := line[i : len(line)-2]
	rest = trimOWS(rest)
	if len(rest) > 0 && rest[0] != ';' {
		return 0, fmt.Errorf("%w: bad chunk size", errBadRequest)
	}
	for _, c := range rest {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, fmt.Errorf("%w: bad chunk extension", errBadRequest)
		}
	}
	return n, nil
}

// copyN copies exactly n bytes from src's buffer to dst.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64, block func()) (int64, error) {
	var done int64
	for done < n {
		if src.Buffered() == 0 {
			if block != nil {
				block()
			}
			if _, err := src.Peek(1); err != nil {
				return done, unexpectedEOF(err)
			}
		}
		k := int(min(n-done, int64(src.Buffered())))
		b, _ := src.Peek(k)
		if _, err := dst.Write(b); err != nil {
			return done, &writeError{err}
		}
		src.Discard(k)
		done += int64(k)
	}
	return done, nil
}

// copyEOF copies src to dst until src ends.
func copyEOF(dst *bufio.Writer, src *bufio.Reader, block func()) (int64, error) {
	var done int64
	for {
		if src.Buffered() == 0 {
			if block != nil {
				block()
			}
			if _, err := src.Peek(1); err != nil {
				if errors.Is(err, errEOF) {
					return done, nil
				}
				return done, err
			}
		}
		k := src.Buffered()
		b, _ := src.Peek(k)
		if _, err := dst.Write(b); err != nil {
			return done, &writeError{err}
		}
		src.Discard(k)
		done += int64(k)
	}
}

// writeError marks an error writing to the destination (as opposed to
// reading the source).
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }
