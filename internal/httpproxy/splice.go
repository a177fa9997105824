package httpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
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

// End is one side of a Splice: where its bytes are read (R, a reader that
// may hold bytes already buffered), where they are written (W), and the
// connection (C), for deadlines and half-close.
type End struct {
	R io.Reader
	W io.Writer
	C net.Conn
}

// Splice copies client→back and back→client until both directions end,
// or neither carries a byte for idle. A direction whose source ends passes
// the half-close on (CloseWrite) when its destination can; an error in
// either direction ends both. It closes neither connection; the callers
// do. The engine uses it for upgraded connections; a layer-4 tunnel
// (tls-proxy's tcp mode) uses it too.
func Splice(client, back End, idle time.Duration) {
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
func direction(st *spliceState, dst, src End) {
	if err := pump(st, dst, src); err == nil {
		// The source finished sending: pass the half-close on. The
		// other direction goes on until it ends or idles out.
		if hc, ok := dst.C.(halfCloser); ok && hc.CloseWrite() == nil {
			return
		}
	}
	st.stop.Store(true)
	dst.C.SetReadDeadline(aLongTimeAgo)
	src.C.SetReadDeadline(aLongTimeAgo)
}

// pump copies src to dst until EOF (nil) or an error. The read deadline
// of src and the write deadline of dst implement the idle timeout: a read
// that times out while the other direction was recently active is
// retried.
func pump(st *spliceState, dst, src End) error {
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
			src.C.SetReadDeadline(d)
			dst.C.SetWriteDeadline(d)
			deadlineSet = now
		}
		n, err := src.R.Read(buf)
		now = time.Now().UnixNano()
		if n > 0 {
			st.last.Store(now)
			if _, werr := dst.W.Write(buf[:n]); werr != nil {
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

// aLongTimeAgo is a deadline in the past, to wake blocked reads.
var aLongTimeAgo = time.Unix(1, 0)
