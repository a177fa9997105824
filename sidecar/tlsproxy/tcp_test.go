package tlsproxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/podkit/podkit/internal/testdeps"
)

// echoTCP is a TCP echo server on loopback. With proxyProto it first
// parses a PROXY header with go-proxyproto and sends the header it got on
// headers.
func echoTCP(t *testing.T, proxyProto bool) (addr string, headers <-chan *proxyproto.Header) {
	t.Helper()
	hc := make(chan *proxyproto.Header, 16)
	addr = testdeps.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if proxyProto {
			h, err := proxyproto.Read(br)
			if err != nil {
				t.Errorf("PROXY header: %v", err)
				return
			}
			if h.Command == proxyproto.LOCAL {
				return // the proxy's health check
			}
			hc <- h
		}
		io.Copy(c, br)
	}).Addr()
	return addr, hc
}

func TestTCPModeProxyProtocol(t *testing.T) {
	serverCA, clientCA := testdeps.NewPKI(t, "server CA"), testdeps.NewPKI(t, "client CA")
	caFile := filepath.Join(t.TempDir(), "ca.PEM")
	os.WriteFile(caFile, clientCA.PEM, 0o600)
	backend, headers := echoTCP(t, true)
	r := serverProxy(t, serverCA, backend, func(c *Config) {
		c.Mode = ModeTCP
		c.ProxyProtocol = true
		c.ClientCA = caFile
	})
	_, _, alice := clientCA.Issue(testdeps.Leaf{CN: "alice", Client: true})
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			conn, err := tls.Dial("tcp", r.addr, &tls.Config{
				RootCAs: serverCA.Pool, ServerName: "localhost", Certificates: []tls.Certificate{alice},
				MinVersion: version, MaxVersion: version,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			msg := strings.Repeat("ping ", 20000)
			go io.WriteString(conn, msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatal(err)
			}
			if string(got) != msg {
				t.Error("echo differs")
			}
			// Half-close: the target sees EOF, finishes, and so do we.
			if err := conn.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n, err := conn.Read(got[:1]); err != io.EOF {
				t.Errorf("after CloseWrite: read %d, %v; want EOF", n, err)
			}

			h := <-headers
			if h.Version != 2 || h.Command != proxyproto.PROXY || h.TransportProtocol != proxyproto.TCPv4 {
				t.Errorf("header version %d command %v transport %v", h.Version, h.Command, h.TransportProtocol)
			}
			if src := h.SourceAddr.String(); src != conn.LocalAddr().String() {
				t.Errorf("PROXY source %s, want the client's %s", src, conn.LocalAddr())
			}
			if dst := h.DestinationAddr.String(); dst != r.addr {
				t.Errorf("PROXY destination %s, want %s", dst, r.addr)
			}
			tlvs, err := h.TLVs()
			if err != nil {
				t.Fatal(err)
			}
			ssl, ok := tlvparse.FindSSL(tlvs)
			if !ok {
				t.Fatal("no PP2_TYPE_SSL TLV")
			}
			if !ssl.ClientSSL() || !ssl.ClientCertConn() || !ssl.Verified() {
				t.Errorf("SSL TLV: ssl %v cert %v verified %v", ssl.ClientSSL(), ssl.ClientCertConn(), ssl.Verified())
			}
			if cn, _ := ssl.ClientCN(); cn != "alice" {
				t.Errorf("SSL CN %q, want alice", cn)
			}
			wantV := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[version]
			if v, _ := ssl.SSLVersion(); v != wantV {
				t.Errorf("SSL version %q, want %q", v, wantV)
			}
			authority := ""
			for _, tlv := range tlvs {
				if tlv.Type == proxyproto.PP2_TYPE_AUTHORITY {
					authority = string(tlv.Value)
				}
			}
			if authority != "localhost" {
				t.Errorf("authority TLV %q, want the SNI localhost", authority)
			}
		})
	}
}

func TestTCPModePlain(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	backend, _ := echoTCP(t, false)
	r := serverProxy(t, ca, backend, func(c *Config) { c.Mode = ModeTCP })
	conn, err := tls.Dial("tcp", r.addr, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for i := range 100 {
		msg := fmt.Sprintf("line %d\n", i)
		io.WriteString(conn, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("round %d: %q, %v", i, got, err)
		}
	}
}

func TestTCPModeUnixTarget(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	sock := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "unix %s %s", r.Host, r.Header.Get("X-Forwarded-Proto"))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	for _, mode := range []string{ModeHTTP, ModeTCP} {
		t.Run(mode, func(t *testing.T) {
			r := serverProxy(t, ca, "unix:"+sock, func(c *Config) { c.Mode = mode })
			for _, h2 := range []bool{false, true} {
				c := httpsClient(ca, h2)
				// At layer 4 an idle keep-alive connection is still a
				// connection: close it, or stopping waits for it.
				defer c.CloseIdleConnections()
				resp, err := c.Get("https://" + r.addr + "/")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := "unix " + r.addr + " https"
				if mode == ModeTCP {
					want = "unix " + r.addr + " " // no headers added at L4
				}
				if string(b) != want {
					t.Errorf("h2=%v: %q, want %q", h2, b, want)
				}
				if mode == ModeTCP {
					break // tcp mode offers no ALPN: HTTP/1.1 only
				}
			}
		})
	}
}

