//go:build !linux

package shard

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/podkit/podkit/ambassador/shard/internal/memcache"
	"github.com/podkit/podkit/internal/resp"
)

// The data path off Linux, where there is no epoll: a goroutine per
// client reads its requests, hands them to the server connections and
// writes the replies; each server connection has a reader goroutine that
// matches replies to requests in order, and whichever goroutine finds
// the connection idle writes the queue, so requests from many clients go
// out in one write.
type goroutinePath struct{ px *Proxy }

func newDataPath(px *Proxy, _ int) (dataPath, error) { return &goroutinePath{px: px}, nil }

func (*goroutinePath) stop()              {}
func (*goroutinePath) conns(n int) int    { return n }
func (*goroutinePath) own(c *conn, i int) {}

// listenerClients is a listener's open client connections.
type listenerClients struct {
	clients map[net.Conn]struct{}
}

// track adds nc to the listener's clients (l.mu held).
func (lc *listenerClients) track(nc net.Conn) {
	if lc.clients == nil {
		lc.clients = map[net.Conn]struct{}{}
	}
	lc.clients[nc] = struct{}{}
}

func (gp *goroutinePath) serve(l *listener, p *pool, nc net.Conn) {
	if !l.admit(p, nc) {
		nc.Close()
		return
	}
	go gp.serveClient(l, nc)
}

func (gp *goroutinePath) serveClient(l *listener, nc net.Conn) {
	ctr := l.pool.Load().counters
	c := &client{px: gp.px, l: l, id: clientIDs.Add(1)}
	c.nc, c.wake = nc, make(chan struct{}, 1)
	c.b = &batch{c: c}
	defer func() {
		nc.Close()
		l.mu.Lock()
		closing := l.closing
		delete(l.clients, nc)
		l.mu.Unlock()
		if !closing {
			ctr.clientClosed(c.endErr)
		}
		ctr.clients.Add(-1)
		l.wg.Done()
	}()
	if l.proto == Redis {
		(&redisClient{client: c}).serve()
	} else {
		(&mcClient{client: c}).serve()
	}
}

// stopClients ends the clients' next read at once, or closes them.
func (*goroutinePath) stopClients(l *listener, now bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for nc := range l.clients {
		if now {
			nc.Close()
		} else {
			nc.SetReadDeadline(time.Now())
		}
	}
}

func (gp *goroutinePath) checkTimeouts(now time.Time) {
	for _, p := range gp.px.pools() {
		if p.cfg.Timeout <= 0 {
			continue
		}
		for _, s := range p.servers {
			for _, c := range s.cs {
				c.checkTimeout(now, p.cfg.Timeout)
			}
		}
	}
}

// --- clients ---

// clientIO is the client's connection and its goroutine's wait for a
// batch's replies.
type clientIO struct {
	nc   net.Conn
	wake chan struct{}
}

func (c *redisClient) serve() {
	c.rd = resp.NewReader(c.nc, 16<<10, resp.Limits{MaxBulk: c.px.limits.maxBulk})
	for {
		args, raw, err := c.rd.ReadCommand()
		if err != nil {
			c.endErr = err
			c.readError(err)
			return
		}
		pl := c.l.pool.Load()
		pl.counters.commands.Add(1)
		c.handle(pl, args, raw)
		for len(c.slots) < maxBatch {
			args, raw, ok, err := c.rd.TryCommand()
			if err != nil {
				c.send()
				c.endErr = err
				c.readError(err)
				return
			}
			if !ok {
				break
			}
			pl.counters.commands.Add(1)
			c.handle(pl, args, raw)
		}
		if !c.send() {
			return
		}
	}
}

