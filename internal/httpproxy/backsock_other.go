//go:build !linux

package httpproxy

import "net"

// rawRead is Linux only: elsewhere a deferred request is written before
// the read, as a plain write.
type rawRead struct{}

func newRawRead(net.Conn) *rawRead { return nil }

func (*rawRead) sendThenRead(w, b []byte) (n, sent int, err error) { return 0, 0, nil }
