package shard

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container/containertest"
	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

// running is a Proxy hosted by container.Run for a test.
type running struct {
	px    *Proxy
	admin string
	logs  fmt.Stringer
	// stop stops the proxy and waits for Run to return (at the latest
	// when the test ends).
	stop func()
}

// start runs a Proxy for cfg until the test ends.
func start(t *testing.T, cfg Config) *running { return startB(t, cfg) }

// startB is start for tests and benchmarks.
func startB(t testing.TB, cfg Config) *running {
	t.Helper()
	if cfg.StatsAddr == "off" {
		// Tests read the stats; they run side by side, each on its own port.
		cfg.StatsAddr, cfg.StatsPort = "127.0.0.1", 0
	}
	px, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := containertest.Host(t, px)
	testdeps.WaitFor(t, "the proxy to listen", func() bool {
		h.Exited()
		return len(px.pools()) > 0 && px.PoolAddr(px.pools()[0].cfg.Name) != nil
	})
	checkDataPath(t, px, cfg)
	return &running{px: px, admin: h.Admin, logs: h.Logs, stop: h.Stop}
}

// addr is the listen address of pool name ("" for the first pool).
func (r *running) addr(name string) string {
	if name == "" {
		name = r.px.pools()[0].cfg.Name
	}
	return r.px.PoolAddr(name).String()
}

// redisConn is a minimal RESP client for tests.
type redisConn struct {
	t  testing.TB
	nc net.Conn
	rd *resp.Reader
}

func dialRedis(t testing.TB, addr string) *redisConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &redisConn{t: t, nc: nc, rd: resp.NewReader(nc, 4096, resp.DefaultLimits)}
}

func cmd(args ...string) []byte {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	return resp.AppendCommand(nil, bs...)
}

// do sends one command and returns its raw reply.
func (c *redisConn) do(args ...string) string {
	c.t.Helper()
	c.send(cmd(args...))
	return c.read()
}

func (c *redisConn) send(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *redisConn) read() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	raw, err := c.rd.ReadReply()
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return string(raw)
}

// tryRead is read that returns the error instead of failing.
func (c *redisConn) tryRead() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	raw, err := c.rd.ReadReply()
	return string(raw), err
}

func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// keysOn returns the keys with prefix stored on a server (read directly).
func keysOn(t testing.TB, addr, prefix string) map[string]bool {
	t.Helper()
	c := dialRedis(t, addr)
	elems, ok := resp.ArrayElems([]byte(c.do("KEYS", prefix+"*")), nil)
	if !ok {
		t.Fatalf("KEYS on %s failed", addr)
	}
	out := map[string]bool{}
	for _, e := range elems {
		s := string(e)
		out[s[strings.Index(s, "\r\n")+2:len(s)-2]] = true
	}
	return out
}

var _ = io.EOF

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
