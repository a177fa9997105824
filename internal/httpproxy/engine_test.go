package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// recorder is a real HTTP/1.1 backend on loopback: it reads requests with
// net/http's parser, answers each "200 ok", and records every byte each
// of its connections received.
type recorder struct {
	srv   *testdeps.TCPServer
	mu    sync.Mutex
	conns []*testdeps.Buffer
}

func newRecorder(t testing.TB) *recorder {
	t.Helper()
	r := &recorder{}
	r.srv = testdeps.ServeTCP(t, func(c net.Conn) {
		buf := new(testdeps.Buffer)
		r.mu.Lock()
		r.conns = append(r.conns, buf)
		r.mu.Unlock()
		r.serve(c, buf)
	})
	return r
}

// addr is the backend's host:port.
func (r *recorder) addr() string { return r.srv.Addr() }

func (r *recorder) serve(c net.Conn, buf *testdeps.Buffer) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(io.TeeReader(c, buf))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

// received waits for the backend's connections to end and returns what
// each received.
func (r *recorder) received() []string {
	r.srv.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.conns {
		out = append(out, b.String())
	}
	return out
}

// exchange sends raw to a fresh engine connection, half-closes, and
// returns everything the engine answered until it closed, and what the
// backend received on each of its connections.
func exchange(t testing.TB, raw []byte) (answer string, backend []string) {
	t.Helper()
	rec := newRecorder(t)
	b := NewBackend("tcp", rec.addr(), 5*time.Second)
	p := New(Config{
		Name: "test", Backend: b,
		// Every exchange ends with the client's FIN: no wait ends by a
		// timeout, and a connection that stalls fails the read below.
		IdleTimeout: 10 * time.Minute, HeaderTimeout: 10 * time.Minute,
		Logger: testLogger(),
	})
	client, server := testdeps.TCPPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.ServeConn(Client{Conn: server, Header: []byte("X-Forwarded-For: 192.0.2.1\r\n")})
		server.Close()
	}()
	go func() {
		client.Write(raw)
		client.(*net.TCPConn).CloseWrite()
	}()
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading the answer: %v (after %q)", err, got)
	}
	<-done
	b.CloseIdle()
	return string(got), rec.received()
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// statuses returns the status codes of the responses in answer, and
// whether the last one said Connection: close.
func statuses(t testing.TB, answer string) (codes []int, closed bool) {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(answer))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes, closed
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		closed = resp.Close
	}
}

