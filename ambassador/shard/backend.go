package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/ambassador/shard/internal/memcache"
	"github.com/podkit/podkit/internal/rawsock"
	"github.com/podkit/podkit/internal/resp"
)

// replyKind says how a server's reply to a request is framed.
type replyKind uint8

const (
	replyRESP    replyKind = iota // one RESP value
	replyValues                   // memcached VALUE ... END (or one error line)
	replyLine                     // memcached one line, or a meta VA line with data
	replyUntilMN                  // memcached replies up to and including "MN\r\n"
)

// request is one request to one server. Its reply is copied into reply;
// then the owning batch is told.
type request struct {
	out    []byte // what is sent; may alias the client's read buffer
	kind   replyKind
	count  int // Redis: how many replies make the answer (a transaction's)
	reply  []byte
	failed bool // reply is an error made by the proxy
	sent   time.Time
	srv    *server
	batch  *batch
}

// batch counts a client's outstanding requests; the goroutine that
// completes the last one hands the batch back to its client.
type batch struct {
	pending atomic.Int32
	wake    chan struct{}
	c       *client
}

func (b *batch) done() {
	if b.pending.Add(-1) == 0 {
		b.c.batchDone()
	}
}

// complete stores a reply and tells the request's batch.
func (r *request) complete(reply []byte, failed bool) {
	r.reply = append(r.reply[:0], reply...)
	r.failed = failed
	r.batch.done()
}

// conn is one connection to a server, shared by many clients. Requests
// queued while another goroutine writes are sent together by that
// goroutine in one write; one reader goroutine matches replies to
// requests in order.
type conn struct {
	srv   *server
	resp3 bool // opened with HELLO 3

	mu       sync.Mutex
	nc       net.Conn // nil: not connected
	w        io.Writer
	dialing  bool
	writing  bool
	timedOut bool
	queue    []*request // waiting to be written
	inflight fifo       // written, waiting for a reply
	wbuf     []byte

	// In an event loop (loop_linux.go), the loop owns the connection and
	// mu is not used.
	lp     *loop
	fd     int
	up     bool
	dirty  bool // in the loop's dirty list
	out    []byte
	outPos int
	rresp  *resp.Reader
	rmc    *memcache.Reader
}

type fifo struct {
	buf  []*request
	head int
}

func (f *fifo) push(r *request) { f.buf = append(f.buf, r) }
func (f *fifo) len() int        { return len(f.buf) - f.head }
func (f *fifo) peek() *request  { return f.buf[f.head] }
func (f *fifo) pop() *request {
	r := f.buf[f.head]
	f.buf[f.head] = nil
	f.head++
	if f.head == len(f.buf) {
		f.buf, f.head = f.buf[:0], 0
	} else if f.head > 1024 && f.head*2 > len(f.buf) {
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf, f.head = f.buf[:n], 0
	}
	return r
}

func (f *fifo) drain() []*request {
	out := append([]*request(nil), f.buf[f.head:]...)
	clear(f.buf)
	f.buf, f.head = f.buf[:0], 0
	return out
}

// submit queues reqs (all for this connection) and writes them unless
// another goroutine is writing, which then writes them with its own.
func (c *conn) submit(reqs []*request) {
	if c.lp != nil {
		c.loopSubmit(reqs)
		return
	}
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
		// first, so that one write carries them all (what an event loop
		// gets from handling every ready socket before writing). A
		// pipelined batch is already worth a write of its own.
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
		nc, w := c.nc, c.w
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
		_, err := w.Write(buf)
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
	sock := rawsock.New(nc)
	c.nc, c.w = nc, sock
	c.timedOut = false
	s.open.Add(1)
	s.connects.Add(1)
	go c.read(nc, sock)
	if !c.writing {
		c.flushLocked()
	}
	c.mu.Unlock()
}

// connect dials the server and authenticates.
func (c *conn) connect() (net.Conn, error) {
	p := c.srv.owner.Load()
	timeout := p.cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	d := net.Dialer{KeepAlive: -1}
	if p.cfg.TCPKeepalive {
		d.KeepAlive = 0
	}
	nc, err := d.DialContext(ctx, c.srv.cfg.Network, c.srv.cfg.Addr)
	cancel()
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if err := c.handshake(nc, timeout); err != nil {
		nc.Close()
		return nil, err
	}
	return nc, nil
}