func (c *mcClient) serve() {
	c.rd = memcache.NewReader(c.nc, 16<<10, memcache.Limits{MaxValue: c.px.limits.maxBulk})
	for {
		req, err := c.rd.ReadRequest()
		if err != nil && !c.lineError(err) {
			c.endErr = err
			c.readError(err)
			return
		}
		pl := c.l.pool.Load()
		if req != nil {
			pl.counters.commands.Add(1)
			c.handle(pl, req)
		}
		for len(c.slots) < maxBatch {
			req, err := c.rd.TryRequest()
			if err != nil {
				if c.lineError(err) {
					continue
				}
				c.send()
				c.endErr = err
				c.readError(err)
				return
			}
			if req == nil {
				break
			}
			pl.counters.commands.Add(1)
			c.handle(pl, req)
		}
		if !c.send() {
			return
		}
	}
}

// send submits the batch's requests, waits for their replies and writes
// them in order. It reports whether the connection goes on.
func (c *client) send() bool {
	if c.submit() {
		<-c.wake
	}
	closeAfter := c.build()
	var err error
	if len(c.wbuf) > 0 {
		_, err = c.nc.Write(c.wbuf)
	}
	c.reset()
	if err != nil {
		c.endErr = err
	}
	return err == nil && !closeAfter
}

// batchDone runs in the goroutine that completed the batch's last
// request: it wakes the client's goroutine.
func (c *client) batchDone() { c.wake <- struct{}{} }

// writeFinal writes a last reply (a protocol error) before the
// connection closes.
func (c *client) writeFinal(b []byte) {
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(b)
}

// --- server connections ---

// connIO is a server connection shared by the client goroutines: whoever
// finds it idle writes the queue.
type connIO struct {
	mu      sync.Mutex
	nc      net.Conn // nil: not connected
	writing bool
	wbuf    []byte
}

// inspect runs fn with the connection's queues held still.
func (c *conn) inspect(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn()
}

