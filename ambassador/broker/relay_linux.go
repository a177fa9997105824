//go:build linux

package broker

import (
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/podkit/podkit/internal/rawsock"
)

// The tcp relay on Linux is a few event loops, one per GOMAXPROCS, each
// an epoll of its own outside the runtime's poller, as HAProxy has: a loop
// owns pairs of descriptors (the client's and the endpoint's, taken out of
// the runtime's poller) and moves the bytes of every ready socket with
// read(2) and send(2), without waking a goroutine per read. The goroutine
// that accepted the client waits for its pair to end (relayTCP), so the
// broker's accounting of connections is that of the goroutine relay.
//
// Each direction has at most one buffer of relayBuf bytes in flight: a
// send the peer cannot take in full keeps the rest and stops reading the
// source until the peer is writable again (back-pressure: the sender
// waits, the relay does not grow). A source that ends has its end passed
// on with shutdown(SHUT_WR) once its bytes are sent; a pair whose two
// directions ended, that failed, that stayed silent for its idle time, or
// that was aborted, is closed.

// relayBuf is the most a direction holds between a read and its send.
const relayBuf = 64 << 10

const (
	relayEvMask = syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | (-syscall.EPOLLET & 0xffffffff)
	relayEvHup  = syscall.EPOLLHUP | syscall.EPOLLERR | syscall.EPOLLRDHUP
)

var (
	relayOnce   sync.Once
	relayLoops  []*relayLoop
	relayNext   atomic.Uint32
	relayActive sync.Map // client net.Conn → *relayPair, for abortRelay
	relayEpoch  = time.Now()
)

// startRelayLoops starts the loops once; none if the first fails (the
// relay then stays with splice(2)).
func startRelayLoops() {
	n := runtime.GOMAXPROCS(0)
	for range n {
		lp, err := newRelayLoop()
		if err != nil {
			return
		}
		relayLoops = append(relayLoops, lp)
		go lp.run()
	}
}

// relayTCP relays between client and back until both directions end, one
// of them fails, the pair is silent for idle (0: no limit) or abortRelay
// is called with client. It closes both.
func relayTCP(client, back *net.TCPConn, idle time.Duration) {
	relayOnce.Do(startRelayLoops)
	if len(relayLoops) == 0 {
		spliceTCP(client, back, idle)
		return
	}
	lp := relayLoops[relayNext.Add(1)%uint32(len(relayLoops))]
	p := &relayPair{lp: lp, idle: int64(idle), done: make(chan struct{})}
	relayActive.Store(net.Conn(client), p)
	defer relayActive.Delete(net.Conn(client))
	cfd, err := rawsock.Detach(client)
	if err != nil {
		client.Close()
		back.Close()
		return
	}
	bfd, err := rawsock.Detach(back)
	if err != nil {
		syscall.Close(cfd)
		back.Close()
		return
	}
	p.ends[0] = relayEnd{p: p, fd: cfd}
	p.ends[1] = relayEnd{p: p, fd: bfd, back: true}
	if !lp.post(func() { lp.add(p) }) {
		syscall.Close(cfd)
		syscall.Close(bfd)
		return
	}
	<-p.done
}

// abortRelay closes the pair relayTCP relays for client, if any; the
// relayTCP call then returns.
func abortRelay(client net.Conn) {
	v, ok := relayActive.Load(client)
	if !ok {
		return
	}
	p := v.(*relayPair)
	p.aborted.Store(true)
	p.lp.post(func() { p.lp.closePair(p) })
}

type relayPair struct {
	lp      *relayLoop
	ends    [2]relayEnd // the client, the endpoint
	idle    int64       // nanoseconds; 0: no limit
	last    int64       // loop time of the last byte moved
	added   bool
	closed  bool
	aborted atomic.Bool
	done    chan struct{}
}

// relayEnd is one socket of a pair and the direction that reads it: buf
// holds what was read from fd and is not yet sent to the other end.
type relayEnd struct {
	p    *relayPair
	fd   int
	back bool

	readable bool // not known to be drained
	writable bool // not known to be full
	rdhup    bool // the peer ended its side: read until EOF
	eof      bool // fd's input ended
	shut     bool // the end was passed on: the other end is shut for writing

	buf      []byte
	off, len int
}

