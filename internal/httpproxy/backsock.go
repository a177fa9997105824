package httpproxy

import (
	"io"
	"net"

	"github.com/podkit/podkit/internal/rawsock"
)

// backSock is a target connection's socket I/O: rawsock's raw reads and
// writes, plus a request that is sent by the next Read.
//
// A request without a body is answered only after the target has read it,
// so a read right after sending it finds nothing: it costs a system call
// that returns EAGAIN before the goroutine waits in the poller. Sending
// the request from inside the Read that waits for the answer (see
// sendThenRead) skips that call: the poller is armed before the request
// leaves, so the answer's readiness cannot be missed.
type backSock struct {
	rw      io.ReadWriter // rawsock
	deferW  bool          // Write stashes into pending (see deferWrite)
	pending []byte        // sent by the next Read
	raw     *rawRead      // nil where raw system calls are not used
}

func newBackSock(c net.Conn) *backSock {
	return &backSock{rw: rawsock.New(c), raw: newRawRead(c)}
}

// deferWrite makes the writes of fn (a flush of the request head) go out
// with the next Read instead of at once. It is for a request none of
// which has been sent yet: once part of one went out (a body, written as
// it comes), the target may have answered already, and its readiness,
// signalled before the Read re-arms the poller, would be missed by a Read
// that waits before it reads. Such a request is flushed with a plain
// write, and the Read then reads first.
func (s *backSock) deferWrite(fn func() error) error {
	s.deferW = true
	err := fn()
	s.deferW = false
	return err
}

func (s *backSock) Write(b []byte) (int, error) {
	if s.deferW {
		s.pending = append(s.pending, b...)
		return len(b), nil
	}
	if err := s.flushPending(); err != nil {
		return 0, err
	}
	return s.rw.Write(b)
}

func (s *backSock) flushPending() error {
	if len(s.pending) == 0 {
		return nil
	}
	_, err := s.rw.Write(s.pending)
	s.pending = s.pending[:0]
	if err != nil {
		return &backendWriteError{err}
	}
	return nil
}

func (s *backSock) Read(b []byte) (int, error) {
	if len(s.pending) > 0 && len(b) > 0 && s.raw != nil {
		n, sent, err := s.raw.sendThenRead(s.pending, b)
		if sent < len(s.pending) && err != nil {
			err = &backendWriteError{err}
		}
		if sent == len(s.pending) || err != nil {
			s.pending = s.pending[:0]
			return n, err
		}
		// The socket buffer was full: the rest waits for room.
		s.pending = s.pending[:copy(s.pending, s.pending[sent:])]
	}
	if err := s.flushPending(); err != nil {
		return 0, err
	}
	return s.rw.Read(b)
}

// backendWriteError is a failed write of a request to the target.
type backendWriteError struct{ err error }

func (e *backendWriteError) Error() string   { return "writing to the target: " + e.err.Error() }
func (e *backendWriteError) Unwrap() []error { return []error{e.err, errBackendWrite} }
