package httpproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Backend is one HTTP/1.1 server the engine forwards to, with its pool of
// idle keep-alive connections. Create it with NewBackend; it is safe for
// concurrent use by any number of client connections and Proxies.
type Backend struct {
	// Network and Address are dialed by net.DialTimeout ("tcp",
	// "127.0.0.1:8080"; "unix", "/run/app.sock").
	Network, Address string
	// DialTimeout bounds a connect.
	DialTimeout time.Duration
	// Dial, if set, replaces net.DialTimeout(Network, Address,
	// DialTimeout).
	Dial func() (net.Conn, error)

	mu      sync.Mutex
	idle    []*backendConn // most recently used last
	closed  bool
	maxIdle int
	open    map[*backendConn]struct{} // every connection not closed yet
}

// NewBackend returns a Backend for network and address.
func NewBackend(network, address string, dialTimeout time.Duration) *Backend {
	return &Backend{Network: network, Address: address, DialTimeout: dialTimeout}
}

// String names the backend in logs and error answers: the address, or
// unix:PATH.
func (b *Backend) String() string {
	if b.Network == "unix" {
		return "unix:" + b.Address
	}
	return b.Address
}

// Host is the Host header sent for a request that had none (HTTP/1.0):
// the address, or localhost for a unix socket.
func (b *Backend) Host() string {
	if b.Network == "unix" {
		return "localhost"
	}
	return b.Address
}

// CloseIdle closes the idle connections and stops keeping any: a
// connection returned later is closed.
func (b *Backend) CloseIdle() {
	b.mu.Lock()
	idle := b.idle
	b.idle, b.closed = nil, true
	b.mu.Unlock()
	for _, bc := range idle {
		bc.close()
	}
}

// Abort closes every connection to the backend, idle or in use (a
// request in flight on one fails), and stops keeping any: for a stop
// whose drain deadline has passed.
func (b *Backend) Abort() {
	b.CloseIdle()
	b.mu.Lock()
	open := make([]*backendConn, 0, len(b.open))
	for bc := range b.open {
		open = append(open, bc)
	}
	b.mu.Unlock()
	for _, bc := range open {
		bc.close()
	}
}

// backendConn is a keep-alive connection to a backend.
type backendConn struct {
	b         *Backend
	c         net.Conn
	sock      *backSock // c's reads and writes
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	readDL    time.Time
	writeDL   time.Time
}

const (
	backendMaxIdleTime = 60 * time.Second
	// backendProbeAfter: a connection idle longer than this is checked
	// for a close by the backend before it is used.
	backendProbeAfter = time.Second
	defaultMaxIdle    = 1024
)

var errBackendClosed = errors.New("target closed the connection before answering")

// get returns an idle connection (reused true) or a new one. probe checks
// any idle connection for a close by the backend first (a request with a
// body cannot be retried on another connection once it was sent);
// otherwise only connections idle for a while are checked.
func (b *Backend) get(p *Proxy, probe bool) (*backendConn, bool, error) {
	now := time.Now()
	for {
		b.mu.Lock()
		n := len(b.idle)
		if n == 0 {
			b.mu.Unlock()
			break
		}
		bc := b.idle[n-1]
		b.idle[n-1] = nil
		b.idle = b.idle[:n-1]
		b.mu.Unlock()
		idle := now.Sub(bc.idleSince)
		if idle > backendMaxIdleTime || (probe || idle > backendProbeAfter) && !alive(bc.c) {
			bc.close()
			continue
		}
		return bc, true, nil
	}
	c, err := b.dial()
	if err != nil {
		p.backendError("dial")
		p.log.Warn("cannot reach target", "target", b.String(), "error", err)
		return nil, false, &dialError{err}
	}
	sock := newBackSock(c)
	bc := &backendConn{
		b:    b,
		c:    c,
		sock: sock,
		br:   bufio.NewReaderSize(sock, headBufSize),
		bw:   bufio.NewWriterSize(sock, 8<<10),
	}
	b.mu.Lock()
	if b.open == nil {
		b.open = map[*backendConn]struct{}{}
	}
	b.open[bc] = struct{}{}
	b.mu.Unlock()
	return bc, false, nil
}

func (b *Backend) dial() (net.Conn, error) {
	if b.Dial != nil {
		return b.Dial()
	}
	return net.DialTimeout(b.Network, b.Address, b.DialTimeout)
}

// put returns a connection whose response was read completely.
func (b *Backend) put(bc *backendConn) {
	if bc.br.Buffered() > 0 {
		// The backend sent more than the response: not reusable.
		bc.close()
		return
	}
	now := time.Now()
	bc.idleSince = now
	var stale *backendConn
	b.mu.Lock()
	maxIdle := b.maxIdle
	if maxIdle == 0 {
		maxIdle = defaultMaxIdle
	}
	if b.closed || len(b.idle) >= maxIdle {
		b.mu.Unlock()
		bc.close()
		return
	}
	// The least recently used connection is at the bottom: drop it once
	// it has idled too long, so connections the backend closed do not
	// linger.
	if len(b.idle) > 0 && now.Sub(b.idle[0].idleSince) > backendMaxIdleTime {
		stale = b.idle[0]
		copy(b.idle, b.idle[1:])
		b.idle[len(b.idle)-1] = nil
		b.idle = b.idle[:len(b.idle)-1]
	}
	b.idle = append(b.idle, bc)
	b.mu.Unlock()
	if stale != nil {
		stale.close()
	}
}

func (bc *backendConn) close() {
	bc.c.Close()
	b := bc.b
	b.mu.Lock()
	delete(b.open, bc)
	b.mu.Unlock()
}

// refreshRead keeps the read deadline about idle ahead.
func (bc *backendConn) refreshRead(now time.Time, idle time.Duration) {
	if d := bc.readDL.Sub(now); d < idle-idle/4 || d > idle {
		bc.readDL = now.Add(idle)
		bc.c.SetReadDeadline(bc.readDL)
	}
}

// refreshWrite keeps the write deadline about idle ahead, so a backend
// that stops reading a request body cannot hold the connection forever.
func (bc *backendConn) refreshWrite(now time.Time, idle time.Duration) {
	if bc.writeDL.Sub(now) < idle-idle/4 {
		bc.writeDL = now.Add(idle)
		bc.c.SetWriteDeadline(bc.writeDL)
	}
}

// readHead reads and parses the next response head into m (not consumed
// from br: the caller discards len(m.head)).
func (bc *backendConn) readHead(m *msg, now time.Time, idle time.Duration) error {
	bc.refreshRead(now, idle)
	head, err := readHead(bc.br, nil)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errBackendClosed
		}
		return err
	}
	return parseResponse(m, head)
}
