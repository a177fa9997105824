//go:build !linux

package tlsproxy

import (
	"io"
	"net"
)

// newRawSock returns c: raw system calls are used on Linux only.
func newRawSock(c net.Conn) io.ReadWriter { return c }
