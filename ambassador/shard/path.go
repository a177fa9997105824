package shard

import (
	"net"
	"time"
)

// dataPath serves the clients and the server connections. Each platform
// has one: event loops on Linux (loop_linux.go), a goroutine per client
// and per server connection elsewhere (goroutines_other.go). The rest of
// the package routes requests and builds replies; what moves bytes is
// the data path's, as are the methods of client and conn that the
// platform's file defines (conn.submit, conn.close, conn.connectNow,
// conn.inspect, client.batchDone, client.writeFinal).
type dataPath interface {
	// serve takes over nc, accepted by l for pool p.
	serve(l *listener, p *pool, nc net.Conn)
	// conns is how many connections a server gets (per protocol) for
	// n = server_connections.
	conns(n int) int
	// own gives a new server connection, the i-th of its server, to its
	// owner in the data path.
	own(c *conn, i int)
	// stopClients has l's clients finish the requests they sent and
	// close; with now, they close at once.
	stopClients(l *listener, now bool)
	// checkTimeouts closes the server connections whose oldest request
	// has waited longer than their pool's timeout.
	checkTimeouts(now time.Time)
	// stop ends the data path once nothing uses it.
	stop()
}

// admit counts a client accepted by l for p (nc: its connection, if the
// data path keeps it) unless l is closing; it reports false, having
// counted nothing, when l is.
func (l *listener) admit(p *pool, nc net.Conn) bool {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return false
	}
	l.track(nc)
	l.wg.Add(1)
	l.mu.Unlock()
	p.counters.clients.Add(1)
	p.counters.accepted.Add(1)
	return true
}

// busy reports whether requests are queued or in flight.
func (c *conn) busy() bool {
	busy := false
	c.inspect(func() { busy = len(c.queue) > 0 || c.inflight.len() > 0 || c.dialing })
	return busy
}

// pending is the number of requests queued or in flight.
func (c *conn) pending() int {
	n := 0
	c.inspect(func() { n = len(c.queue) + c.inflight.len() })
	return n
}
