//go:build !linux

package broker

import (
	"net"
	"time"
)

// isH2C is false where connections cannot be peeked at: http upstreams
// then serve HTTP/1.1 only.
func isH2C(c net.Conn, wait time.Duration) bool { return false }
