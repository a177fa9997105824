package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

func TestRawSock(t *testing.T) {
	t.Run("both ways and EOF", func(t *testing.T) {
		a, b := testdeps.TCPPair(t)
		sa, sb := New(a), New(b)
		if _, ok := sa.(*rawSock); !ok {
			t.Fatalf("New(%T) = %T, want *rawSock", a, sa)
		}
		go func() {
			sa.Write([]byte("ping"))
			a.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(sb)
		if err != nil || string(got) != "ping" {
			t.Fatalf("read %q, %v; want ping, nil", got, err)
		}
		if n, err := sb.Write(nil); n != 0 || err != nil {
			t.Errorf("empty write: %d, %v", n, err)
		}
	})
	t.Run("a write larger than the socket buffers waits for the reader", func(t *testing.T) {
		a, b := testdeps.TCPPair(t)
		want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		done := make(chan error, 1)
		go func() {
			n, err := New(a).Write(want)
			if err == nil && n != len(want) {
				err = io.ErrShortWrite
			}
			a.Close()
			done <- err
		}()
		time.Sleep(50 * time.Millisecond) // let the writer fill the buffers
		got, err := io.ReadAll(New(b))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(want))
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		_, b := testdeps.TCPPair(t)
		b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := New(b).Read(make([]byte, 10))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v, want a timeout", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		_, b := testdeps.TCPPair(t)
		s := New(b)
		b.Close()
		if _, err := s.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after Close: %v, want net.ErrClosed", err)
		}
		if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write after Close: %v, want net.ErrClosed", err)
		}
	})
	t.Run("peer gone", func(t *testing.T) {
		a, b := testdeps.TCPPair(t)
		a.(*net.TCPConn).SetLinger(0)
		a.Close() // RST
		s := New(b)
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = s.Write(make([]byte, 1024))
			time.Sleep(time.Millisecond)
		}
		if err == nil {
			t.Fatal("writes to a reset connection kept succeeding")
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		a, _ := net.Pipe()
		defer a.Close()
		if s := New(a); s != io.ReadWriter(a) {
			t.Errorf("New(net.Pipe) = %T, want the conn itself", s)
		}
	})
}
