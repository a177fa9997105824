package httpproxy

import (
	"net"
	"os"
	"syscall"
	"time"
)

// readyWait waits until a client connection has more to read, without
// reading it: after a response, the next request cannot have arrived yet
// (HTTP/1.1 clients wait for the answer), so a read would find nothing
// and cost a system call that returns EAGAIN before the goroutine waits.
//
// It waits on a duplicate of the socket's descriptor with its own entry
// in the runtime's poller. syscall.RawConn.Read re-arms a descriptor's
// readiness once, when it starts; the duplicate's Read starts before the
// connection's own descriptor is first read, and lasts as long as the
// connection serves requests (see conn.serveWaiting), so bytes that
// arrive after any of those reads mark the duplicate ready and none are
// missed, while the reads themselves go through the original descriptor
// as before. The duplicate costs a descriptor and a poller entry per
// keep-alive connection; it is made only once a connection asks for a
// second request.
type readyWait struct {
	f  *os.File
	rc syscall.RawConn
}

func newReadyWait(c net.Conn) *readyWait {
	fc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		return nil
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	// File returns a duplicate in non-blocking mode, registered with the
	// poller (its Fd method, never called here, would make it blocking).
	f, err := fc.File()
	if err != nil {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	return &readyWait{f: f, rc: rc}
}

// run calls serve, and again each time the connection has more to read,
// as long as serve returns false ("wait"); it returns when serve returns
// true, or with the error that ended a wait (the deadline, or the
// connection being closed).
//
// The duplicate's readiness is reset when the wait starts, so bytes (or
// the client's FIN) that arrived after the connection's last read but
// before then raise nothing the wait would see: a pipelining client that
// sent its last request and closed could wait out the idle timeout. So
// the first time serve asks to wait, the socket is peeked once (one
// recv per connection, not per request).
func (w *readyWait) run(serve func() bool) error {
	first := true
	return w.rc.Read(func(fd uintptr) bool {
		for {
			if serve() {
				return true
			}
			if !first {
				return false
			}
			first = false
			if !readable(fd) {
				return false
			}
		}
	})
}

// readable reports whether a read of the non-blocking socket fd would not
// block: bytes, the end of input or an error are waiting.
func readable(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}

// SetReadDeadline bounds the waits; a past time ends the current one.
func (w *readyWait) SetReadDeadline(t time.Time) error { return w.f.SetReadDeadline(t) }

func (w *readyWait) close() { w.f.Close() }
