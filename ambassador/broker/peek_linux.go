package broker

import (
	"bytes"
	"net"
	"syscall"
	"time"
)

// h2Preface starts every HTTP/2 connection; HTTP/1 has no method "PRI".
var h2Preface = []byte("PRI * HTTP/2.0\r\n")

// isH2C reports whether c starts with the HTTP/2 connection preface
// (h2c with prior knowledge), looking at its first bytes without reading
// them (MSG_PEEK), so an HTTP/1 connection goes to the engine untouched.
// A client that sends nothing within wait is taken for HTTP/1 (the
// engine's own timeouts then apply).
func isH2C(c net.Conn, wait time.Duration) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	tc.SetReadDeadline(time.Now().Add(wait))
	defer tc.SetReadDeadline(time.Time{})
	buf := make([]byte, len(h2Preface))
	var n int
	rerr := rc.Read(func(fd uintptr) bool {
		var err error
		n, _, err = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
			return false
		case err != nil || n == 0:
			n = 0
			return true // an error or EOF: the engine will see it
		}
		// Enough to tell, or wait for more.
		return n >= len(buf) || !bytes.HasPrefix(h2Preface, buf[:n])
	})
	return rerr == nil && n >= len(buf) && bytes.Equal(buf, h2Preface)
}
