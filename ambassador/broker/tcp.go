package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/internal/httpproxy"
	"github.com/podkit/podkit/internal/upstream"
)

// clientKey is the ring-hash key of a client connection: its IP address.
func clientKey(remote net.Addr) (uint64, bool) {
	if ta, ok := remote.(*net.TCPAddr); ok {
		return upstream.HashKey(ta.IP), true
	}
	return 0, false
}

// serveTCP proxies one client connection of a tcp upstream: an endpoint
// is acquired and dialed; a failed connect moves to the next endpoint
// until every usable one was tried once; then the bytes are spliced
// both ways until both sides are done or the connection idles out.
func (b *Broker) serveTCP(g *gen, c net.Conn) {
	u := g.spec
	active := b.m.active.WithLabelValues(u.Name)
	active.Inc()
	defer active.Dec()
	hint := upstream.Hint{Kind: upstream.Conn}
	if u.Balance == string(upstream.RingHash) {
		hint.Key, hint.HasKey = clientKey(c.RemoteAddr())
	}
	var tried []*upstream.Endpoint
	for {
		hint.Tried = tried
		e, err := g.pool.Acquire(hint)
		if err != nil {
			b.rejectTCP(u.Name, c, err, len(tried))
			return
		}
		if slices.Contains(tried, e) {
			// Every usable endpoint failed to connect once.
			g.pool.Release(e, upstream.Conn, upstream.ClientGone)
			b.logger().Warn("no endpoint accepted the connection; closing the client", "upstream", u.Name, "tried", len(tried), "client", c.RemoteAddr().String())
			return
		}
		done, err := g.pool.StartDial(e)
		if err != nil {
			g.pool.Release(e, upstream.Conn, upstream.ClientGone)
			b.rejectTCP(u.Name, c, err, len(tried))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), u.Timeouts.Connect)
		back, err := g.dial(ctx, "tcp", e.Addr())
		cancel()
		done()
		if err != nil {
			b.m.connectErrors.WithLabelValues(u.Name, e.Addr()).Inc()
			b.logger().Debug("connect failed; trying the next endpoint", "upstream", u.Name, "endpoint", e.Addr(), "error", err)
			g.pool.Release(e, upstream.Conn, upstream.ConnectFailed)
			tried = append(tried, e)
			continue
		}
		b.m.connections.WithLabelValues(u.Name, e.Addr()).Inc()
		relay(c, back, u.idle())
		back.Close()
		g.pool.Release(e, upstream.Conn, upstream.OK)
		return
	}
}

// rejectTCP closes a client that no endpoint can take, counting why.
func (b *Broker) rejectTCP(name string, c net.Conn, err error, tried int) {
	reason := reasonNoEndpoint
	if errors.Is(err, upstream.ErrOverloaded) {
		reason = reasonOverloaded
	}
	if tried == 0 || reason == reasonOverloaded {
		b.m.rejected.WithLabelValues(name, reason).Inc()
	}
	b.logger().Debug("connection refused", "upstream", name, "reason", reason, "error", err, "client", c.RemoteAddr().String())
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // the client learns at once, with a reset
	}
}

// relay copies both ways between the client and the endpoint: between
// two TCP sockets with relayTCP (an event loop on Linux, splice(2)
// elsewhere), through the engine's buffers otherwise (TLS towards the
// endpoint).
func relay(client, back net.Conn, idle time.Duration) {
	ct, ok1 := client.(*net.TCPConn)
	bt, ok2 := back.(*net.TCPConn)
	if ok1 && ok2 {
		relayTCP(ct, bt, idle)
		return
	}
	httpproxy.Splice(httpproxy.End{R: client, W: client, C: client}, httpproxy.End{R: back, W: back, C: back}, idle)
}

// spliceTCP copies a→b and b→a with io.Copy's ReadFrom path (splice(2)
// on Linux: the bytes never enter user space) until both directions
// end, or neither carries a byte for idle. A direction whose source
// ends passes the half-close on; an error ends both.
//
// The idle timeout works in windows of idle/2: each direction's read
// deadline is at most idle/2 ahead; a direction that times out goes on
// while either direction moved a byte within idle. A connection silent
// for idle is closed after at most twice that.
func spliceTCP(a, b *net.TCPConn, idle time.Duration) {
	st := &spliceState{idle: idle}
	st.mark()
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.direction(a, b)
	}()
	st.direction(b, a)
	<-done
}

type spliceState struct {
	idle time.Duration
	last atomic.Int64 // unix nanos of the last window in which a byte moved
	stop atomic.Bool
}

func (st *spliceState) mark() { st.last.Store(time.Now().UnixNano()) }

// chunk bounds one ReadFrom, so progress is seen at least that often
// under load.
const chunk = 4 << 20

// direction copies src to dst.
func (st *spliceState) direction(dst, src *net.TCPConn) {
	window := st.idle / 2
	for {
		d := time.Now().Add(window)
		src.SetReadDeadline(d)
		dst.SetWriteDeadline(d)
		n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: chunk})
		if n > 0 {
			st.mark()
		}
		if err == nil && n < chunk {
			// The source ended (EOF): pass the half-close on.
			if dst.CloseWrite() == nil {
				return
			}
			break
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !st.stop.Load() &&
			time.Since(time.Unix(0, st.last.Load())) < st.idle {
			continue
		}
		break
	}
	st.stop.Store(true)
	past := time.Unix(1, 0)
	dst.SetReadDeadline(past)
	src.SetReadDeadline(past)
}
