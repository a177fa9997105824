package shard

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/podkit/podkit/ambassador/shard/internal/memcache"
	"github.com/podkit/podkit/internal/rawsock"
	"github.com/podkit/podkit/internal/resp"
)

// The data path on Linux is a few event loops, one per CPU by default,
// each an epoll of its own outside the runtime's poller, as twemproxy has
// one. A loop owns its clients and one set of server connections: it reads
// every ready client, queues their requests, writes each server's queue in
// one write, reads the replies and writes each client's replies as soon as
// its batch is complete. No goroutine is woken per request and nothing is
// locked on the way: a client's loop is the loop of its server
// connections (client id and connection index agree modulo the number of
// loops). Dials, accepts, timeouts and reloads reach a loop through its
// inbox.
type loopPath struct {
	px    *Proxy
	loops []*loop
}

// newDataPath starts n event loops (n < 1: one per GOMAXPROCS).
func newDataPath(px *Proxy, n int) (dataPath, error) {
	loops, err := startLoops(px, n)
	if err != nil {
		return nil, err
	}
	return &loopPath{px: px, loops: loops}, nil
}

func (lpp *loopPath) stop() { stopLoops(lpp.loops) }

// conns rounds server_connections up to a multiple of the number of
// loops: each loop has its own connections to each server.
func (lpp *loopPath) conns(n int) int {
	k := len(lpp.loops)
	return (n + k - 1) / k * k
}

// own gives connection i to loop i modulo the number of loops; a client's
// loop is the loop of the server connections it uses (see server.conn).
func (lpp *loopPath) own(c *conn, i int) {
	c.lp, c.fd = lpp.loops[i%len(lpp.loops)], -1
}

// serve takes the accepted connection's descriptor out of the runtime's
// poller and gives it to a loop.
func (lpp *loopPath) serve(l *listener, p *pool, nc net.Conn) {
	fd, err := rawsock.Detach(nc)
	if err != nil {
		lpp.px.log.Warn("client dropped", "pool", l.name, "error", err)
		nc.Close()
		return
	}
	if !l.admit(p, nil) {
		syscall.Close(fd)
		return
	}
	id := clientIDs.Add(1)
	lp := lpp.loops[id%uint32(len(lpp.loops))]
	if !lp.post(func() { lp.addClient(l, fd, id) }) {
		syscall.Close(fd)
		p.counters.clients.Add(-1)
		l.wg.Done()
	}
}

func (lpp *loopPath) stopClients(l *listener, now bool) {
	for _, lp := range lpp.loops {
		lp.post(func() { lp.stopClients(l, now) })
	}
}

func (lpp *loopPath) checkTimeouts(now time.Time) {
	for _, lp := range lpp.loops {
		lp.post(func() { lp.checkTimeouts(now) })
	}
}

// listenerClients: a loop keeps its own clients (loop.clients).
type listenerClients struct{}

func (listenerClients) track(net.Conn) {}

// errAgain is a non-blocking read that found nothing.
var errAgain = errors.New("try again")

const (
	evIn   = syscall.EPOLLIN
	evOut  = syscall.EPOLLOUT
	evHup  = syscall.EPOLLHUP | syscall.EPOLLERR | syscall.EPOLLRDHUP
	evMask = evIn | evOut | syscall.EPOLLRDHUP | (-syscall.EPOLLET & 0xffffffff)
)

// handler is what a loop's descriptor belongs to: a client or a server
// connection.
type handler interface{ onEvent(ev uint32) }

type loop struct {
	px     *Proxy
	ep     int
	wakeR  int
	wakeW  int
	h      []handler // by descriptor
	dirty  []*conn   // server connections with queued requests
	ready  []*client // clients whose batch was answered
	events []syscall.EpollEvent

	clients map[*client]struct{}

	mu      sync.Mutex
	inbox   []func()
	spare   []func()
	stopped bool
	done    chan struct{}
}

