package testdeps

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
)

// ErrAgain is what a Chunks reader answers between chunks.
var ErrAgain = errors.New("try again")

// Chunks reads In Step bytes at a time and answers ErrAgain between the
// steps, as a non-blocking socket does between packets: for testing
// readers driven by an event loop.
type Chunks struct {
	In    []byte
	Step  int
	again bool
}

func (c *Chunks) Read(b []byte) (int, error) {
	if len(c.In) == 0 {
		return 0, io.EOF
	}
	if c.again = !c.again; !c.again {
		return 0, ErrAgain
	}
	n := copy(b, c.In[:min(max(c.Step, 1), len(c.In))])
	c.In = c.In[n:]
	return n, nil
}

// TCPPair returns the two ends of a loopback TCP connection, closed when
// the test ends.
func TCPPair(t testing.TB) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// FreePort returns a loopback host:port that is free now, for a program
// that must be told its address before it listens (a subprocess's
// --listen). Like FreePortRange it looks below the ephemeral port range,
// so that the port is not handed to another test's 127.0.0.1:0 listener
// (or outgoing connection) before the program takes it.
func FreePort(t testing.TB) string {
	t.Helper()
	for range 200 {
		port := freeLow + rand.IntN(freeHigh-freeLow)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return ln.Addr().String()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The ports FreePort and FreePortRange choose from: below Linux's default
// ephemeral range (32768-60999), which 127.0.0.1:0 listeners and outgoing
// connections take from.
const freeLow, freeHigh = 10000, 32768

// FreePortRange finds n consecutive loopback ports that are free now, for
// a program (the demo) that takes its ports from a base upward. It looks
// below Linux's default ephemeral range (32768 up), where the ports of
// outgoing connections, and their TIME_WAIT after a busy test, do not
// block a listener.
func FreePortRange(t testing.TB, n int) int {
	t.Helper()
	span := (freeHigh - freeLow) / max(n, 1)
	start := os.Getpid() % max(span, 1)
	for try := 0; try < span; try++ {
		base := freeLow + (start+try*7919)%span*n // 7919 is prime: every slot once
		ok := true
		for i := 0; i < n && ok; i++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free loopback ports found", n)
	return 0
}
