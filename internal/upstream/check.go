package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// Checker checks one endpoint; addr is its HOST:PORT. A nil error is a
// pass. The context carries the check's timeout.
type Checker interface {
	Check(ctx context.Context, addr string) error
}

// CheckFunc is a function that implements Checker.
type CheckFunc func(ctx context.Context, addr string) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context, addr string) error { return f(ctx, addr) }

var _ Checker = CheckFunc(nil)

// TCPCheck passes when a TCP connection to the endpoint opens. dial nil
// means a net.Dialer.
func TCPCheck(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Checker {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return CheckFunc(func(ctx context.Context, addr string) error {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// HTTPCheckConfig configures HTTPCheck.
type HTTPCheckConfig struct {
	// Path is requested with GET (default "/").
	Path string
	// Host is the Host header ("" means the endpoint's address).
	Host string
	// Lo and Hi bound the passing status codes (default 200 and 399; Hi 0
	// alone means 399, or Lo when Lo is above 399).
	Lo, Hi int
	// Dial opens the connection to the endpoint (nil: a net.Dialer). For
	// TLS, give a dial that returns a handshaken *tls.Conn (as
	// tlsconf.Client.Dial does): the check then speaks HTTP inside it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, if set and Dial is nil, makes the check speak HTTPS with this
	// configuration.
	TLS *tls.Config
	// Transport, if set, sends the request instead (Dial and TLS are then
	// unused); its requests go to http://ADDR/PATH, or https:// with TLS.
	Transport http.RoundTripper
}

// HTTPCheck passes when GET Path on the endpoint answers a status within
// [Lo, Hi]. Every check opens a new connection, so a check also proves that
// the endpoint accepts connections.
func HTTPCheck(c HTTPCheckConfig) Checker {
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Path[0] != '/' {
		c.Path = "/" + c.Path
	}
	if c.Lo == 0 {
		c.Lo = 200
	}
	if c.Hi == 0 {
		c.Hi = max(c.Lo, 399)
	}
	scheme := "http"
	rt := c.Transport
	if c.TLS != nil && c.Dial == nil {
		scheme = "https"
	}
	if rt == nil {
		dial := c.Dial
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		rt = &http.Transport{
			DialContext:       dial,
			TLSClientConfig:   c.TLS,
			DisableKeepAlives: true,
		}
	}
	client := &http.Client{
		Transport: rt,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return CheckFunc(func(ctx context.Context, addr string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+c.Path, nil)
		if err != nil {
			return fmt.Errorf("health check request: %w", err)
		}
		if c.Host != "" {
			req.Host = c.Host
		}
		req.Header.Set("User-Agent", "podkit-health-check")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < c.Lo || resp.StatusCode > c.Hi {
			return fmt.Errorf("GET %s: status %d, want %d-%d", c.Path, resp.StatusCode, c.Lo, c.Hi)
		}
		return nil
	})
}

// startCheckLocked starts e's check loop if Run runs and checks are on.
func (p *Pool) startCheckLocked(e *Endpoint) {
	if p.cfg.Check.Checker == nil || p.runCtx == nil || e.stopCheck != nil || p.closed {
		return
	}
	ctx, cancel := context.WithCancel(p.runCtx)
	e.stopCheck = cancel
	p.checks.Add(1)
	go func() {
		defer p.checks.Done()
		p.checkLoop(ctx, e)
	}()
}

func (p *Pool) stopCheckLocked(e *Endpoint) {
	if e.stopCheck != nil {
		e.stopCheck()
		e.stopCheck = nil
	}
}

func jitter(d time.Duration) time.Duration {
	span := int64(d) / 5 // ±10%
	if span <= 0 {
		return d
	}
	return d - time.Duration(span/2) + time.Duration(rand.Int64N(span+1))
}

func (p *Pool) checkLoop(ctx context.Context, e *Endpoint) {
	var t *time.Timer
	for {
		cctx, cancel := context.WithTimeout(ctx, p.cfg.Check.Timeout)
		err := p.cfg.Check.Checker.Check(cctx, e.addr)
		if err != nil && cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %v: %w", p.cfg.Check.Timeout, err)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.observe(e, err)
		d := jitter(p.cfg.Check.Interval)
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d)
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// observe applies one check result to e's rise/fall counters.
func (p *Pool) observe(e *Endpoint, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.removed.Load() || p.closed {
		return
	}
	if err == nil {
		e.fails = 0
		e.passes++
		e.lastCheckErr = ""
		if !e.healthy.Load() && e.passes >= p.cfg.Check.Rise {
			e.healthy.Store(true)
			p.transitionLocked(e, "healthy", nil)
		}
		return
	}
	e.passes = 0
	e.fails++
	e.lastCheckErr = err.Error()
	if e.healthy.Load() && e.fails >= p.cfg.Check.Fall {
		e.healthy.Store(false)
		p.transitionLocked(e, "unhealthy", err)
	}
}

func (p *Pool) transitionLocked(e *Endpoint, to string, err error) {
	if p.m != nil {
		p.m.transitions.WithLabelValues(p.name, e.addr, to).Inc()
	}
	if err != nil {
		p.log.Warn("endpoint unhealthy", "endpoint", e.addr, "failed_checks", e.fails, "error", err)
	} else {
		p.log.Info("endpoint healthy", "endpoint", e.addr, "passed_checks", e.passes)
	}
	p.rebuildLocked()
}
