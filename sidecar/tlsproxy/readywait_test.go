package tlsproxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestKeepAliveWait: from the second request on, a connection waits for
// the next one without reading (readyWait). Requests that arrive while
// the previous one is with the target, in separate TLS records, or in
// one, are all answered in order; an idle connection still times out,
// and a stop closes it.
func TestKeepAliveWait(t *testing.T) {
	ca := newPKI(t, "CA")
	r := serverProxy(t, ca, echoBackend(t), func(c *Config) { c.IdleTimeout = 2 * time.Second })
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	dial := func(t *testing.T) (*tls.Conn, *bufio.Reader) {
		c, err := tls.Dial("tcp", r.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	expect := func(t *testing.T, br *bufio.Reader, want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response for %s: %v", want, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (want == "/slow" && string(b) != "slow done") ||
			(want != "/slow" && !strings.Contains(string(b), `"Path":"`+want+`"`)) {
			t.Fatalf("response for %s: %s %q", want, resp.Status, b)
		}
	}
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n" }

	t.Run("pipelined", func(t *testing.T) {
		c, br := dial(t)
		for i := 0; i < 3; i++ { // the first requests make the connection wait
			io.WriteString(c, get("/a"))
			expect(t, br, "/a")
		}
		// /b arrives while /slow is with the target, /c and /d in one
		// record after it.
		io.WriteString(c, get("/slow"))
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, get("/b"))
		io.WriteString(c, get("/c")+get("/d"))
		for _, p := range []string{"/slow", "/b", "/c", "/d"} {
			expect(t, br, p)
		}
		// And one after a pause.
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, get("/e"))
		expect(t, br, "/e")
	})

	t.Run("idle timeout", func(t *testing.T) {
		c, br := dial(t)
		for i := 0; i < 2; i++ {
			io.WriteString(c, get("/a"))
			expect(t, br, "/a")
		}
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("read a byte from an idle connection")
		}
		if d := time.Since(start); d < time.Second || d > 8*time.Second {
			t.Errorf("idle connection closed after %v, want about 2s", d)
		}
	})

	t.Run("stop", func(t *testing.T) {
		c, br := dial(t)
		for i := 0; i < 2; i++ {
			io.WriteString(c, get("/a"))
			expect(t, br, "/a")
		}
		r.cancel()
		c.SetReadDeadline(time.Now().Add(1 * time.Second))
		if _, err := br.ReadByte(); err == nil || isTimeout(err) {
			t.Errorf("idle connection after the stop: %v, want it closed", err)
		}
	})
}
