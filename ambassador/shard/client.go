package shard

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBatch bounds how many commands a client's batch holds.
const maxBatch = 512

// slot is one client command's place in the reply order.
type slot struct {
	req   *request   // one server request: its reply is copied through
	subs  []*request // fan-out: replies merged by merge
	merge func(dst []byte, s *slot) []byte
	pos   []int32 // fan-out: for each key, its sub-request and position (sub<<20 | pos)
	local [2]int  // a reply made by the proxy: c.local[local[0]:local[1]]
	close bool    // close the connection after this reply
}

// client is what both protocols' client loops share.
type client struct {
	px    *Proxy
	l     *listener
	nc    net.Conn
	id    uint32
	b     *batch
	slots []slot
	free  []*request
	used  []*request
	local []byte
	wbuf  []byte
	// groups collects one batch's requests per server connection.
	groups []group
	resp3  bool // the client negotiated RESP3 (HELLO 3)

	// Replies written by the completing goroutine (send).
	raw      syscall.RawConn // nil: the client goroutine writes replies
	async    bool            // this batch's replies are written by batchDone
	stop     bool            // batchDone ended the connection
	wpending []byte
	werr     error
	writeRaw func(fd uintptr) bool
	peekRaw  func(fd uintptr) bool
	peekBuf  [1]byte

	// In an event loop (loop_linux.go), the loop owns the client.
	lp         *loop
	fd         int
	p          parser
	readable   bool // input may be waiting
	hup        bool // the peer hung up or the socket failed: read to the end
	busy       bool // a batch is in flight or its replies are being written
	stopping   bool // the listener stops: close after what was sent
	dead       bool
	queued     bool  // in the loop's ready list
	perr       error // a stream error, answered after the batch in hand
	closeAfter bool
	endErr     error // why the connection ended (nil: the client closed it or asked to)
}

type group struct {
	c    *conn
	reqs []*request
}

func newClient(px *Proxy, l *listener, nc net.Conn, id uint32) *client {
	c := &client{px: px, l: l, nc: nc, id: id}
	c.b = &batch{wake: make(chan struct{}, 1), c: c}
	c.initRaw()
	return c
}

// newReq returns a request to srv sending out, added to this batch.
func (c *client) newReq(srv *server, out []byte, kind replyKind) *request {
	var r *request
	if n := len(c.free); n > 0 {
		r = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		r = &request{}
	}
	r.out, r.kind, r.count, r.srv, r.batch, r.failed = out, kind, 1, srv, c.b, false
	c.used = append(c.used, r)
	cn := srv.conn(c.id, c.resp3)
	for i := range c.groups {
		if c.groups[i].c == cn {
			c.groups[i].reqs = append(c.groups[i].reqs, r)
			return r
		}
	}
	if n := len(c.groups); n < cap(c.groups) {
		c.groups = c.groups[:n+1]
		g := &c.groups[n]
		g.c, g.reqs = cn, append(g.reqs[:0], r)
		return r
	}
	c.groups = append(c.groups, group{c: cn, reqs: []*request{r}})
	return r
}

// addLocal appends a slot with a reply made by the proxy.
func (c *client) addLocal(reply []byte) {
	start := len(c.local)
	c.local = append(c.local, reply...)
	c.slots = append(c.slots, slot{local: [2]int{start, len(c.local)}})
}

// send submits the batch's requests and sees that their replies are
// written in order. It reports whether the connection goes on. With wait,
// the replies are written before it returns.
//
// Where the connection allows it (see initRaw), the goroutine that
// completes the batch's last request writes the replies, while the client
// goroutine waits for the client's next bytes: one goroutine wake-up per
// request instead of two. It then waits for the batch to be written before
// reading on, since requests alias its read buffer.
func (c *client) send(wait bool) bool {
	c.async = c.raw != nil && !wait
	if c.submit() {
		if !c.async {
			<-c.b.wake
		} else {
			c.waitReadable()
			<-c.b.wake
			return !c.stop
		}
	}
	closeAfter, err := c.reply()
	if err != nil {
		c.endErr = err
	}
	return err == nil && !closeAfter
}

