package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

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

// conn is one connection to a server, shared by many clients: requests
// from all of them go out together, and replies are matched to requests
// in order. How it is driven is the data path's (connIO).
type conn struct {
	srv      *server
	resp3    bool // opened with HELLO 3
	dialing  bool
	timedOut bool
	queue    []*request // waiting to be written
	inflight fifo       // written, waiting for a reply
	connIO
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
