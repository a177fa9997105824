package httpproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestServeHTTP: a request net/http has read goes to the backend as
// HTTP/1.1 with the context's header lines, without hop-by-hop fields,
// forged X-Forwarded-* or the caller's own header; a body without a
// length goes chunked; the answer comes back with its status and fields.
func TestServeHTTP(t *testing.T) {
	rec := newRecorder(t)
	b := NewBackend("tcp", rec.addr(), 5*time.Second)
	p := New(Config{Name: "test", Backend: b, IdleTimeout: time.Minute, DropHeader: "x-client-cert", Logger: testLogger()})
	srv := httptest.NewUnstartedServer(p)
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return WithHeader(ctx, []byte("X-Forwarded-For: 192.0.2.1\r\nX-Client-Cert: real\r\n"))
	}
	srv.Start()
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/p?q=1", io.NopCloser(strings.NewReader("body")))
	req.ContentLength = -1
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Client-Cert", "forged")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("X-Keep", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "ok" {
		t.Fatalf("answer %s %q", resp.Status, got)
	}
	srv.Close()
	b.CloseIdle()
	conns := rec.received()
	if len(conns) != 1 {
		t.Fatalf("backend connections: %q", conns)
	}
	fwd := conns[0]
	for _, want := range []string{"POST /p?q=1 HTTP/1.1\r\n", "Transfer-Encoding: chunked\r\n", "X-Forwarded-For: 192.0.2.1\r\n", "X-Client-Cert: real\r\n", "X-Keep: yes\r\n", "4\r\nbody\r\n0\r\n\r\n"} {
		if !strings.Contains(fwd, want) {
			t.Errorf("forwarded request lacks %q:\n%s", want, fwd)
		}
	}
	for _, bad := range []string{"6.6.6.6", "forged", "X-Hop"} {
		if strings.Contains(fwd, bad) {
			t.Errorf("forwarded request has %q:\n%s", bad, fwd)
		}
	}
	if err := checkUnambiguous([]byte(fwd)); err != nil {
		t.Error(err)
	}
}
