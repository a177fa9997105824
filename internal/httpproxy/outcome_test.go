package httpproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// serveProxy serves p's ServeConn on a loopback listener until the test
// ends, and returns its URL.
func serveProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	srv := testdeps.ServeTCP(t, func(c net.Conn) { p.ServeConn(Client{Conn: c}) })
	return "http://" + srv.Addr()
}

// outcomes records Pick's attempts and the outcomes reported.
type outcomes struct {
	mu    sync.Mutex
	picks []string
	got   []Outcome
	errs  []string
}

func (o *outcomes) bad(format string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, fmt.Sprintf(format, a...))
}

func (o *outcomes) add(b *Backend) func(Outcome) bool {
	o.mu.Lock()
	o.picks = append(o.picks, b.String())
	o.mu.Unlock()
	return func(out Outcome) bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.got = append(o.got, out)
		return true
	}
}

func (o *outcomes) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	parts := o.errs
	for _, g := range o.got {
		parts = append(parts, fmt.Sprintf("%d/%s/%t", g.Status, g.Failure, g.Retryable))
	}
	return strings.Join(parts, " ")
}

func deadBackend(t *testing.T) *Backend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return NewBackend("tcp", addr, 5*time.Second)
}

// resetBackend reads a request head and closes the connection without
// answering.
func resetBackend(t *testing.T) *Backend {
	srv := testdeps.ServeTCP(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		c.Read(buf)
	})
	return NewBackend("tcp", srv.Addr(), 5*time.Second)
}

func okBackend(t *testing.T, status int) *Backend {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
		io.WriteString(w, "from "+r.Host)
	}))
	t.Cleanup(s.Close)
	return NewBackend("tcp", strings.TrimPrefix(s.URL, "http://"), 5*time.Second)
}

// seqPick picks backends[attempt] (the last one for later attempts).
func seqPick(rec *outcomes, backends ...*Backend) func(*Request, int) (*Backend, func(Outcome) bool, error) {
	return func(r *Request, attempt int) (*Backend, func(Outcome) bool, error) {
		b := backends[min(attempt, len(backends)-1)]
		// Data lives across the attempts of one request, and the
		// client's address is known.
		switch {
		case attempt == 0 && r.Data() != nil:
			rec.bad("attempt 0 sees data %v", r.Data())
		case attempt > 0 && r.Data() != "set by attempt 0":
			rec.bad("attempt %d sees data %v", attempt, r.Data())
		case !strings.HasPrefix(r.RemoteAddr(), "127.0.0.1:"):
			rec.bad("RemoteAddr = %q", r.RemoteAddr())
		}
		if attempt == 0 {
			r.SetData("set by attempt 0")
		}
		return b, rec.add(b), nil
	}
}

func send(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPickRetry: an idempotent bodiless request whose connect failed, or
// whose connection was closed before any answer, goes to the backend
// Pick picks next when done asks for it; a request with a body, a POST,
// or a failure done does not want retried is answered with the first
// failure. Every attempt is reported once.
func TestPickRetry(t *testing.T) {
	ok := okBackend(t, 200)
	for _, tc := range []struct {
		name      string
		first     *Backend
		method    string
		body      string
		code      int
		outcomes  string
		picks     int
		noRetries bool
	}{
		{"GET after a failed connect", deadBackend(t), "GET", "", 200, "0/dial/true 200//false", 2, false},
		{"DELETE after a failed connect", deadBackend(t), "DELETE", "", 200, "0/dial/true 200//false", 2, false},
		{"GET after a close before the answer", resetBackend(t), "GET", "", 200, "0/read/true 200//false", 2, false},
		{"POST after a failed connect", deadBackend(t), "POST", "x", 502, "0/dial/false", 1, false},
		{"POST without a body after a close", resetBackend(t), "POST", "", 502, "0/read/false", 1, false},
		{"PUT with a body after a close", resetBackend(t), "PUT", "data", 502, "0/read/false", 1, false},
		{"GET when done wants no retry", deadBackend(t), "GET", "", 502, "0/dial/true", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &outcomes{}
			pick := seqPick(rec, tc.first, ok)
			if tc.noRetries {
				pick = func(r *Request, attempt int) (*Backend, func(Outcome) bool, error) {
					done := rec.add(tc.first)
					return tc.first, func(o Outcome) bool { done(o); return false }, nil
				}
			}
			p := New(Config{Name: "test", Pick: pick, IdleTimeout: 10 * time.Second, HeaderTimeout: 10 * time.Second, Logger: testLogger()})
			code, body := send(t, tc.method, serveProxy(t, p)+"/x", tc.body)
			if code != tc.code {
				t.Errorf("%s = %d %q, want %d", tc.method, code, body, tc.code)
			}
			testdeps.WaitFor(t, "the outcomes", func() bool { return rec.String() == tc.outcomes })
			if len(rec.picks) != tc.picks {
				t.Errorf("Pick called %d times (%v), want %d", len(rec.picks), rec.picks, tc.picks)
			}

			// The same over ServeHTTP (an HTTP/2 stream's path).
			rec2 := &outcomes{}
			p2 := New(Config{Name: "test", Pick: seqPick(rec2, tc.first, ok), IdleTimeout: 10 * time.Second, Logger: testLogger()})
			if tc.noRetries {
				return
			}
			hs := httptest.NewServer(p2)
			defer hs.Close()
			code, body = send(t, tc.method, hs.URL+"/x", tc.body)
			if code != tc.code {
				t.Errorf("ServeHTTP: %s = %d %q, want %d", tc.method, code, body, tc.code)
			}
			testdeps.WaitFor(t, "the outcomes of ServeHTTP", func() bool { return rec2.String() == tc.outcomes })
		})
	}
}

