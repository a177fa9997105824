package shard

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawSock reads and writes a socket with raw system calls on its
// non-blocking descriptor, waiting in the runtime's poller only when the
// socket is not ready. A raw call on a ready non-blocking socket does not
// block, so it need not tell the scheduler it is in a system call: the
// scheduler then does not hand the processor to another thread during
// each of the proxy's many short calls, which is most of the cost of a
// goroutine per connection against an event loop.
//
// One goroutine at a time may read, and one at a time may write.
type rawSock struct {
	rc syscall.RawConn

	rbuf []byte
	rn   int
	rerr error

	wbuf []byte
	wn   int
	werr error

	readFn, writeFn func(fd uintptr) bool
}

// newSock returns a reader-writer for nc that uses raw system calls where
// nc has a descriptor, else nc itself.
func newSock(nc net.Conn) io.ReadWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	s := &rawSock{rc: rc}
	s.readFn = s.read
	s.writeFn = s.write
	return s
}

func (s *rawSock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rbuf, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	n := s.rn
	if err == nil {
		err = s.rerr
	}
	s.rbuf, s.rerr = nil, nil
	return n, err
}

func (s *rawSock) read(fd uintptr) bool {
	for {
		n, _, e := rawRead(fd, s.rbuf)
		switch e {
		case 0:
			if n == 0 {
				s.rerr = io.EOF
			}
			s.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			s.rerr = e
			return true
		}
	}
}

func (s *rawSock) Write(p []byte) (int, error) {
	s.wbuf, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeFn)
	n := s.wn
	if err == nil {
		err = s.werr
	}
	s.wbuf, s.werr = nil, nil
	return n, err
}

func (s *rawSock) write(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		n, _, e := rawWrite(fd, s.wbuf[s.wn:])
		switch e {
		case 0:
			s.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werr = e
			return true
		}
	}
	return true
}

func rawRead(fd uintptr, p []byte) (uintptr, uintptr, syscall.Errno) {
	return syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
}

func rawWrite(fd uintptr, p []byte) (uintptr, uintptr, syscall.Errno) {
	return syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
}
