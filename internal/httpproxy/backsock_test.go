package httpproxy

import (
	"bufio"
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestBackSockDeferredWrite: a deferred request goes out with the next
// read, whatever its size, and a peer that has gone is an error, not a
// wait for an answer that never comes.
func TestBackSockDeferredWrite(t *testing.T) {
	for _, size := range []int{10, 8 << 20} { // 8 MiB: more than the socket buffers hold
		a, b := testdeps.TCPPair(t)
		s := newBackSock(a)
		req := bytes.Repeat([]byte("r"), size)
		go func() {
			// The peer reads the request, then answers.
			if _, err := io.ReadFull(b, make([]byte, size)); err != nil {
				return
			}
			b.Write([]byte("answer"))
		}()
		w := bufio.NewWriterSize(s, 4096)
		if err := s.deferWrite(func() error { w.Write(req); return w.Flush() }); err != nil {
			t.Fatal(err)
		}
		a.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, 6)
		if _, err := io.ReadFull(s, got); err != nil || string(got) != "answer" {
			t.Fatalf("size %d: read %q, %v", size, got, err)
		}
		if len(s.pending) != 0 {
			t.Errorf("size %d: %d bytes still pending", size, len(s.pending))
		}
	}

	t.Run("peer closed while idle", func(t *testing.T) {
		a, b := testdeps.TCPPair(t)
		s := newBackSock(a)
		b.Close()
		time.Sleep(20 * time.Millisecond) // its FIN arrives while idle
		s.deferWrite(func() error { _, err := s.Write([]byte("GET / HTTP/1.1\r\n\r\n")); return err })
		a.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		_, err := s.Read(make([]byte, 10))
		if err == nil || isTimeout(err) {
			t.Fatalf("read = %v, want EOF or a reset", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the error took %v", d)
		}
	})
}
