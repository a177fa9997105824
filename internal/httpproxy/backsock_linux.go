package httpproxy

import (
	"net"
	"syscall"

	"github.com/podkit/podkit/internal/rawsock"
)

// rawRead sends a request and waits for its answer in one pass through
// the runtime's poller: syscall.RawConn.Read re-arms the poller's
// readiness before it first calls its function, which sends the request
// and, the answer not being there yet, asks to wait without reading.
// Readiness that arrives from then on wakes the wait, so the first read
// finds the answer.
type rawRead struct {
	rc syscall.RawConn

	w   []byte
	wn  int
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // bound once: no allocation per call
}

func newRawRead(c net.Conn) *rawRead {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawRead{rc: rc}
	r.fn = r.step
	return r
}

// sendThenRead sends w (not empty), then reads into b (not empty). It
// returns what was read, how much of w was sent, and the error. If the
// socket's send buffer fills before all of w is sent it returns with
// sent < len(w) and no error, having read nothing.
func (r *rawRead) sendThenRead(w, b []byte) (n, sent int, err error) {
	r.w, r.wn, r.b, r.n, r.err = w, 0, b, 0, nil
	err = r.rc.Read(r.fn)
	n, sent = r.n, r.wn
	if err == nil {
		err = r.err
	}
	r.w, r.b, r.err = nil, nil, nil
	return n, sent, err
}

// step is the poller callback: false means "wait for readiness".
func (r *rawRead) step(fd uintptr) bool {
	if r.wn < len(r.w) {
		n, e := rawsock.SendAll(fd, r.w[r.wn:])
		r.wn += n
		switch e {
		case 0:
			return false // the answer comes after the target read the request
		case syscall.EAGAIN:
			return true // the caller waits for room with a plain write
		default:
			r.err = e
			return true
		}
	}
	n, err := rawsock.Read(fd, r.b)
	if err == syscall.EAGAIN {
		return false
	}
	r.n, r.err = n, err
	return true
}
