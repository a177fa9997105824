package tlsproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/podkit/podkit/internal/testdeps"
)

// fixedBackend answers every HTTP/1.1 request on a connection with the
// same 1 KiB response, as cheaply as possible, so that benchmarks measure
// the proxy.
func fixedBackend(b testing.TB) string {
	body := strings.Repeat("x", 1024)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return testdeps.ServeTCP(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			// Read one head (these requests have no body).
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}).Addr()
}

// benchProxy measures keep-alive requests through the proxy over one
// TLS connection per parallel client.
func benchProxy(b *testing.B, mode string) {
	addr, conf := benchStart(b, mode)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReaderSize(c, 8192)
		for pb.Next() {
			if err := benchRequest(c, br); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchStart runs a proxy in mode in front of fixedBackend.
func benchStart(b *testing.B, mode string) (addr string, client *tls.Config) {
	ca := testdeps.NewPKI(b, "bench CA")
	dir := b.TempDir()
	certFile, keyFile := ca.ServerFiles(dir)
	cfg := DefaultConfig()
	cfg.Target = fixedBackend(b)
	cfg.CertFile, cfg.KeyFile = certFile, keyFile
	cfg.Mode = mode
	r := startProxy(b, cfg)
	return r.addr, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

var benchReq = []byte("GET /1k HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")

// benchRequest sends one request and reads its response.
func benchRequest(c net.Conn, br *bufio.Reader) error {
	if _, err := c.Write(benchReq); err != nil {
		return err
	}
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	_, err := io.CopyN(io.Discard, br, int64(n))
	return err
}

func BenchmarkHTTP1KeepAlive(b *testing.B) { benchProxy(b, ModeHTTP) }
func BenchmarkTCPKeepAlive(b *testing.B)   { benchProxy(b, ModeTCP) }

// benchHandshake measures one request per TLS connection, with sessions
// resumed as wrk and browsers do.
func benchHandshake(b *testing.B, mode string) {
	addr, conf := benchStart(b, mode)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conf := conf.Clone()
		conf.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		br := bufio.NewReaderSize(nil, 8192)
		for pb.Next() {
			c, err := tls.Dial("tcp", addr, conf)
			if err != nil {
				b.Error(err)
				return
			}
			br.Reset(c)
			err = benchRequest(c, br)
			c.Close()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkHTTP1Handshake(b *testing.B) { benchHandshake(b, ModeHTTP) }
func BenchmarkTCPHandshake(b *testing.B)   { benchHandshake(b, ModeTCP) }