// submit sends the batch's requests. It reports whether some are still
// pending, in which case batchDone runs when the last one completes.
func (c *client) submit() bool {
	n := len(c.used)
	if n == 0 {
		return false
	}
	// One more than the requests, released after the last submit, so that
	// a request failed inside submit cannot complete the batch under it.
	c.b.pending.Store(int32(n) + 1)
	for i := range c.groups {
		g := &c.groups[i]
		g.c.submit(g.reqs)
	}
	return c.b.pending.Add(-1) != 0
}

// batchDone runs in the goroutine that completed the batch's last request.
func (c *client) batchDone() {
	if c.lp != nil {
		c.loopBatchDone()
		return
	}
	if !c.async {
		c.b.wake <- struct{}{}
		return
	}
	closeAfter := c.build()
	c.wpending, c.werr = c.wbuf, nil
	if err := c.raw.Write(c.writeRaw); err != nil && c.werr == nil {
		c.werr = err
	}
	if c.werr == nil && len(c.wpending) > 0 {
		// The client's socket buffer is full: finish the write where it
		// may block, not in a server connection's reader.
		go func() {
			_, err := c.nc.Write(c.wpending)
			c.finish(closeAfter, err)
		}()
		return
	}
	c.finish(closeAfter, c.werr)
}

// finish ends an asynchronously written batch and hands the client back
// to its goroutine, waking its wait for input when the connection is done.
func (c *client) finish(closeAfter bool, err error) {
	c.wpending = nil
	c.reset()
	if err != nil {
		c.endErr = err
	}
	if closeAfter || err != nil {
		c.stop = true
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	c.b.wake <- struct{}{}
}

// build appends the batch's replies to wbuf in order, up to a slot that
// closes the connection, and reports whether there was one.
func (c *client) build() (closeAfter bool) {
	for i := range c.slots {
		s := &c.slots[i]
		switch {
		case s.req != nil:
			c.wbuf = append(c.wbuf, s.req.reply...)
		case s.merge != nil:
			c.wbuf = s.merge(c.wbuf, s)
		default:
			c.wbuf = append(c.wbuf, c.local[s.local[0]:s.local[1]]...)
		}
		if s.close {
			return true
		}
	}
	return false
}

// reply writes the batch's replies in order and resets the batch. It
// reports whether the connection should close.
func (c *client) reply() (closeAfter bool, err error) {
	closeAfter = c.build()
	if len(c.wbuf) > 0 {
		_, err = c.nc.Write(c.wbuf)
	}
	c.reset()
	return closeAfter, err
}

func (c *client) reset() {
	clear(c.slots)
	c.slots = c.slots[:0]
	for _, r := range c.used {
		r.out, r.batch, r.srv = nil, nil, nil
		if cap(r.reply) > 64<<10 {
			r.reply = nil
		}
		c.free = append(c.free, r)
	}
	clear(c.used)
	c.used = c.used[:0]
	for i := range c.groups {
		clear(c.groups[i].reqs)
		c.groups[i].reqs = c.groups[i].reqs[:0]
		c.groups[i].c = nil
	}
	c.groups = c.groups[:0]
	c.local = c.local[:0]
	if cap(c.wbuf) > 1<<20 {
		c.wbuf = nil
	} else {
		c.wbuf = c.wbuf[:0]
	}
	if cap(c.local) > 1<<20 {
		c.local = nil
	}
}

// readEnd is why a blocking read ended the connection: the reason the
// reply writer stopped it (its read deadline then ends the read), or err.
func (c *client) readEnd(err error) error {
	if c.stop {
		return c.endErr
	}
	return err
}

// writeFinal writes a last reply (a protocol error) and closes.
func (c *client) writeFinal(b []byte) {
	if c.lp != nil {
		c.loopWriteFinal(b)
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(b)
}

var clientIDs atomic.Uint32
