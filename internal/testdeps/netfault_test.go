package testdeps

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestServeTCP: each connection goes to serve; Wait returns once the
// connections have ended; connections still open when the test ends are
// closed.
func TestServeTCP(t *testing.T) {
	s := ServeTCP(t, func(c net.Conn) { io.Copy(c, c) })
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "ping")
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo: %q, %v", b, err)
	}
	c.Close()
	s.Wait()

	var open net.Conn
	t.Run("open at the end", func(t *testing.T) {
		addr := ServeTCP(t, func(c net.Conn) { io.Copy(io.Discard, c) }).Addr()
		if open, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
	})
	defer open.Close()
	open.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := open.Read(b); err == nil {
		t.Errorf("read %d bytes from a server the test's end closed, want EOF", n)
	}
}

// TestSilentTCP: the server accepts and never answers.
func TestSilentTCP(t *testing.T) {
	c, err := net.Dial("tcp", SilentTCP(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PING\r\n")
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read = %d, %v; want a deadline error", n, err)
	}
}
