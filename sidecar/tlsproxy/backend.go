package tlsproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// backendConn is a keep-alive connection to the target.
type backendConn struct {
	pool      *backendPool
	c         net.Conn
	sock      *backSock // c's reads and writes
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	readDL    time.Time
	writeDL   time.Time
}

// backendPool keeps idle connections to the target, most recently used
// first.
type backendPool struct {
	p       *Proxy
	mu      sync.Mutex
	idle    []*backendConn
	closed  bool
	maxIdle int
}

const (
	backendMaxIdleTime = 60 * time.Second
	// backendProbeAfter: a connection idle longer than this is checked
	// for a close by the target before it is used.
	backendProbeAfter = time.Second
)

func newBackendPool(p *Proxy) *backendPool {
	return &backendPool{p: p, maxIdle: 1024}
}

// get returns an idle connection (reused true) or a new one. probe checks
// any idle connection for a close by the target first (a request with a
// body cannot be retried on another connection once it was sent);
// otherwise only connections idle for a while are checked.
func (bp *backendPool) get(probe bool) (*backendConn, bool, error) {
	now := time.Now()
	for {
		bp.mu.Lock()
		n := len(bp.idle)
		if n == 0 {
			bp.mu.Unlock()
			break
		}
		bc := bp.idle[n-1]
		bp.idle[n-1] = nil
		bp.idle = bp.idle[:n-1]
		bp.mu.Unlock()
		idle := now.Sub(bc.idleSince)
		if idle > backendMaxIdleTime || (probe || idle > backendProbeAfter) && !alive(bc.c) {
			bc.close()
			continue
		}
		return bc, true, nil
	}
	c, err := bp.p.dialTarget()
	if err != nil {
		bp.p.log.Warn("cannot reach target", "target", bp.p.target.String(), "error", err)
		return nil, false, &dialError{err}
	}
	sock := newBackSock(c)
	bc := &backendConn{
		pool: bp,
		c:    c,
		sock: sock,
		br:   bufio.NewReaderSize(sock, headBufSize),
		bw:   bufio.NewWriterSize(sock, 8<<10),
	}
	return bc, false, nil
}

// put returns a connection whose response was read completely.
func (bp *backendPool) put(bc *backendConn) {
	if bc.br.Buffered() > 0 {
		// The target sent more than the response: not reusable.
		bc.close()
		return
	}
	now := time.Now()
	bc.idleSince = now
	var stale *backendConn
	bp.mu.Lock()
	if bp.closed || len(bp.idle) >= bp.maxIdle {
		bp.mu.Unlock()
		bc.close()
		return
	}
	// The least recently used connection is at the bottom: drop it once
	// it has idled too long, so connections the target closed do not
	// linger.
	if len(bp.idle) > 0 && now.Sub(bp.idle[0].idleSince) > backendMaxIdleTime {
		stale = bp.idle[0]
		copy(bp.idle, bp.idle[1:])
		bp.idle[len(bp.idle)-1] = nil
		bp.idle = bp.idle[:len(bp.idle)-1]
	}
	bp.idle = append(bp.idle, bc)
	bp.mu.Unlock()
	if stale != nil {
		stale.close()
	}
}

func (bp *backendPool) closeAll() {
	bp.mu.Lock()
	idle := bp.idle
	bp.idle, bp.closed = nil, true
	bp.mu.Unlock()
	for _, bc := range idle {
		bc.close()
	}
}

func (bc *backendConn) close() { bc.c.Close() }

// refreshRead keeps the read deadline about idle ahead.
func (bc *backendConn) refreshRead(now time.Time, idle time.Duration) {
	if bc.readDL.Sub(now) < idle-idle/4 {
		bc.readDL = now.Add(idle)
		bc.c.SetReadDeadline(bc.readDL)
	}
}

// refreshWrite keeps the write deadline about idle ahead, so a target
// that stops reading a request body cannot hold the connection forever.
func (bc *backendConn) refreshWrite(now time.Time, idle time.Duration) {
	if bc.writeDL.Sub(now) < idle-idle/4 {
		bc.writeDL = now.Add(idle)
		bc.c.SetWriteDeadline(bc.writeDL)
	}
}

// readHead reads and parses the next response head into m (not consumed
// from br: the caller discards len(m.head)).
func (bc *backendConn) readHead(m *msg, now time.Time) error {
	bc.refreshRead(now, bc.pool.p.cfg.IdleTimeout)
	head, err := readHead(bc.br, nil)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errBackendClosed
		}
		return err
	}
	return parseResponse(m, head)
}