// startLoops starts n loops (n < 1: one per GOMAXPROCS).
func startLoops(px *Proxy, n int) ([]*loop, error) {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	var loops []*loop
	for range n {
		lp, err := newLoop(px)
		if err != nil {
			stopLoops(loops)
			return nil, fmt.Errorf("event loop: %w", err)
		}
		loops = append(loops, lp)
		go lp.run()
	}
	return loops, nil
}

func stopLoops(loops []*loop) {
	for _, lp := range loops {
		lp.mu.Lock()
		lp.stopped = true
		lp.mu.Unlock()
		lp.wake()
	}
	for _, lp := range loops {
		<-lp.done
	}
}

func newLoop(px *Proxy) (*loop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(ep)
		return nil, err
	}
	lp := &loop{px: px, ep: ep, wakeR: p[0], wakeW: p[1], events: make([]syscall.EpollEvent, 256),
		clients: map[*client]struct{}{}, done: make(chan struct{})}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lp.wakeR, &syscall.EpollEvent{Events: evIn, Fd: int32(lp.wakeR)}); err != nil {
		syscall.Close(ep)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, err
	}
	return lp, nil
}

// post runs fn in the loop. It reports false, without running fn, once
// the loop has stopped.
func (lp *loop) post(fn func()) bool {
	lp.mu.Lock()
	if lp.stopped {
		lp.mu.Unlock()
		return false
	}
	first := len(lp.inbox) == 0
	lp.inbox = append(lp.inbox, fn)
	lp.mu.Unlock()
	if first {
		lp.wake()
	}
	return true
}