func (e *relayEnd) peer() *relayEnd {
	if e.back {
		return &e.p.ends[0]
	}
	return &e.p.ends[1]
}

type relayLoop struct {
	ep     int
	wakeR  int
	wakeW  int
	h      []*relayEnd // by descriptor
	pairs  map[*relayPair]struct{}
	events []syscall.EpollEvent
	free   [][]byte // spare buffers
	now    int64
	tick   int64 // the sweep's period: a quarter of the shortest idle, at most 1s
	swept  int64

	mu    sync.Mutex
	inbox []func()
	spare []func()
}

func newRelayLoop() (*relayLoop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(ep)
		return nil, err
	}
	lp := &relayLoop{ep: ep, wakeR: p[0], wakeW: p[1], events: make([]syscall.EpollEvent, 256),
		pairs: map[*relayPair]struct{}{}, tick: int64(time.Second)}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lp.wakeR, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lp.wakeR)}); err != nil {
		syscall.Close(ep)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, err
	}
	return lp, nil
}

// post runs fn in the loop.
func (lp *relayLoop) post(fn func()) bool {
	lp.mu.Lock()
	first := len(lp.inbox) == 0
	lp.inbox = append(lp.inbox, fn)
	lp.mu.Unlock()
	if first {
		b := [1]byte{1}
		syscall.Write(lp.wakeW, b[:])
	}
	return true
}

// call runs fn in the loop and waits for it.
func (lp *relayLoop) call(fn func()) {
	done := make(chan struct{})
	lp.post(func() { fn(); close(done) })
	<-done
}

func (lp *relayLoop) clock() int64 { return int64(time.Since(relayEpoch)) }

func (lp *relayLoop) run() {
	for {
		n := lp.wait()
		lp.now = lp.clock()
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
				lp.runInbox()
				continue
			}
			if fd < len(lp.h) && lp.h[fd] != nil {
				lp.onEvent(lp.h[fd], ev.Events)
			}
		}
		if len(lp.pairs) > 0 && lp.now-lp.swept >= lp.tick {
			lp.sweep()
		}
	}
}

