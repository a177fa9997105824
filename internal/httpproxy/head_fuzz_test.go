package httpproxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	addSeeds(f,
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	)
	f.Fuzz(func(t *testing.T, head []byte) {
		head, ok := firstHead(head)
		if !ok {
			return
		}
		var m msg
		if err := parseRequest(&m, head, "x-forwarded-client-cert"); err != nil {
			return
		}
		if len(m.method) == 0 || len(m.target) == 0 {
			t.Fatal("accepted a request line without method or target")
		}
		if (m.chunked || m.teOther) && m.contentLength >= 0 {
			t.Fatal("accepted both Transfer-Encoding and Content-Length")
		}
		for _, l := range m.lines {
			if l.start < 0 || l.end > len(head) || l.colon <= l.start || l.colon >= l.end {
				t.Fatalf("line offsets out of range: %+v", l)
			}
			line := head[l.start:l.end]
			if !bytes.HasSuffix(line, crlf) || bytes.Contains(line[:len(line)-2], []byte("\n")) {
				t.Fatalf("header line %q is not one CRLF line", line)
			}
			// The fields the engine sets or consumes itself (the package
			// doc's list; other X-Forwarded-* fields pass).
			switch name := strings.ToLower(string(head[l.start:l.colon])); name {
			case "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-client-cert", "forwarded", "connection":
				if l.kind == hKeep {
					t.Fatalf("%s kept", name)
				}
			}
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	addSeeds(f,
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.0 200\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
	)
	f.Fuzz(func(t *testing.T, head []byte) {
		head, ok := firstHead(head)
		if !ok {
			return
		}
		var m msg
		if err := parseResponse(&m, head); err != nil {
			return
		}
		if m.status < 100 || m.status > 999 {
			t.Fatalf("status %d", m.status)
		}
		if m.chunked && m.contentLength >= 0 {
			t.Fatal("chunked with a content length")
		}
	})
}

func FuzzCopyChunked(f *testing.F) {
	addSeeds(f,
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
		"fffffffffffffffff\r\n",
		"0\r\n\r\nGET / HTTP/1.1\r\n",
	)
	f.Fuzz(func(t *testing.T, in []byte) {
		src := bufio.NewReaderSize(bytes.NewReader(in), 64)
		var out bytes.Buffer
		dst := bufio.NewWriter(&out)
		n, err := copyChunked(dst, src, nil)
		dst.Flush()
		if int(n) != out.Len() {
			t.Fatalf("reported %d bytes, wrote %d", n, out.Len())
		}
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatal("output is not a verbatim prefix of the input")
		}
		if err == nil && !bytes.HasSuffix(out.Bytes(), []byte("\r\n\r\n")) && !bytes.Equal(out.Bytes(), []byte("0\r\n\r\n")) {
			t.Fatalf("complete body %q does not end with the last chunk", out.Bytes())
		}
	})
}
