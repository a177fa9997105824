package shard

import (
	"syscall"
	"unsafe"
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
			n, err := syscall.Write(int(fd), c.wpending)
			if n > 0 {
				c.wpending = c.wpending[n:]
			}
			if err == syscall.EINTR {
				continue
			}
			if err != nil && err != syscall.EAGAIN {
				c.werr = err
			}
			if err != nil {
				break
			}
		}
		return true
	}
	c.peekRaw = func(fd uintptr) bool {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peekBuf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return errno != syscall.EAGAIN
	}
}

// waitReadable returns when the client has sent something, closed the
// connection, or its read deadline passed; it reads nothing.
func (c *client) waitReadable() {
	c.raw.Read(c.peekRaw)
}