// wait returns the number of ready events: at once if some are ready,
// else after blocking in epoll_wait (at most a sweep's period while the
// loop has pairs).
func (lp *relayLoop) wait() int {
	ev := lp.events
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(lp.ep), uintptr(unsafe.Pointer(&ev[0])), uintptr(len(ev)), 0, 0, 0)
	if e == 0 && r > 0 {
		return int(r)
	}
	timeout := -1
	if len(lp.pairs) > 0 {
		timeout = int(lp.tick/int64(time.Millisecond)) + 1
	}
	for {
		n, err := syscall.EpollWait(lp.ep, ev, timeout)
		if err == nil {
			return n
		}
		if err != syscall.EINTR {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (lp *relayLoop) runInbox() {
	lp.mu.Lock()
	fns := lp.inbox
	lp.inbox = lp.spare[:0]
	lp.mu.Unlock()
	for i, fn := range fns {
		fn()
		fns[i] = nil
	}
	lp.spare = fns[:0]
}

// add takes the pair in: both descriptors join the epoll, which reports
// them ready at once (edge-triggered, the first edge is the present
// state).
func (lp *relayLoop) add(p *relayPair) {
	if p.aborted.Load() {
		p.closed = true
		syscall.Close(p.ends[0].fd)
		syscall.Close(p.ends[1].fd)
		close(p.done)
		return
	}
	p.added = true
	p.last = lp.clock()
	lp.pairs[p] = struct{}{}
	if p.idle > 0 && p.idle/4 < lp.tick {
		lp.tick = max(p.idle/4, int64(time.Millisecond))
	}
	for i := range p.ends {
		e := &p.ends[i]
		for e.fd >= len(lp.h) {
			lp.h = append(lp.h, nil)
		}
		lp.h[e.fd] = e
		if err := syscall.EpollCtl(lp.ep, syscall.EPOLL_CTL_ADD, e.fd, &syscall.EpollEvent{Events: uint32(relayEvMask), Fd: int32(e.fd)}); err != nil {
			lp.closePair(p)
			return
		}
	}
}

// closePair closes both descriptors (which takes them out of the epoll)
// and lets relayTCP return.
func (lp *relayLoop) closePair(p *relayPair) {
	if p.closed || !p.added {
		return // not added yet: add sees the abort
	}
	p.closed = true
	delete(lp.pairs, p)
	for i := range p.ends {
		e := &p.ends[i]
		if e.fd < len(lp.h) && lp.h[e.fd] == e {
			lp.h[e.fd] = nil
		}
		syscall.Close(e.fd)
		lp.put(e)
	}
	close(p.done)
}

func (lp *relayLoop) get() []byte {
	if n := len(lp.free); n > 0 {
		b := lp.free[n-1]
		lp.free = lp.free[:n-1]
		return b
	}
	return make([]byte, relayBuf)
}

// put gives e's buffer back to the loop's spares (a few are kept).
func (lp *relayLoop) put(e *relayEnd) {
	if e.buf != nil && len(lp.free) < 64 {
		lp.free = append(lp.free, e.buf)
	}
	e.buf, e.off, e.len = nil, 0, 0
}

func (lp *relayLoop) onEvent(e *relayEnd, ev uint32) {
	p := e.p
	if ev&(syscall.EPOLLIN|relayEvHup) != 0 {
		e.readable = true
		if ev&relayEvHup != 0 {
			e.rdhup = true
		}
	}
	if ev&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		e.writable = true
	}
	// e readable: e's direction can go on; e writable: the direction
	// towards e (its peer's) can.
	if e.readable && !lp.pump(e) {
		lp.closePair(p)
		return
	}
	if e.writable && !p.closed && !lp.pump(e.peer()) {
		lp.closePair(p)
	}
}

// pump moves src's bytes to its peer as far as both sockets allow. It
// reports false when the pair is to be closed.
func (lp *relayLoop) pump(src *relayEnd) bool {
	dst := src.peer()
	for {
		if src.off < src.len {
			if !dst.writable {
				return true
			}
			n, errno := rawsock.SendAll(uintptr(dst.fd), src.buf[src.off:src.len])
			src.off += n
			if n > 0 {
				src.p.last = lp.now
			}
			switch errno {
			case 0:
				lp.put(src)
			case syscall.EAGAIN:
				dst.writable = false
				return true
			default:
				return false
			}
		}
		if src.eof {
			if !src.shut {
				src.shut = true
				if syscall.Shutdown(dst.fd, syscall.SHUT_WR) != nil {
					return false
				}
			}
			return !dst.shut // both directions ended: close
		}
		if !src.readable {
			return true
		}
		if src.buf == nil {
			src.buf = lp.get()
		}
		n, err := rawsock.Read(uintptr(src.fd), src.buf)
		switch {
		case err == syscall.EAGAIN:
			src.readable = false
			lp.put(src)
			return true
		case err == io.EOF:
			src.eof = true
			lp.put(src)
			continue
		case err != nil:
			return false
		}
		src.off, src.len = 0, n
		src.p.last = lp.now
		if n < len(src.buf) && !src.rdhup {
			// A short read took all there was; more data is a new edge.
			src.readable = false
		}
	}
}

// sweep closes the pairs silent for their idle time.
func (lp *relayLoop) sweep() {
	lp.swept = lp.now
	for p := range lp.pairs {
		if p.idle > 0 && lp.now-p.last >= p.idle {
			lp.closePair(p)
		}
	}
}

// relayHeld reports how many bytes each direction of client's pair holds
// read and not yet sent (client → endpoint, endpoint → client).
func relayHeld(client net.Conn) (held [2]int, ok bool) {
	v, ok := relayActive.Load(client)
	if !ok {
		return held, false
	}
	p := v.(*relayPair)
	p.lp.call(func() {
		for i := range p.ends {
			held[i] = len(p.ends[i].buf[p.ends[i].off:p.ends[i].len])
		}
	})
	return held, true
}