// call runs fn in the loop and waits for it; false if the loop stopped.
func (lp *loop) call(fn func()) bool {
	done := make(chan struct{})
	if !lp.post(func() { fn(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-lp.done:
		return false
	}
}

func (lp *loop) wake() {
	b := [1]byte{1}
	syscall.Write(lp.wakeW, b[:])
}

func (lp *loop) run() {
	defer close(lp.done)
	for {
		n := lp.wait()
		for i := range n {
			ev := &lp.events[i]
			fd := int(ev.Fd)
			if fd == lp.wakeR {
				var b [64]byte
				for {
					if n, _ := syscall.Read(lp.wakeR, b[:]); n < len(b) {
						break
					}
				}
				continue
			}
			if fd < len(lp.h) && lp.h[fd] != nil {
				lp.h[fd].onEvent(ev.Events)
			}
		}
		if lp.runInbox() {
			lp.shutdown()
			return
		}
		lp.settle()
	}
}

// wait returns the number of ready events: at once if some are ready,
// else after blocking in epoll_wait.
func (lp *loop) wait() int {
	ev := lp.events
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(lp.ep), uintptr(unsafe.Pointer(&ev[0])), uintptr(len(ev)), 0, 0, 0)
	if e == 0 && r > 0 {
		return int(r)
	}
	for {
		n, err := syscall.EpollWait(lp.ep, ev, -1)
		if err == nil {
			return n
		}
		if err != syscall.EINTR {
			lp.px.log.Error("event loop: epoll_wait failed", "error", err)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// runInbox runs what other goroutines posted; it reports whether the loop
// is to stop.
func (lp *loop) runInbox() bool {
	lp.mu.Lock()
	fns, stopped := lp.inbox, lp.stopped
	lp.inbox = lp.spare[:0]
	lp.mu.Unlock()
	for i, fn := range fns {
		fn()
		fns[i] = nil
	}
	lp.spare = fns[:0]
	return stopped
}

// settle lets the answered clients go on and writes the server queues,
// until neither has anything left.
func (lp *loop) settle() {
	for len(lp.ready) > 0 || len(lp.dirty) > 0 {
		for len(lp.ready) > 0 {
			c := lp.ready[len(lp.ready)-1]
			lp.ready = lp.ready[:len(lp.ready)-1]
			c.queued = false
			c.pump()
		}
		dirty := lp.dirty
		lp.dirty = nil
		for i, cn := range dirty {
			cn.dirty = false
			cn.flush()
			dirty[i] = nil
		}
		if lp.dirty == nil {
			lp.dirty = dirty[:0]
		}
	}
}

func (lp *loop) add(fd int, h handler) error {
	if err := syscall.EpollCtl(lp.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: uint32(evMask), Fd: int32(fd)}); err != nil {
		return err
	}
	for fd >= len(lp.h) {
		lp.h = append(lp.h, nil)
	}
	lp.h[fd] = h
	return nil
}

// remove closes fd, which takes it out of the epoll.
func (lp *loop) remove(fd int) {
	if fd < len(lp.h) {
		lp.h[fd] = nil
	}
	syscall.Close(fd)
}

func (lp *loop) markReady(c *client) {
	if !c.queued {
		c.queued = true
		lp.ready = append(lp.ready, c)
	}
}

// shutdown closes everything the loop owns.
func (lp *loop) shutdown() {
	for c := range lp.clients {
		c.closeLoop()
	}
	for fd, h := range lp.h {
		if cn, ok := h.(*conn); ok {
			cn.lost(net.ErrClosed)
		} else if h != nil {
			lp.remove(fd)
		}
	}
	syscall.Close(lp.ep)
	syscall.Close(lp.wakeR)
	syscall.Close(lp.wakeW)
}

// fdReader reads a non-blocking socket with raw system calls.
type fdReader int

func (f fdReader) Read(b []byte) (int, error) {
	n, err := rawsock.Read(uintptr(f), b)
	if err == syscall.EAGAIN {
		return 0, errAgain
	}
	return n, err
}

// --- clients ---

// clientIO is a client's state in its loop, which owns it.
type clientIO struct {
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
	wpending   []byte // replies not yet written
}

// parser is what pump needs from a protocol's client.
type parser interface {
	// parse handles the buffered requests, up to maxBatch slots; a stream
	// error is left in perr.
	parse()
	fill() (n int, full bool, err error)
	// fatal answers a stream error before the connection closes.
	fatal(err error)
}

// addClient takes over an accepted connection's descriptor.
func (lp *loop) addClient(l *listener, fd int, id uint32) {
	c := &client{px: lp.px, l: l, id: id}
	c.lp, c.fd = lp, fd
	c.b = &batch{c: c}
	rd := fdReader(fd)
	if l.proto == Redis {
		rc := &redisClient{client: c}
		rc.rd = resp.NewReader(rd, 16<<10, resp.Limits{MaxBulk: c.px.limits.maxBulk})
		c.p = rc
	} else {
		mc := &mcClient{client: c}
		mc.rd = memcache.NewReader(rd, 16<<10, memcache.Limits{MaxValue: c.px.limits.maxBulk})
		c.p = mc
	}
	l.mu.Lock()
	c.stopping = l.closing
	l.mu.Unlock()
	lp.clients[c] = struct{}{}
	if err := lp.add(fd, c); err != nil {
		lp.px.log.Warn("client dropped: epoll", "pool", l.name, "error", err)
		c.endErr = err
		c.closeLoop()
	}
}

// stopClients has l's clients finish the requests they sent and close;
// with now, they close at once.
func (lp *loop) stopClients(l *listener, now bool) {
	for c := range lp.clients {
		if c.l != l {
			continue
		}
		c.stopping = true
		if now || !c.busy {
			c.closeLoop()
		}
	}
}

func (c *client) onEvent(ev uint32) {
	if ev&evHup != 0 {
		c.hup = true
	}
	if ev&(evIn|evHup) != 0 {
		c.readable = true
	}
	if ev&evOut != 0 && len(c.wpending) > 0 {
		if !c.writeReplies() {
			return
		}
	}
	c.pump()
}

// pump handles the client's input until it has to wait: for replies, for
// more input, or for its socket to take the replies.
func (c *client) pump() {
	for !c.busy && !c.dead {
		if c.perr != nil {
			c.p.fatal(c.perr)
			c.endErr = c.perr
			c.closeLoop()
			return
		}
		c.p.parse()
		if len(c.slots) > 0 {
			if c.submit() {
				c.busy = true
				return
			}
			c.startReplies()
			continue
		}
		if c.perr != nil {
			continue
		}
		if c.stopping {
			c.closeLoop()
			return
		}
		if !c.readable && !c.hup {
			return
		}
		_, full, err := c.p.fill()
		if !full {
			c.readable = false
		}
		if err == errAgain {
			c.readable = false
			if c.hup {
				// The peer closed only its sending side, or reported an
				// error that a later read would show: read again on the
				// next event.
				c.hup = false
			}
			return
		}
		if err != nil {
			c.endErr = err
			c.closeLoop()
			return
		}
	}
}

// batchDone writes a batch's replies once its last request completed.
func (c *client) batchDone() {
	if c.dead {
		c.reset()
		return
	}
	if c.startReplies() {
		c.lp.markReady(c)
	}
}

// startReplies writes the batch's replies in order; it reports whether
// they were all written and the client may go on.
func (c *client) startReplies() bool {
	c.closeAfter = c.build()
	c.wpending = c.wbuf
	c.busy = true
	return c.writeReplies()
}

// writeReplies writes what is pending; with the socket full it waits for
// EPOLLOUT. It reports whether the client may go on.
func (c *client) writeReplies() bool {
	n, e := rawsock.SendAll(uintptr(c.fd), c.wpending)
	c.wpending = c.wpending[n:]
	switch e {
	case 0:
	case syscall.EAGAIN:
		return false
	default:
		c.wpending = nil
		c.reset()
		c.endErr = e
		c.closeLoop()
		return false
	}
	c.wpending = nil
	c.reset()
	c.busy = false
	if c.closeAfter {
		c.closeLoop()
		return false
	}
	return true
}

// writeFinal sends a last error reply, if the socket takes it.
func (c *client) writeFinal(b []byte) {
	if !c.dead {
		rawsock.SendAll(uintptr(c.fd), b)
	}
}

// closeLoop closes the client. Requests still in flight complete into
// the dead client and are dropped.
func (c *client) closeLoop() {
	if c.dead {
		return
	}
	c.dead = true
	c.lp.remove(c.fd)
	c.fd = -1
	delete(c.lp.clients, c)
	ctr := c.l.pool.Load().counters
	if !c.stopping {
		ctr.clientClosed(c.endErr)
	}
	ctr.clients.Add(-1)
	c.l.wg.Done()
}

func (c *redisClient) parse() {
	pl := c.l.pool.Load()
	n := 0
	for len(c.slots) < maxBatch {
		args, raw, ok, err := c.rd.TryCommand()
		if err != nil {
			c.perr = err
			break
		}
		if !ok {
			break
		}
		n++
		c.handle(pl, args, raw)
	}
	if n > 0 {
		pl.counters.commands.Add(uint64(n))
	}
}

func (c *redisClient) fill() (int, bool, error) { return c.rd.Fill() }
func (c *redisClient) fatal(err error)          { c.readError(err) }

func (c *mcClient) parse() {
	pl := c.l.pool.Load()
	n := 0
	for len(c.slots) < maxBatch {
		req, err := c.rd.TryRequest()
		if err != nil {
			if c.lineError(err) {
				continue
			}
			c.perr = err
			break
		}
		if req == nil {
			break
		}
		n++
		c.handle(pl, req)
	}
	if n > 0 {
		pl.counters.commands.Add(uint64(n))
	}
}

func (c *mcClient) fill() (int, bool, error) { return c.rd.Fill() }
func (c *mcClient) fatal(err error)          { c.readError(err) }

// --- server connections ---

// connIO is a server connection's state in its loop, which owns it.
type connIO struct {
	lp     *loop
	fd     int
	up     bool
	dirty  bool // in the loop's dirty list
	out    []byte
	outPos int
	rresp  *resp.Reader
	rmc    *memcache.Reader
}

// submit queues reqs; the loop writes the queue when it settles.
func (c *conn) submit(reqs []*request) {
	c.queue = append(c.queue, reqs...)
	if !c.up {
		// A retired server is dialled too: the request was routed with a
		// ring that had it, in this same step of the loop, before the
		// loop could see the reload. The server's retirement closes the
		// connection once it is idle.
		if !c.dialing && (len(c.queue) > 0 || !c.srv.retired.Load()) {
			c.dialing = true
			go c.dialLoop()
		}
		return
	}
	if !c.dirty && len(c.queue) > 0 {
		c.dirty = true
		c.lp.dirty = append(c.lp.dirty, c)
	}
}

// dialLoop connects and authenticates off the loop, then hands the
// descriptor to it.
func (c *conn) dialLoop() {
	nc, err := c.connect()
	fd := -1
	if err == nil {
		fd, err = rawsock.Detach(nc)
		if err != nil {
			nc.Close()
		}
	}
	if !c.lp.post(func() { c.dialed(fd, err) }) && fd >= 0 {
		syscall.Close(fd)
	}
}

func (c *conn) dialed(fd int, err error) {
	s := c.srv
	c.dialing = false
	if err == nil && s.retired.Load() && len(c.queue) == 0 {
		// Retired while dialling, with nothing to send: its close may
		// already have run.
		syscall.Close(fd)
		return
	}
	if err == nil {
		err = c.lp.add(fd, c)
		if err != nil {
			syscall.Close(fd)
		}
	}
	if err != nil {
		q := c.queue
		c.queue = nil
		s.connErrs.Add(1)
		s.failure(err)
		s.failAll(q, "cannot connect: "+err.Error(), kindConnect)
		return
	}
	s.markUp()
	c.fd, c.up, c.timedOut = fd, true, false
	lim := s.owner.Load().limits
	if s.owner.Load().cfg.Protocol == Redis {
		c.rresp = resp.NewReader(fdReader(fd), 16<<10, resp.Limits{MaxBulk: lim.maxBulk})
	} else {
		c.rmc = memcache.NewReader(fdReader(fd), 16<<10, memcache.Limits{MaxValue: lim.maxBulk})
	}
	s.open.Add(1)
	s.connects.Add(1)
	if len(c.queue) > 0 && !c.dirty {
		c.dirty = true
		c.lp.dirty = append(c.lp.dirty, c)
	}
}

// flush moves the queue to the output and writes it.
func (c *conn) flush() {
	if !c.up || len(c.queue) == 0 {
		return
	}
	now := time.Now()
	start := len(c.out)
	for i, r := range c.queue {
		c.out = append(c.out, r.out...)
		r.sent = now
		c.inflight.push(r)
		c.queue[i] = nil
	}
	c.srv.sentBatch(len(c.queue), len(c.out)-start)
	c.queue = c.queue[:0]
	c.writeOut()
}

// writeOut writes the output; with the socket full it waits for EPOLLOUT.
func (c *conn) writeOut() {
	n, e := rawsock.SendAll(uintptr(c.fd), c.out[c.outPos:])
	c.outPos += n
	switch e {
	case 0:
	case syscall.EAGAIN:
		return
	default:
		c.lost(e)
		return
	}
	c.out, c.outPos = c.out[:0], 0
	if cap(c.out) > 1<<20 {
		c.out = nil
	}
}

func (c *conn) onEvent(ev uint32) {
	if !c.up {
		return
	}
	if ev&evOut != 0 && c.outPos < len(c.out) {
		c.writeOut()
		if !c.up {
			return
		}
	}
	if ev&(evIn|evHup) == 0 {
		return
	}
	// Read until the socket is drained; after a hang-up, until the end.
	for c.up {
		n, full, err := c.fillReplies()
		if n > 0 {
			if perr := c.takeReplies(); perr != nil {
				c.lost(perr)
				return
			}
		}
		if err == errAgain || (err == nil && !full && ev&evHup == 0) {
			return
		}
		if err != nil {
			c.lost(err)
			return
		}
	}
}

func (c *conn) fillReplies() (int, bool, error) {
	if c.rresp != nil {
		return c.rresp.Fill()
	}
	return c.rmc.Fill()
}

// takeReplies completes the in-flight requests whose replies are read.
func (c *conn) takeReplies() error {
	s := c.srv
	for c.inflight.len() > 0 {
		r := c.inflight.peek()
		var raw []byte
		var ok bool
		var err error
		switch {
		case c.rresp != nil && r.count > 1:
			raw, ok, err = c.rresp.TryReplies(r.count)
		case c.rresp != nil:
			raw, ok, err = c.rresp.TryReply()
		case r.kind == replyValues:
			raw, ok, err = c.rmc.TryValueReply()
		case r.kind == replyUntilMN:
			raw, ok, err = c.rmc.TryThroughMN()
			raw = raw[:max(len(raw)-len("MN\r\n"), 0)]
		default:
			raw, ok, err = c.rmc.TryLineReply()
		}
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		c.inflight.pop()
		s.observe(r, len(raw))
		r.complete(raw, false)
	}
	if (c.rresp != nil && c.rresp.Buffered() > 0) || (c.rmc != nil && c.rmc.Buffered() > 0) {
		return errors.New("reply without a request")
	}
	if len(c.queue) == 0 && c.outPos == len(c.out) && s.retired.Load() {
		c.lost(net.ErrClosed) // idle, and removed by a reload
	}
	return nil
}

// lost closes the connection and fails everything queued or in flight on
// it, counting a failure of the server unless it is retired or the
// server just closed an idle connection.
func (c *conn) lost(err error) {
	if !c.up {
		return
	}
	s := c.srv
	c.up = false
	c.lp.remove(c.fd)
	c.fd = -1
	c.rresp, c.rmc = nil, nil
	c.out, c.outPos = nil, 0
	s.open.Add(-1)
	failed := c.inflight.drain()
	q := c.queue
	c.queue = nil
	s.connEnded(err, c.timedOut)
	reason, kind := "connection lost: "+errText(err), kindConnection
	if c.timedOut {
		reason, kind = fmt.Sprintf("timed out after %s", s.owner.Load().cfg.Timeout), kindTimeout
	}
	if !s.retired.Load() && (len(failed) > 0 || c.timedOut || !errors.Is(err, io.EOF)) && !errors.Is(err, net.ErrClosed) {
		s.failure(errors.New(reason))
	}
	s.failAll(failed, reason, kind)
	s.failAll(q, reason, kind)
}

// inspect runs fn in the connection's loop and waits for it (not if the
// loop has stopped).
func (c *conn) inspect(fn func()) { c.lp.call(fn) }

// close closes the connection (for a retired server).
func (c *conn) close() {
	c.lp.post(func() { c.lost(net.ErrClosed) })
}

// connectNow opens the connection without a request (preconnect).
func (c *conn) connectNow() {
	c.lp.post(func() { c.submit(nil) })
}

// checkTimeouts closes this loop's server connections whose oldest request
// has waited longer than their pool's timeout.
func (lp *loop) checkTimeouts(now time.Time) {
	for _, p := range lp.px.pools() {
		if p.cfg.Timeout <= 0 {
			continue
		}
		for _, s := range p.servers {
			for _, c := range s.cs {
				if c.lp == lp && c.up && c.inflight.len() > 0 && now.Sub(c.inflight.peek().sent) >= p.cfg.Timeout {
					c.timedOut = true
					c.lost(nil)
				}
			}
		}
	}
}
