package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
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

func TestSendAll(t *testing.T) {
	fdOf := func(t *testing.T, c net.Conn) uintptr {
		t.Helper()
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var fd uintptr
		rc.Control(func(s uintptr) { fd = s })
		return fd
	}
	t.Run("empty", func(t *testing.T) {
		a, _ := testdeps.TCPPair(t)
		if n, e := SendAll(fdOf(t, a), nil); n != 0 || e != 0 {
			t.Errorf("SendAll(nil) = %d, %v; want 0, 0", n, e)
		}
	})
	t.Run("all of a small write", func(t *testing.T) {
		a, b := testdeps.TCPPair(t)
		if n, e := SendAll(fdOf(t, a), []byte("hello")); n != 5 || e != 0 {
			t.Fatalf("SendAll = %d, %v; want 5, 0", n, e)
		}
		got := make([]byte, 5)
		if _, err := io.ReadFull(b, got); err != nil || string(got) != "hello" {
			t.Fatalf("read %q, %v", got, err)
		}
	})
	t.Run("a full buffer stops it with EAGAIN and the rest follows", func(t *testing.T) {
		a, b := testdeps.TCPPair(t)
		fd := fdOf(t, a)
		want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the buffers hold
		n, e := SendAll(fd, want)
		if e != syscall.EAGAIN || n == 0 || n >= len(want) {
			t.Fatalf("SendAll = %d, %v; want part of %d and EAGAIN", n, e, len(want))
		}
		done := make(chan []byte, 1)
		go func() {
			got, _ := io.ReadAll(b)
			done <- got
		}()
		for rest := want[n:]; len(rest) > 0; {
			n, e := SendAll(fd, rest)
			rest = rest[n:]
			switch e {
			case 0, syscall.EAGAIN:
				time.Sleep(time.Millisecond)
			default:
				t.Fatal(e)
			}
		}
		a.Close()
		if got := <-done; !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, want %d in order", len(got), len(want))
		}
	})
	t.Run("peer gone", func(t *testing.T) {
		a, b := testdeps.TCPPair(t)
		b.(*net.TCPConn).SetLinger(0)
		b.Close() // RST
		fd := fdOf(t, a)
		var e syscall.Errno
		for i := 0; i < 100 && (e == 0 || e == syscall.EAGAIN); i++ {
			_, e = SendAll(fd, make([]byte, 1024))
			time.Sleep(time.Millisecond)
		}
		if e != syscall.EPIPE && e != syscall.ECONNRESET {
			t.Fatalf("SendAll to a reset connection: %v, want EPIPE or ECONNRESET", e)
		}
	})
}
