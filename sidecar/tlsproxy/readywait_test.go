package tlsproxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestKeepAliveWait: from the second request on, a connection waits for
// the next one without reading (readyWait). Requests that arrive while
// the previous one is with the target, in separate TLS records, or in
// one, are all answered in order; an idle connection still times out,
// and a stop closes it.
func TestKeepAliveWait(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	r := serverProxy(t, ca, echoBackend(t), func(c *Config) { c.IdleTimeout = 2 * time.Second })
	cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
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

	t.Run("pipelined after large bodies", func(t *testing.T) {
		c, br := dial(t)
		for _, size := range []int{100, 15000, 20000, 40000} {
			body := strings.Repeat("b", size)
			// One write: crypto/tls cuts it into records of up to 16 KiB,
			// the next request sharing the last one.
			io.WriteString(c, "POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n"+body+get("/after"))
			expect(t, br, "/post")
			expect(t, br, "/after")
		}
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

func TestRecordScan(t *testing.T) {
	rec := func(n int) []byte { // a record with n bytes of payload
		return append([]byte{23, 3, 3, byte(n >> 8), byte(n)}, make([]byte, n)...)
	}
	cat := func(bs ...[]byte) (out []byte) {
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name  string
		reads [][]byte
		whole bool // after the last read
	}{
		{"one record", [][]byte{rec(300)}, true},
		{"two records", [][]byte{cat(rec(300), rec(20))}, false},
		{"a record and a part", [][]byte{cat(rec(300), rec(20)[:3])}, false},
		{"the rest of a record", [][]byte{rec(300)[:100], rec(300)[100:]}, false},
		{"a split header, then a whole record", [][]byte{rec(10)[:2], rec(10)[2:], rec(40)}, true},
		{"empty record", [][]byte{rec(0)}, true},
		{"large record", [][]byte{rec(16400)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recordScan
			for _, b := range tt.reads {
				r.scan(b)
			}
			if r.whole != tt.whole {
				t.Errorf("whole = %v, want %v", r.whole, tt.whole)
			}
		})
	}
}
