package tlsproxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/internal/rawsock"
)

const bufSize = 32 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte { return buffers.Get().(*[]byte) }
func putBuf(b *[]byte) {
	if cap(*b) >= bufSize {
		*b = (*b)[:bufSize]
		buffers.Put(b)
	}
}

// serveTCP tunnels the decrypted stream to the target.
func (p *Proxy) serveTCP(tc *tls.Conn, raw *trackedConn) {
	back, err := p.dialTarget()
	if err != nil {
		p.log.Warn("cannot reach target", "target", p.target.String(), "error", err)
		return
	}
	defer back.Close()
	if p.cfg.ProxyProtocol {
		st := tc.ConnectionState()
		hdr := proxyHeaderV2(raw.RemoteAddr(), raw.LocalAddr(), &st)
		back.SetWriteDeadline(time.Now().Add(p.cfg.DialTimeout))
		if _, err := back.Write(hdr); err != nil {
			p.m.backendErrs.WithLabelValues("write").Inc()
			p.log.Warn("cannot send PROXY header to target", "error", err)
			return
		}
		back.SetWriteDeadline(time.Time{})
	}
	bs := rawsock.New(back)
	splice(end{tc, tc, tc}, end{bs, bs, back}, p.cfg.IdleTimeout)
}

// dialTarget connects to the target, counting failures.
func (p *Proxy) dialTarget() (net.Conn, error) {
	c, err := net.DialTimeout(p.target.network, p.target.addr, p.cfg.DialTimeout)
	if err != nil {
		p.m.backendErrs.WithLabelValues("dial").Inc()
		return nil, err
	}
	return c, nil
}

// halfCloser is a connection whose write side can be closed alone.
type halfCloser interface {
	CloseWrite() error
}

// spliceState is shared by the two directions of a splice.
type spliceState struct {
	last atomic.Int64 // unix nanos of the last byte either way
	stop atomic.Bool  // one direction failed: the other must end too
	idle time.Duration
}

// end is one side of a splice: where its bytes are read (a reader that
// may hold bytes already buffered), where they are written, and the
// connection, for deadlines and half-close.
type end struct {
	r io.Reader
	w io.Writer
	c net.Conn
}

// splice copies client→back and back→client until both directions end,
// or neither carries a byte for idle. It closes neither connection; the
// callers do.
func splice(client, back end, idle time.Duration) {
	st := &spliceState{idle: idle}
	st.last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		defer close(done)
		direction(st, back, client)
	}()
	direction(st, client, back)
	<-done
}

// direction runs one half of a splice: src to dst.
func direction(st *spliceState, dst, src end) {
	if err := pump(st, dst, src); err == nil {
		// The source finished sending: pass the half-close on. The
		// other direction goes on until it ends or idles out.
		if hc, ok := dst.c.(halfCloser); ok && hc.CloseWrite() == nil {
			return
		}
	}
	st.stop.Store(true)
	dst.c.SetReadDeadline(aLongTimeAgo)
	src.c.SetReadDeadline(aLongTimeAgo)
}

// pump copies src to dst until EOF (nil) or an error. The read deadline
// of src and the write deadline of dst implement the idle timeout: a read
// that times out while the other direction was recently active is
// retried.
func pump(st *spliceState, dst, src end) error {
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	idle := int64(st.idle)
	var deadlineSet int64
	now := time.Now().UnixNano()
	for {
		// One clock read per read: it both marks activity and decides
		// whether the deadlines need moving.
		if now-deadlineSet > idle/4 {
			d := time.Unix(0, now+idle)
			src.c.SetReadDeadline(d)
			dst.c.SetWriteDeadline(d)
			deadlineSet = now
		}
		n, err := src.r.Read(buf)
		now = time.Now().UnixNano()
		if n > 0 {
			st.last.Store(now)
			if _, werr := dst.w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !st.stop.Load() {
				if l := st.last.Load(); now-l < idle {
					// The other direction is active: keep waiting.
					deadlineSet = 0
					continue
				}
			}
			return err
		}
	}
}
