package tlsproxy

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/podkit/podkit/internal/httpproxy"
	"github.com/podkit/podkit/internal/rawsock"
)

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
	httpproxy.Splice(httpproxy.End{R: tc, W: tc, C: tc}, httpproxy.End{R: bs, W: bs, C: back}, p.cfg.IdleTimeout)
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