// TestSmuggling: each ambiguous or malformed request is answered as RFC
// 9112 requires, and what reaches the backend is asserted: nothing for a
// rejected request; for an accepted form, the one reading of it.
func TestSmuggling(t *testing.T) {
	const ok = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
	tests := []struct {
		name string
		req  string
		want []int // statuses, in order; the last one closes if it is 4xx/5xx
		// backend is what the backend receives (one string per
		// connection, heads compared without the lines the engine
		// adds); nil: nothing at all.
		backend []string
		// backendPrefix, if set, is what the one backend connection's
		// bytes start with (instead of backend).
		backendPrefix string
	}{
		{name: "CL.TE", req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" + ok, want: []int{400}},
		{name: "TE.CL", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n" + ok, want: []int{400}},
		{name: "TE.CL in HTTP/1.0", req: "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "differing Content-Length", req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd" + ok, want: []int{400}},
		{name: "Content-Length list", req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc" + ok, want: []int{400}},
		{name: "Content-Length with sign", req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc" + ok, want: []int{400}},
		{name: "Content-Length hex", req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc" + ok, want: []int{400}},
		{
			// RFC 9112 6.3: the same value repeated may be replaced by
			// one field line: that is what the backend gets.
			name: "same Content-Length twice", req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + ok,
			want:    []int{200, 200},
			backend: []string{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"},
		},
		{name: "TE chunked not last", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "TE other coding only", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc", want: []int{400}},
		{name: "TE coding then chunked", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", want: []int{501}},
		{name: "TE in two lines", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "TE with a space in the name", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", want: []int{400}},
		{name: "TE xchunked", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "obs-fold", req: "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n", want: []int{400}},
		{name: "obs-fold of Transfer-Encoding", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc", want: []int{400}},
		{name: "bare LF line endings", req: "GET / HTTP/1.1\nHost: h\n\n", want: []int{400}},
		{name: "bare LF in one line", req: "GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n", want: []int{400}},
		{name: "bare LF before the end", req: "GET / HTTP/1.1\r\nHost: h\n\r\n", want: []int{400}},
		{name: "bare CR", req: "GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n", want: []int{400}},
		{name: "whitespace before colon", req: "GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", want: []int{400}},
		{name: "whitespace before colon of Content-Length", req: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc", want: []int{400}},
		{name: "two Hosts", req: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", want: []int{400}},
		{name: "no Host", req: "GET / HTTP/1.1\r\n\r\n", want: []int{400}},
		{name: "NUL in a value", req: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", want: []int{400}},
		{name: "space in the target", req: "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", want: []int{400}},
		{name: "HTTP/2.0 request line", req: "GET / HTTP/2.0\r\nHost: h\r\n\r\n", want: []int{505}},

		// Invalid chunk framing: 400. The body is relayed as it comes, so
		// the head and chunks before the bad line may have gone to the
		// backend (not here: they wait in the engine's buffer until it
		// fills or the client pauses; see "bad chunk after a flush");
		// the bad line never does, and the backend connection is closed
		// mid-message.
		{
			name: "chunk size not hex", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n" + ok,
			want: []int{400},
		},
		{
			name: "chunk size with 0x", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n" + ok,
			want: []int{400},
		},
		{
			name: "negative chunk size", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n" + ok,
			want: []int{400},
		},
		{
			name: "chunk size overflow", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n" + ok,
			want: []int{400},
		},
		{
			name: "chunk size line with bare LF", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + ok,
			want: []int{400},
		},
		{
			name: "chunk data longer than its size", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n0\r\n\r\n" + ok,
			want: []int{400},
		},
		{
			name: "bad chunk after a flush", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n" + strings.Repeat("a", 0x4000) + "\r\nzz\r\n0\r\n\r\n" + ok,
			want: []int{400}, backendPrefix: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\naaaa",
		},
		{
			name: "bad trailer line", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nGET /x HTTP/1.1\r\n\r\n" + ok,
			want: []int{400},
		},

		// Accepted forms.
		{
			// The second request and the FIN arrive before the
			// connection starts waiting for a next request: it must
			// still see them (it waited out the idle timeout once).
			name: "pipelined, then the end", req: ok + ok,
			want: []int{200, 200}, backend: []string{ok + ok},
		},
		{
			name: "chunk extension and trailer", req: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" + ok,
			want:    []int{200, 200},
			backend: []string{"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"},
		},
		{
			name: "leading empty lines", req: "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			want: []int{200}, backend: []string{"GET / HTTP/1.1\r\nHost: h\r\n\r\n"},
		},
		{
			name: "hop-by-hop and forged headers dropped", req: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Forwarded-For: 6.6.6.6\r\nTE: trailers\r\nKeep-Alive: 5\r\nX-End: 1\r\n\r\n",
			want: []int{200}, backend: []string{"GET / HTTP/1.1\r\nHost: h\r\nX-End: 1\r\n\r\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer, backend := exchange(t, []byte(tt.req))
			codes, closed := statuses(t, answer)
			if fmt.Sprint(codes) != fmt.Sprint(tt.want) {
				t.Fatalf("answered %v, want %v:\n%s", codes, tt.want, answer)
			}
			if last := tt.want[len(tt.want)-1]; last >= 400 && !closed {
				t.Errorf("answered %d without Connection: close", last)
			}
			var got []string
			for _, b := range backend {
				if b != "" {
					got = append(got, withoutAdded(b))
				}
			}
			if tt.backendPrefix != "" {
				if len(got) != 1 || !strings.HasPrefix(got[0], tt.backendPrefix) || strings.Contains(got[0], "zz") {
					t.Errorf("the backend received %.200q, want one connection starting %q, without the bad line", got, tt.backendPrefix)
				}
			} else if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.backend) {
				t.Errorf("the backend received\n%q\nwant\n%q", got, tt.backend)
			}
			for _, b := range backend {
				if err := checkUnambiguous([]byte(b)); err != nil {
					t.Errorf("ambiguous message forwarded: %v\n%q", err, b)
				}
			}
		})
	}
}

// withoutAdded removes the header lines the engine adds to each request.
func withoutAdded(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\r\n") {
		if strings.HasPrefix(l, "X-Forwarded-For: 192.0.2.1\r\n") || strings.HasPrefix(l, "X-Forwarded-Host: ") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

// checkUnambiguous parses what a backend connection received as a
// sequence of HTTP/1.1 requests, strictly: every head has CRLF lines,
// token field names, at most one Content-Length, not both it and
// Transfer-Encoding, which is only "chunked"; every body is framed by
// one of them exactly. The stream may end inside a message (the engine
// then closed the connection), never with bytes a lenient reader could
// take for something else.
func checkUnambiguous(s []byte) error {
	for len(s) > 0 {
		i := bytes.Index(s, crlfcrlf)
		if i < 0 {
			if hasBareLF(s) || bytes.Contains(s, []byte("\r\n\r")) {
				return fmt.Errorf("incomplete head with a bare line end: %q", s)
			}
			return nil // ends inside a head
		}
		head := s[:i+2]
		s = s[i+4:]
		lines := strings.Split(string(head[:len(head)-2]), "\r\n")
		parts := strings.Split(lines[0], " ")
		if len(parts) != 3 || parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0" || !ValidHeaderName(parts[0]) {
			return fmt.Errorf("request line %q", lines[0])
		}
		cl, te, host := -1, 0, 0
		chunked := false
		for _, l := range append(lines[1:], "") {
			if l == "" {
				continue
			}
			if strings.ContainsAny(l, "\r\n\x00") {
				return fmt.Errorf("line %q", l)
			}
			name, value, ok := strings.Cut(l, ":")
			if !ok || !ValidHeaderName(name) {
				return fmt.Errorf("field line %q", l)
			}
			value = strings.Trim(value, " \t")
			switch strings.ToLower(name) {
			case "content-length":
				if cl >= 0 {
					return errors.New("two Content-Length lines")
				}
				n, err := strconv.Atoi(value)
				if err != nil || n < 0 || strings.TrimLeft(value, "0123456789") != "" {
					return fmt.Errorf("Content-Length %q", value)
				}
				cl = n
			case "transfer-encoding":
				te++
				if !strings.EqualFold(value, "chunked") {
					return fmt.Errorf("Transfer-Encoding %q", value)
				}
				chunked = true
			case "host":
				host++
			}
		}
		if te > 1 || te > 0 && cl >= 0 {
			return errors.New("Transfer-Encoding with Content-Length, or twice")
		}
		if parts[2] == "HTTP/1.1" && host != 1 {
			return fmt.Errorf("%d Host lines", host)
		}
		switch {
		case chunked:
			rest, complete, err := strictChunked(s)
			if err != nil || !complete {
				return err
			}
			s = rest
		case cl > 0:
			if len(s) < cl {
				return nil // ends inside the body
			}
			s = s[cl:]
		}
	}
	return nil
}

// strictChunked consumes one chunked body from s.
func strictChunked(s []byte) (rest []byte, complete bool, err error) {
	for {
		i := bytes.Index(s, crlf)
		if i < 0 {
			if bytes.IndexByte(s, '\n') >= 0 {
				return nil, false, fmt.Errorf("chunk line %q", s)
			}
			return nil, false, nil
		}
		line := string(s[:i])
		s = s[i+2:]
		sizeText, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseUint(strings.TrimRight(sizeText, " \t"), 16, 60)
		if err != nil || strings.ContainsAny(line, "\n\r") {
			return nil, false, fmt.Errorf("chunk size line %q", line)
		}
		if size == 0 {
			for {
				i := bytes.Index(s, crlf)
				if i < 0 {
					return nil, false, nil
				}
				l := s[:i]
				s = s[i+2:]
				if len(l) == 0 {
					return s, true, nil
				}
				if !isFieldLine(l) {
					return nil, false, fmt.Errorf("trailer %q", l)
				}
			}
		}
		if uint64(len(s)) < size+2 {
			if uint64(len(s)) > size && s[size] != '\r' {
				return nil, false, errors.New("chunk data not followed by CR")
			}
			return nil, false, nil
		}
		if s[size] != '\r' || s[size+1] != '\n' {
			return nil, false, errors.New("chunk data not followed by CRLF")
		}
		s = s[size+2:]
	}
}