// TestPickOutcomes: the status of an answer is reported, a StatusError
// sets the status of a request Pick has no backend for, and a backend
// that does not answer within ResponseTimeout is a 504 reported as a
// timeout.
func TestPickOutcomes(t *testing.T) {
	b503 := okBackend(t, 503)
	rec := &outcomes{}
	p := New(Config{Name: "test", Pick: seqPick(rec, b503), IdleTimeout: 10 * time.Second, HeaderTimeout: 10 * time.Second, Logger: testLogger()})
	if code, _ := send(t, "GET", serveProxy(t, p)+"/", ""); code != 503 {
		t.Errorf("GET = %d, want the backend's 503", code)
	}
	testdeps.WaitFor(t, "the 503 reported", func() bool { return rec.String() == "503//false" })

	none := New(Config{Name: "test", Logger: testLogger(), IdleTimeout: 10 * time.Second, HeaderTimeout: 10 * time.Second,
		Pick: func(*Request, int) (*Backend, func(Outcome) bool, error) {
			return nil, nil, &StatusError{Code: 503, Err: errors.New(`upstream "web": no usable endpoint`)}
		}})
	code, body := send(t, "GET", serveProxy(t, none)+"/", "")
	if code != 503 || !strings.Contains(body, `test: upstream "web": no usable endpoint`) {
		t.Errorf("no backend: %d %q, want 503 naming why", code, body)
	}
	hs := httptest.NewServer(none)
	defer hs.Close()
	if code, _ := send(t, "GET", hs.URL, ""); code != 503 {
		t.Errorf("no backend over ServeHTTP: %d, want 503", code)
	}

	silent := testdeps.ServeTCP(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c)
	})
	rec = &outcomes{}
	slow := New(Config{Name: "test", Pick: seqPick(rec, NewBackend("tcp", silent.Addr(), 5*time.Second)),
		IdleTimeout: 30 * time.Second, HeaderTimeout: 10 * time.Second, ResponseTimeout: 200 * time.Millisecond, Logger: testLogger()})
	code, body = send(t, "GET", serveProxy(t, slow)+"/", "")
	if code != 504 || !strings.Contains(body, "did not answer within 200ms") {
		t.Errorf("silent backend: %d %q, want 504 naming the response timeout", code, body)
	}
	testdeps.WaitFor(t, "the timeout reported", func() bool { return rec.String() == "0/timeout/false" })
}

// TestAbort: Abort closes a connection with a request in flight, which
// then fails at once instead of waiting for the backend.
func TestAbort(t *testing.T) {
	silent := testdeps.ServeTCP(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c)
	})
	be := NewBackend("tcp", silent.Addr(), 5*time.Second)
	p := New(Config{Name: "test", Backend: be, IdleTimeout: 30 * time.Second, HeaderTimeout: 10 * time.Second, Logger: testLogger()})
	url := serveProxy(t, p)
	got := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	testdeps.WaitFor(t, "a connection in use", func() bool {
		be.mu.Lock()
		defer be.mu.Unlock()
		return len(be.open) == 1
	})
	be.Abort()
	select {
	case code := <-got:
		if code != 502 {
			t.Errorf("the request in flight got %d, want 502", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request in flight was not ended by Abort")
	}
}