// handshake authenticates and selects the database on a new Redis
// connection.
func (c *conn) handshake(nc net.Conn, timeout time.Duration) error {
	p := c.srv.owner.Load().cfg
	if p.Protocol != Redis || (p.RedisAuth == "" && p.RedisDB == 0 && !c.resp3) {
		return nil
	}
	var cmds []byte
	n := 0
	switch {
	case c.resp3 && p.RedisAuth != "":
		cmds = resp.AppendCommand(cmds, []byte("HELLO"), []byte("3"), []byte("AUTH"), []byte("default"), []byte(p.RedisAuth))
		n++
	case c.resp3:
		cmds = resp.AppendCommand(cmds, []byte("HELLO"), []byte("3"))
		n++
	case p.RedisAuth != "":
		cmds = resp.AppendCommand(cmds, []byte("AUTH"), []byte(p.RedisAuth))
		n++
	}
	if p.RedisDB != 0 {
		cmds = resp.AppendCommand(cmds, []byte("SELECT"), fmt.Appendf(nil, "%d", p.RedisDB))
		n++
	}
	nc.SetDeadline(time.Now().Add(timeout))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(cmds); err != nil {
		return err
	}
	rd := resp.NewReader(nc, 512, resp.DefaultLimits)
	for range n {
		raw, err := rd.ReadReply()
		if err != nil {
			return err
		}
		if raw[0] == '-' {
			return fmt.Errorf("server refused HELLO/AUTH/SELECT: %s", trimCRLF(raw[1:]))
		}
	}
	return nil
}

// read matches replies to in-flight requests until the connection fails,
// then fails everything still waiting on it.
func (c *conn) read(nc net.Conn, sock io.Reader) {
	s := c.srv
	lim := s.owner.Load().limits
	var err error
	if s.owner.Load().cfg.Protocol == Redis {
		rd := resp.NewReader(sock, 16<<10, resp.Limits{MaxBulk: lim.maxBulk})
		var acc []byte
		for {
			var raw []byte
			raw, err = rd.ReadReply()
			if err != nil {
				break
			}
			c.mu.Lock()
			if c.inflight.len() == 0 {
				c.mu.Unlock()
				err = errors.New("reply without a request")
				break
			}
			r := c.inflight.peek()
			c.mu.Unlock()
			if r.count > 1 {
				// A transaction: its replies in a row. The request stays
				// in flight, failed with the connection if one is missing.
				acc = append(acc[:0], raw...)
				for i := 1; i < r.count && err == nil; i++ {
					raw, err = rd.ReadReply()
					acc = append(acc, raw...)
				}
				if err != nil {
					break
				}
				raw = acc
			}
			c.mu.Lock()
			r = c.inflight.pop()
			c.mu.Unlock()
			s.observe(r, len(raw))
			r.complete(raw, false)
		}
	} else {
		rd := memcache.NewReader(sock, 16<<10, memcache.Limits{MaxValue: lim.maxBulk})
		err = c.readMemcache(rd)
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
	if c.lp != nil {
		c.loopClose()
		return
	}
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// busy reports whether requests are queued or in flight.
func (c *conn) busy() bool {
	if c.lp != nil {
		return c.loopBusy()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) > 0 || c.inflight.len() > 0 || c.dialing
}

// pending is the number of requests queued or in flight.
func (c *conn) pending() int {
	if c.lp != nil {
		return c.loopPending()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) + c.inflight.len()
}

// connectNow opens the connection without a request (preconnect).
func (c *conn) connectNow() {
	if c.lp != nil {
		c.loopConnect()
		return
	}
	c.submit(nil)
}

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

func errText(err error) string {
	switch {
	case err == nil:
		return "closed"
	case errors.Is(err, io.EOF):
		return "server closed the connection"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return err.Error()
}

func trimCRLF(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}