// submit queues reqs (all for this connection) and writes them unless
// another goroutine is writing, which then writes them with its own.
func (c *conn) submit(reqs []*request) {
	c.mu.Lock()
	c.queue = append(c.queue, reqs...)
	if c.nc == nil {
		if c.srv.retired.Load() {
			q := c.queue
			c.queue = nil
			c.mu.Unlock()
			c.srv.failAll(q, "removed from the pool by a reload", kindDown)
			return
		}
		if !c.dialing {
			c.dialing = true
			go c.dial()
		}
		c.mu.Unlock()
		return
	}
	if !c.writing {
		// For a lone request, let the other runnable clients queue theirs
		// first, so that one write carries them all. A pipelined batch is
		// already worth a write of its own.
		if len(reqs) <= 2 {
			c.writing = true
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		c.flushLocked()
	}
	c.mu.Unlock()
}

// flushLocked writes the queue, in as few writes as possible, while new
// requests keep arriving. c.mu is held on entry and exit.
func (c *conn) flushLocked() {
	c.writing = true
	for len(c.queue) > 0 && c.nc != nil {
		nc := c.nc
		buf := c.wbuf[:0]
		now := time.Now()
		for i, r := range c.queue {
			buf = append(buf, r.out...)
			r.sent = now
			c.inflight.push(r)
			c.queue[i] = nil
		}
		c.srv.sentBatch(len(c.queue), len(buf))
		c.queue = c.queue[:0]
		c.wbuf = buf
		c.mu.Unlock()
		_, err := nc.Write(buf)
		c.mu.Lock()
		if cap(c.wbuf) > 1<<20 {
			c.wbuf = nil
		}
		if err != nil {
			nc.Close() // the reader fails what is in flight
			break
		}
	}
	c.writing = false
}

// dial connects, authenticates, starts the reader and writes the queue.
func (c *conn) dial() {
	s := c.srv
	nc, err := c.connect()
	c.mu.Lock()
	c.dialing = false
	if err != nil {
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		s.connErrs.Add(1)
		s.failure(err)
		s.failAll(q, "cannot connect: "+err.Error(), kindConnect)
		return
	}
	s.markUp()
	c.nc = nc
	c.timedOut = false
	s.open.Add(1)
	s.connects.Add(1)
	go c.read(nc)
	if !c.writing {
		c.flushLocked()
	}
	c.mu.Unlock()
}

// read matches replies to in-flight requests until the connection fails,
// then fails everything still waiting on it.
func (c *conn) read(nc net.Conn) {
	s := c.srv
	lim := s.owner.Load().limits
	var err error
	if s.owner.Load().cfg.Protocol == Redis {
		err = c.readRedis(resp.NewReader(nc, 16<<10, resp.Limits{MaxBulk: lim.maxBulk}))
	} else {
		err = c.readMemcache(memcache.NewReader(nc, 16<<10, memcache.Limits{MaxValue: lim.maxBulk}))
	}
	nc.Close()
	s.open.Add(-1)
	c.mu.Lock()
	timedOut := c.timedOut
	if c.nc == nc {
		c.nc = nil
	}
	failed := c.inflight.drain()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	s.connEnded(err, timedOut)
	reason, kind := "connection lost: "+errText(err), kindConnection
	if timedOut {
		reason, kind = fmt.Sprintf("timed out after %s", s.owner.Load().cfg.Timeout), kindTimeout
	}
	if !s.retired.Load() && (len(failed) > 0 || timedOut || !errors.Is(err, io.EOF)) {
		s.failure(errors.New(reason))
	}
	s.failAll(failed, reason, kind)
	s.failAll(q, reason, kind)
}

func (c *conn) readRedis(rd *resp.Reader) error {
	s := c.srv
	var acc []byte
	for {
		raw, err := rd.ReadReply()
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.inflight.len() == 0 {
			c.mu.Unlock()
			return errors.New("reply without a request")
		}
		r := c.inflight.peek()
		c.mu.Unlock()
		if r.count > 1 {
			// A transaction: its replies in a row. The request stays in
			// flight, failed with the connection if one is missing.
			acc = append(acc[:0], raw...)
			for i := 1; i < r.count && err == nil; i++ {
				raw, err = rd.ReadReply()
				acc = append(acc, raw...)
			}
			if err != nil {
				return err
			}
			raw = acc
		}
		c.mu.Lock()
		r = c.inflight.pop()
		c.mu.Unlock()
		s.observe(r, len(raw))
		r.complete(raw, false)
	}
}

func (c *conn) readMemcache(rd *memcache.Reader) error {
	s := c.srv
	for {
		// Block until the server sends something (or closes): a reply only
		// comes after its request is in flight, and a close is noticed at
		// once, not by the next request.
		if err := rd.Wait(); err != nil {
			return err
		}
		c.mu.Lock()
		if c.inflight.len() == 0 {
			c.mu.Unlock()
			return errors.New("reply without a request")
		}
		r := c.inflight.peek()
		c.mu.Unlock()
		var raw []byte
		var err error
		switch r.kind {
		case replyValues:
			raw, err = rd.ReadValueReply()
		case replyUntilMN:
			raw, err = readUntilMN(rd)
		default:
			raw, err = rd.ReadLineReply()
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		r = c.inflight.pop()
		c.mu.Unlock()
		s.observe(r, len(raw))
		r.complete(raw, false)
	}
}

// readUntilMN reads meta replies up to and including "MN\r\n" and returns
// them all but the MN (the reply of a quiet or noreply request followed by
// mn: empty when the server stayed quiet).
func readUntilMN(rd *memcache.Reader) ([]byte, error) {
	var out []byte
	for {
		raw, err := rd.ReadLineReply()
		if err != nil {
			return nil, err
		}
		if string(raw) == "MN\r\n" {
			if out == nil {
				out = []byte{}
			}
			return out, nil
		}
		out = append(out, raw...)
	}
}

// close closes the connection (for a retired server).
func (c *conn) close() {
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// connectNow opens the connection without a request (preconnect).
func (c *conn) connectNow() { c.submit(nil) }

// checkTimeout closes the connection when its oldest request has waited
// longer than timeout.
func (c *conn) checkTimeout(now time.Time, timeout time.Duration) {
	c.mu.Lock()
	if c.nc == nil || c.inflight.len() == 0 || now.Sub(c.inflight.peek().sent) < timeout {
		c.mu.Unlock()
		return
	}
	c.timedOut = true
	nc := c.nc
	c.mu.Unlock()
	nc.Close()
}
