package shard

import (
	"syscall"
	"unsafe"

	"github.com/podkit/podkit/internal/rawsock"
)

// initRaw lets send hand reply writing to the goroutine that completes a
// batch: it needs the socket's raw descriptor, for a write that never
// blocks a server connection's reader and for a wait on input that
// consumes none.
func (c *client) initRaw() {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.raw = raw
	c.writeRaw = func(fd uintptr) bool {
		for len(c.wpending) > 0 {
			n, e := rawsock.Send(fd, c.wpending)
			switch e {
			case 0:
				c.wpending = c.wpending[n:]
			case syscall.EINTR:
			case syscall.EAGAIN:
				return true // the rest is written where it may block
			default:
				c.werr = e
				return true
			}
		}
		return true
	}
	c.peekRaw = func(fd uintptr) bool {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peekBuf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return e != syscall.EAGAIN
	}
}

// waitReadable returns when the client has sent something, closed the
// connection, or its read deadline passed; it reads nothing.
func (c *client) waitReadable() {
	c.raw.Read(c.peekRaw)
}
