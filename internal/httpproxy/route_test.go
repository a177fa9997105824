package httpproxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestRoute: Route picks a backend per request, also between requests
// on one keep-alive connection, and a request it has no backend for is
// a 502 that names why; the hooks see each request.
func TestRoute(t *testing.T) {
	recA, recB := newRecorder(t), newRecorder(t)
	a := NewBackend("tcp", recA.addr(), 5*time.Second)
	b := NewBackend("tcp", recB.addr(), 5*time.Second)
	var served, rejected int
	p := New(Config{
		Name: "test",
		Route: func(r *Request) (*Backend, error) {
			switch {
			case bytes.HasPrefix(r.Target(), []byte("/a")):
				return a, nil
			case string(r.Header("X-Pick")) == "b":
				return b, nil
			}
			return nil, errors.New("no route for " + string(r.Target()))
		},
		IdleTimeout: 10 * time.Second, HeaderTimeout: 10 * time.Second,
		Served:   func(string, time.Duration) { served++ },
		Rejected: func(string) { rejected++ },
		Logger:   testLogger(),
	})
	client, server := testdeps.TCPPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.ServeConn(Client{Conn: server})
		server.Close()
	}()
	get := func(path, extra string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n"
	}
	client.Write([]byte(get("/a1", "") + get("/x", "x-pick: b\r\n") + get("/a2", "") + get("/none", "")))
	client.(*net.TCPConn).CloseWrite()
	var answer strings.Builder
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := client.Read(buf)
		answer.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	<-done
	a.CloseIdle()
	b.CloseIdle()
	codes, _ := statuses(t, answer.String())
	if fmt.Sprint(codes) != "[200 200 200 502]" {
		t.Fatalf("answered %v:\n%s", codes, answer.String())
	}
	if !strings.Contains(answer.String(), "test: no route for /none") {
		t.Errorf("the 502 does not say why:\n%s", answer.String())
	}
	paths := func(conns []string) (out []string) {
		for _, c := range conns {
			for _, l := range strings.Split(c, "\r\n") {
				if strings.HasPrefix(l, "GET ") {
					out = append(out, strings.Fields(l)[1])
				}
			}
		}
		return out
	}
	if got := fmt.Sprint(paths(recA.received())); got != "[/a1 /a2]" {
		t.Errorf("backend a got %s", got)
	}
	if got := fmt.Sprint(paths(recB.received())); got != "[/x]" {
		t.Errorf("backend b got %s", got)
	}
	if served != 3 || rejected != 1 {
		t.Errorf("Served called %d times, Rejected %d; want 3 and 1", served, rejected)
	}
}
