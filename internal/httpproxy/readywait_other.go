//go:build !linux

package httpproxy

import (
	"net"
	"time"
)

// readyWait is Linux only: elsewhere a connection reads for its next
// request and waits in the poller when there is nothing yet.
type readyWait struct{}

func newReadyWait(net.Conn) *readyWait { return nil }

func (*readyWait) run(func() bool) error           { return nil }
func (*readyWait) SetReadDeadline(time.Time) error { return nil }
func (*readyWait) close()                          {}
