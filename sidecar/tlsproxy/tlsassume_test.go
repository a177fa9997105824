package tlsproxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// holdConn is a client's socket whose writes can be held and sent as one
// write, so that several TLS records reach the server in one segment.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (c *holdConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		return c.buf.Write(b)
	}
	return c.Conn.Write(b)
}

func (c *holdConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	_, err := c.Conn.Write(c.buf.Bytes())
	c.buf.Reset()
	return err
}

// TestCryptoTLSAssumptions guards what tls-proxy's HTTP/1 path assumes
// about crypto/tls's record handling (h1client.Pending, recordScan,
// trackedConn.probe), so that a Go upgrade that changes it fails here,
// by name, instead of making keep-alive connections stall or drop
// pipelined requests. If this fails, fix h1client.Pending to ask
// crypto/tls less (the engine is correct with a Pending that always
// probes, or with no Buffer when probing itself is what broke).
func TestCryptoTLSAssumptions(t *testing.T) {
	cert, err := SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			a, b := testdeps.TCPPair(t)
			hc := &holdConn{Conn: a}
			client := tls.Client(hc, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
			raw := &trackedConn{Conn: b, sock: b, p: &Proxy{m: newMetrics()}, scan: true}
			server := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: v, MaxVersion: v})
			hs := make(chan error, 1)
			go func() { hs <- client.Handshake() }()
			if err := server.Handshake(); err != nil {
				t.Fatal(err)
			}
			if err := <-hs; err != nil {
				t.Fatal(err)
			}
			b.SetDeadline(time.Now().Add(30 * time.Second))
			c := &h1client{Conn: server, raw: raw}
			buf := make([]byte, 4096)
			probe := func() error {
				raw.probe = true
				defer func() { raw.probe = false }()
				_, err := c.Read(buf)
				return err
			}
			write := func(parts ...string) {
				t.Helper()
				hc.mu.Lock()
				hc.hold = true
				hc.mu.Unlock()
				for _, p := range parts {
					if _, err := client.Write([]byte(p)); err != nil { // one record each
						t.Fatal(err)
					}
				}
				if err := hc.release(); err != nil {
					t.Fatal(err)
				}
			}

			// 1. A probe's error comes back unchanged and leaves the
			// connection usable.
			if err := probe(); err != errNothingBuffered {
				t.Fatalf("crypto/tls assumption broken: a read that finds the socket empty (a temporary net.Error from the underlying conn) "+
					"must come back from tls.Conn.Read as that same error; got %v. h1client.Pending's probe relies on it", err)
			}
			write("first")
			if n, err := c.Read(buf); err != nil || string(buf[:n]) != "first" {
				t.Fatalf("crypto/tls assumption broken: a temporary net.Error from the underlying conn must not fail the tls.Conn; "+
					"the next read got %q, %v. h1client.Pending's probe relies on it", buf[:n], err)
			}

			// 2. One record read whole: recordScan says so, and crypto/tls
			// holds nothing more (the probe reaches the socket).
			if !raw.recs.whole {
				t.Fatal("recordScan: a socket read of one whole record is not marked whole")
			}
			if c.more {
				t.Fatal("a short read marked more")
			}
			if err := probe(); err != errNothingBuffered {
				t.Fatalf("crypto/tls assumption broken: after returning all of the one record it read, tls.Conn.Read must read the socket again; "+
					"the probe got %v. h1client.Pending's shortcut (!more && recs.whole) relies on it", err)
			}

			// 3. A record's plaintext comes back whole to a Read with
			// room for it, and only as much as fits to one without.
			write(string(bytes.Repeat([]byte("x"), 100)))
			if n, err := c.Read(buf[:60]); n != 60 || err != nil {
				t.Fatalf("read of 60 from a 100-byte record: %d, %v", n, err)
			}
			if !c.more {
				t.Fatal("a full read not marked more")
			}
			if n, err := c.Read(buf); n != 40 || err != nil {
				t.Fatalf("crypto/tls assumption broken: a Read must return all the decrypted bytes of the record it holds that fit; got %d of 40, %v. "+
					"h1client.Pending's shortcut (a short read left nothing behind) relies on it", n, err)
			}
			if err := probe(); err != errNothingBuffered {
				t.Fatalf("crypto/tls holds bytes after a short read: probe got %v", err)
			}

			// 4. Two records in one socket read: the first Read returns
			// the first record only; the second is decrypted from
			// crypto/tls's buffer without a socket read (the probe finds
			// it), and recordScan does not claim the read was one record.
			// The two records are released in one socket write; should
			// the first read still see one record only, drain the second
			// and try again (a check never skipped: five misses fail).
			for try := 1; ; try++ {
				write("one", "two")
				if n, err := c.Read(buf); err != nil || string(buf[:n]) != "one" {
					t.Fatalf("first of two records: %q, %v", buf[:n], err)
				}
				if !raw.recs.whole {
					break
				}
				if n, err := c.Read(buf); err != nil || string(buf[:n]) != "two" {
					t.Fatalf("second of two records, read apart: %q, %v", buf[:n], err)
				}
				if try == 5 {
					t.Fatal("two records written at once never arrived in one socket read in 5 tries; the check that crypto/tls keeps the second decryptable without a socket read could not run")
				}
			}
			raw.probe = true
			n, err := c.Read(buf)
			raw.probe = false
			if err != nil || string(buf[:n]) != "two" {
				t.Fatalf("crypto/tls assumption broken: a whole record already read from the socket must be returned without reading the socket; "+
					"the probe got %q, %v. h1client.Pending relies on it", buf[:n], err)
			}
			var ne net.Error
			if errors.As(errNothingBuffered, &ne) && !ne.Timeout() {
				t.Fatal("errNothingBuffered must be a timeout")
			}
		})
	}
}
