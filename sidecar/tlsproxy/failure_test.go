package tlsproxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// resetAfterHead reads a request head and makes the connection's close
// a reset. It reports whether there was a head (the proxy's readiness
// checks connect and close).
func resetAfterHead(c net.Conn) bool {
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == "\r\n" {
			c.(*net.TCPConn).SetLinger(0)
			return true
		}
	}
}

// TestTargetFailureText: what the proxy answers for a target that failed
// before answering says, in a short text body, what failed and where,
// over HTTP/1.1 and HTTP/2.
func TestTargetFailureText(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	silent := testdeps.SilentTCP(t)
	closes := testdeps.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				return
			}
		}
	}).Addr()
	garbage := testdeps.ServeTCP(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "SMTP ready\r\n\r\n")
	}).Addr()
	missing := "unix:" + filepath.Join(t.TempDir(), "no.sock")
	tests := []struct {
		name, target string
		idle         time.Duration
		status       int
		body         string
	}{
		{"refused", dead, 0, 502, "tls-proxy: target " + dead + " refused the connection\n"},
		{"no socket", missing, 0, 502, "tls-proxy: target " + missing + " does not exist\n"},
		{"closed before answering", closes, 0, 502, "tls-proxy: target " + closes + " closed the connection before answering\n"},
		{"malformed answer", garbage, 0, 502, "tls-proxy: target " + garbage + " sent a malformed response\n"},
		{"no answer", silent, time.Second, 504, "tls-proxy: target " + silent + " did not answer within 1s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := serverProxy(t, ca, tt.target, func(c *Config) {
				if tt.idle > 0 {
					c.IdleTimeout = tt.idle
				}
			})
			for _, h2 := range []bool{false, true} {
				resp, err := httpsClient(ca, h2).Get("https://" + r.addr + "/x")
				if err != nil {
					t.Fatalf("h2=%v: %v", h2, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || string(b) != tt.body {
					t.Errorf("h2=%v: %d %q, want %d %q", h2, resp.StatusCode, b, tt.status, tt.body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("h2=%v: Content-Type %q", h2, ct)
				}
			}
		})
	}
}

// TestBodyWriteFails: the target resets the connection after the head
// of a request whose body comes later (Expect: 100-continue), so the
// last write of the request fails. The client gets a 502 saying so, not
// a closed connection.
func TestBodyWriteFails(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	reset := make(chan struct{}, 1)
	target := testdeps.ServeTCP(t, func(c net.Conn) {
		if resetAfterHead(c) {
			c.Close()
			select {
			case reset <- struct{}{}:
			default: // told already
			}
		}
	}).Addr()
	r := serverProxy(t, ca, target, nil)
	c, err := tls.Dial("tcp", r.addr, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // bounds a hang
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != 100 {
		t.Fatalf("want 100 Continue first: %v %v", cont, err)
	}
	<-reset // the target has read the head and reset the connection
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer after the write to the target failed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "tls-proxy: target " + target + " closed the connection while the request was sent\n"
	if resp.StatusCode != 502 || string(b) != want {
		t.Errorf("%d %q, want 502 %q", resp.StatusCode, b, want)
	}
	if v := r.metric(t, `podkit_tlsproxy_backend_errors_total{kind="write"}`); v != 1 {
		t.Errorf(`backend_errors_total{kind="write"} = %v, want 1`, v)
	}
}

// TestAnswerBeforeResetRelayed: a target that refuses a large upload on
// its head (413) and resets the connection without reading the body.
// Writing the body then fails, but the target's answer is there to be
// read: the client gets it, not a 502.
func TestAnswerBeforeResetRelayed(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	target := testdeps.ServeTCP(t, func(c net.Conn) {
		if !resetAfterHead(c) {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 10\r\nConnection: close\r\n\r\ntoo large\n")
	}).Addr()
	r := serverProxy(t, ca, target, nil)
	body := strings.Repeat("u", 32<<20) // far more than the socket buffers hold
	for _, h2 := range []bool{false, true} {
		c := httpsClient(ca, h2)
		c.Timeout = 60 * time.Second // bounds a hang
		resp, err := c.Post("https://"+r.addr+"/upload", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(b) != "too large\n" {
			t.Errorf("h2=%v: %d %q, want the target's 413", h2, resp.StatusCode, b)
		}
	}
	if v := r.metric(t, `podkit_tlsproxy_backend_errors_total{kind="write"}`); v != 0 {
		t.Errorf(`backend_errors_total{kind="write"} = %v, want 0: the target answered`, v)
	}
}

// TestAcceptBackoff: accepts that fail for want of a resource are spaced
// 5ms, doubling, at most 1s, as before the schedule came from retry.
func TestAcceptBackoff(t *testing.T) {
	var want time.Duration
	for n := 1; n <= 20; n++ {
		want = min(max(2*want, 5*time.Millisecond), time.Second)
		if got := acceptBackoff.Delay(n); got != want {
			t.Errorf("delay after %d failures = %s, want %s", n, got, want)
		}
	}
}
