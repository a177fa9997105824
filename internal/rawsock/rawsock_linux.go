// Package rawsock reads and writes sockets with raw system calls on their
// non-blocking descriptors, for proxies whose cost is mostly short socket
// calls. See New.
package rawsock

import (
	"errors"
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawSock reads and writes a stream socket through its non-blocking
// descriptor with raw system calls (syscall.RawSyscall), and waits in the
// runtime's poller only when the socket is not ready. net.Conn's Read and
// Write tell the scheduler around every call that the goroutine may
// block (entersyscall, exitsyscall); a call that outlasts a tick of the
// runtime's monitor then has its P handed to another thread, with thread
// wake-ups both ways. A call on a non-blocking socket never blocks, so
// the proxy's many short reads and writes skip that bookkeeping.
//
// Deadlines, Close, net.ErrClosed and timeout errors work as with the
// connection's own Read and Write: waiting goes through the same poller
// (syscall.RawConn). Writes use send(2) with MSG_NOSIGNAL, so a peer that
// went away gives EPIPE without a signal. One goroutine at a time may
// read, and one at a time may write.
type rawSock struct {
	rc syscall.RawConn

	rb   []byte
	rn   int
	rerr error

	wb   []byte
	wn   int
	werr error

	readFn, writeFn func(fd uintptr) bool // bound once: no allocation per call
}

// New returns raw-syscall I/O for c when it is a TCP or unix
// socket, else c itself.
func New(c net.Conn) io.ReadWriter {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	s := &rawSock{rc: rc}
	s.readFn, s.writeFn = s.read, s.write
	return s
}

func (s *rawSock) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.rb, s.rn, s.rerr = b, 0, nil
	err := s.rc.Read(s.readFn)
	n := s.rn
	if err == nil {
		err = s.rerr
	}
	s.rb, s.rerr = nil, nil
	return n, err
}

// read is the poller callback: false means "not ready, wait".
func (s *rawSock) read(fd uintptr) bool {
	n, err := Read(fd, s.rb)
	if err == syscall.EAGAIN {
		return false
	}
	s.rn, s.rerr = n, err
	return true
}

func (s *rawSock) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.wb, s.wn, s.werr = b, 0, nil
	err := s.rc.Write(s.writeFn)
	n := s.wn
	if err == nil {
		err = s.werr
	}
	s.wb, s.werr = nil, nil
	return n, err
}

func (s *rawSock) write(fd uintptr) bool {
	n, e := SendAll(fd, s.wb[s.wn:])
	s.wn += n
	switch e {
	case 0:
		return true
	case syscall.EAGAIN:
		return false
	default:
		s.werr = e
		return true
	}
}

// SendAll sends p on the non-blocking socket fd with raw send(2) calls
// (MSG_NOSIGNAL, retried on EINTR) until all of p is sent or the socket
// buffer is full: for use inside a syscall.RawConn callback or by an
// event loop that owns fd. It returns how much of p was sent and 0 (all
// of it), syscall.EAGAIN (the buffer filled first: wait until the socket
// is writable and send the rest) or the error that ended the sending.
// An empty p sends nothing and returns 0, 0.
func SendAll(fd uintptr, p []byte) (int, syscall.Errno) {
	sent := 0
	for sent < len(p) {
		n, e := Send(fd, p[sent:])
		switch e {
		case 0:
			sent += n
		case syscall.EINTR:
		default:
			return sent, e
		}
	}
	return sent, 0
}

// Send is one send(2) of p (not empty) on the non-blocking socket fd, with
// MSG_NOSIGNAL, as a raw system call: for use inside a syscall.RawConn
// callback. It returns what was written and the error number (EAGAIN when
// the socket buffer is full).
func Send(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		syscall.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Read is one read(2) into p (not empty) from the non-blocking socket fd,
// as a raw system call, retried on EINTR. It returns what was read, io.EOF
// at the end of input, syscall.EAGAIN when nothing is waiting, or the
// error.
func Read(fd uintptr, p []byte) (int, error) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EINTR:
		case e != 0:
			return 0, e
		case n == 0:
			return 0, io.EOF
		default:
			return int(n), nil
		}
	}
}

// Detach takes c's socket out of the runtime's poller: it returns a
// duplicate of the descriptor, still non-blocking and close-on-exec, and
// closes c. The caller owns the descriptor and waits on it with an
// epoll of its own.
func Detach(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("rawsock: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	c.Close()
	return fd, nil
}
