//go:build !linux

package shard

import (
	"errors"
	"net"
	"time"
)

// Event loops are Linux-only (epoll); elsewhere every client has a
// goroutine.
const loopsSupported = false

type loop struct{}

type parser interface{}

var errNoLoops = errors.New("event loops need Linux")

func startLoops(*Proxy, int) ([]*loop, error)  { return nil, errNoLoops }
func stopLoops([]*loop)                        {}
func (*loop) post(func()) bool                 { return false }
func (*loop) addClient(*listener, int, uint32) {}
func (*loop) stopClients(*listener, bool)      {}
func (*loop) checkTimeouts(time.Time)          {}
func (*client) loopBatchDone()                 {}
func (*client) loopWriteFinal([]byte)          {}
func (*conn) loopSubmit([]*request)            {}
func (*conn) loopBusy() bool                   { return false }
func (*conn) loopPending() int                 { return 0 }
func (*conn) loopClose()                       {}
func (*conn) loopConnect()                     {}
func detach(net.Conn) (int, error)             { return -1, errNoLoops }
func closeFD(int)                              {}
