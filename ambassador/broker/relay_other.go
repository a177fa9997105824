//go:build !linux

package broker

import (
	"net"
	"time"
)

// relayTCP relays between two TCP sockets with splice(2)'s portable
// counterpart, io.Copy, one goroutine per direction.
func relayTCP(client, back *net.TCPConn, idle time.Duration) { spliceTCP(client, back, idle) }

// abortRelay has nothing to do: closing the client ends the copy.
func abortRelay(net.Conn) {}

// relayHeld: the copy's buffers are io.Copy's own.
func relayHeld(net.Conn) (held [2]int, ok bool) { return held, false }

// relayBuf is io.Copy's buffer: what a direction holds at most.
const relayBuf = 32 << 10