// TestSlowClients checks that clients that hold connections without
// sending are cut off.
func TestSlowClients(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	backend := echoBackend(t)
	tcpBackend, _ := echoTCP(t, false)
	// Only the proxy that tests handshake timeouts has a short one: the
	// others must complete handshakes however loaded the machine is.
	hsProxy := serverProxy(t, ca, backend, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	short := func(c *Config) {
		c.HeaderTimeout = 300 * time.Millisecond
		c.IdleTimeout = 400 * time.Millisecond
	}
	httpProxy := serverProxy(t, ca, backend, func(c *Config) { short(c); c.IdleTimeout = 3 * time.Second })
	idleProxy := serverProxy(t, ca, backend, short)
	tcpProxy := serverProxy(t, ca, tcpBackend, func(c *Config) { short(c); c.Mode = ModeTCP })
	dialTLS := func(addr string) *tls.Conn {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	tests := []struct {
		name string
		conn func() net.Conn
		// trickle, if set, is sent one byte at a time every 100ms.
		trickle string
	}{
		{"no handshake", func() net.Conn {
			c, err := net.Dial("tcp", hsProxy.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}, ""},
		{"partial client hello", func() net.Conn {
			c, err := net.Dial("tcp", hsProxy.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
			return c
		}, ""},
		{"idle after handshake", func() net.Conn { return dialTLS(idleProxy.addr) }, ""},
		{"idle tcp mode", func() net.Conn { return dialTLS(tcpProxy.addr) }, ""},
		{"trickled request headers", func() net.Conn { return dialTLS(httpProxy.addr) },
			"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + strings.Repeat("a", 200) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.conn()
			closed := make(chan error, 1)
			go func() {
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				_, err := c.Read(make([]byte, 1))
				closed <- err
			}()
			if tt.trickle != "" {
				for i := 0; i < len(tt.trickle); i++ {
					select {
					case err := <-closed:
						checkClosed(t, err)
						if i == len(tt.trickle) {
							t.Error("connection closed only after the full request")
						}
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := c.Write([]byte{tt.trickle[i]}); err != nil {
						<-closed
						return // closed by the proxy
					}
				}
				t.Fatal("the whole request was trickled in without the proxy closing the connection")
			}
			checkClosed(t, <-closed)
		})
	}
	if v := hsProxy.metric(t, `podkit_tlsproxy_handshake_errors_total{reason="timeout"}`); v < 2 {
		t.Errorf("handshake timeout errors = %v, want >= 2", v)
	}
}

// checkClosed wants the read to end with EOF or a reset, not our own
// 20s deadline.
func checkClosed(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the proxy did not close the connection")
	}
	if err == nil {
		t.Fatal("read data instead of a close")
	}
}

func TestRedirectHTTP(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redirect := ln.Addr().String()
	ln.Close()
	r := serverProxy(t, ca, echoBackend(t), func(c *Config) { c.RedirectHTTP = redirect })
	_, port, _ := net.SplitHostPort(r.addr)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	testdeps.WaitFor(t, "the redirect listener answering", func() bool {
		req, _ := http.NewRequest("GET", "http://"+redirect+"/a/b?c=d", nil)
		req.Host = "app.example.com:8080"
		var err error
		resp, err = c.Do(req)
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("status %s, want 301", resp.Status)
	}
	if loc, want := resp.Header.Get("Location"), "https://app.example.com:"+port+"/a/b?c=d"; loc != want {
		t.Errorf("Location %q, want %q", loc, want)
	}
}

// TestMaxConns holds the only slot and checks that a second client is
// served once the first leaves.
func TestMaxConns(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	r := serverProxy(t, ca, echoBackend(t), func(c *Config) { c.MaxConns = 1 })
	cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	first, err := tls.Dial("tcp", r.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", r.addr, cfg)
		if err == nil {
			c.Close()
		}
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("second connection handshook while the only slot was taken (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	first.Close()
	if err := <-second; err != nil {
		t.Fatalf("second connection after the first closed: %v", err)
	}
}
