package tlsproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// earlyAnswerBackend is a keep-alive HTTP/1.1 target that answers each
// request as soon as its head has arrived, and only then reads (and
// discards) the body: as nginx's `return 200` does, and any server that
// rejects a request on its headers. It answers "early <n>" with n the
// request's Content-Length.
func earlyAnswerBackend(t *testing.T) string {
	t.Helper()
	return testdeps.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		tp := textproto.NewReader(br)
		for {
			if _, err := tp.ReadLine(); err != nil {
				return
			}
			h, err := tp.ReadMIMEHeader()
			if err != nil {
				return
			}
			n, _ := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
			body := fmt.Sprintf("early %d", n)
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				return
			}
		}
	}).Addr()
}

// postEarly sends POSTs of 64 KiB to 1 MiB over one client and wants each
// answered well before the proxy's idle timeout, which is what a missed
// answer would wait for.
func postEarly(t *testing.T, c *http.Client, url string, want func(size int) string) {
	t.Helper()
	const posts = 40
	for i := range posts {
		size := 64<<10 + i*(1<<20-64<<10)/(posts-1)
		req, _ := http.NewRequest("POST", url, bytes.NewReader(bytes.Repeat([]byte("b"), size)))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST %d of %d bytes: %v", i, size, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(b) != want(size) {
			t.Fatalf("POST %d of %d bytes: %s %q, %v; want 200 %q", i, size, resp.Status, b, err, want(size))
		}
	}
}

// TestEarlyAnswerToBody: a target that answers a request before it has
// read the body. Each answer must reach the client as soon as it is
// sent, over HTTP/1.1 and HTTP/2, and not only when the target closes
// the connection or the idle timeout turns it into a 504.
func TestEarlyAnswerToBody(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	targets := map[string]func(t *testing.T) (addr string, want func(int) string){
		"go": func(t *testing.T) (string, func(int) string) {
			return earlyAnswerBackend(t), func(n int) string { return fmt.Sprintf("early %d", n) }
		},
		"nginx": func(t *testing.T) (string, func(int) string) {
			addr := testdeps.StartNginx(t, `server {
	listen 127.0.0.1:{{PORT}};
	client_max_body_size 8m;
	location / { return 200 "early\n"; }
}`)
			return addr, func(int) string { return "early\n" }
		},
	}
	for name, start := range targets {
		t.Run(name, func(t *testing.T) {
			addr, want := start(t)
			if addr == "" {
				return
			}
			// The idle timeout is far above the client's: a missed
			// answer shows as the client's timeout, not a 504.
			r := serverProxy(t, ca, addr, func(c *Config) { c.IdleTimeout = 10 * time.Minute })
			for _, h2 := range []bool{false, true} {
				t.Run(map[bool]string{false: "http1.1", true: "h2"}[h2], func(t *testing.T) {
					c := httpsClient(ca, h2)
					c.Timeout = 60 * time.Second // a bound on a hang, not a speed
					postEarly(t, c, "https://"+r.addr+"/upload", want)
				})
			}
		})
	}
}
