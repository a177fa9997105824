package httpproxy

import (
	"strings"
	"testing"
)

// FuzzServe feeds raw client bytes to the engine, with a real backend
// behind it: the engine never panics, and nothing it forwards is
// ambiguous (checkUnambiguous: one framing per message, strict lines),
// whatever the client sent.
func FuzzServe(f *testing.F) {
	addSeeds(f,
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n0\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nx",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X\r\nX: 1\r\n\r\n",
	)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			return
		}
		answer, backend := exchange(t, raw)
		for _, b := range backend {
			if err := checkUnambiguous([]byte(b)); err != nil {
				t.Fatalf("forwarded an ambiguous message: %v\nclient sent %q\nbackend got %q", err, raw, b)
			}
		}
		codes, closed := statuses(t, answer)
		if n := len(codes); n > 0 && codes[n-1] >= 400 && codes[n-1] != 502 && !closed {
			t.Fatalf("answered %d without Connection: close: %q", codes[n-1], answer)
		}
		if !strings.HasPrefix(answer, "HTTP/1.1 ") && answer != "" {
			t.Fatalf("answer %q", answer)
		}
	})
}
