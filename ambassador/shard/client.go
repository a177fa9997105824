package shard

import "sync/atomic"

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

	endErr error // why the connection ended (nil: the client closed it or asked to)

	clientIO // the data path's (loop_linux.go, goroutines_other.go)
}

type group struct {
	c    *conn
	reqs []*request
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

var clientIDs atomic.Uint32
