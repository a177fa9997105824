package shard

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

type mcConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialMC(t *testing.T, addr string) *mcConn {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &mcConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *mcConn) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads exactly len(want) bytes and compares.
func (c *mcConn) expect(want string) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.br, got); err != nil {
		c.t.Fatalf("reading %q: %v (got %q)", want, err, got)
	}
	if string(got) != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

func mcConfig(servers ...string) Config {
	cfg := redisConfig(servers...)
	cfg.Protocol = Memcache
	cfg.Hash = "md5"
	return cfg
}

func TestMemcache(t *testing.T) {
	t.Parallel()
	a, b := testdeps.StartMemcached(t), testdeps.StartMemcached(t)
	if a == "" {
		return
	}
	r := start(t, mcConfig(a, b))
	c := dialMC(t, r.addr(""))
	steps := []struct{ send, want string }{
		{"version\r\n", "VERSION podkit-shard\r\n"},
		{"set a 5 0 3\r\nabc\r\n", "STORED\r\n"},
		{"get a\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n"},
		{"add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"replace a 0 0 1\r\nz\r\n", "STORED\r\n"},
		{"append a 0 0 2\r\n12\r\n", "STORED\r\n"},
		{"prepend a 0 0 2\r\n00\r\n", "STORED\r\n"},
		{"get a\r\n", "VALUE a 0 5\r\n00z12\r\nEND\r\n"},
		{"set n 0 0 1\r\n5\r\n", "STORED\r\n"},
		{"incr n 10\r\n", "15\r\n"},
		{"decr n 3\r\n", "12\r\n"},
		{"touch n 100\r\n", "TOUCHED\r\n"},
		{"delete n\r\n", "DELETED\r\n"},
		{"delete n\r\n", "NOT_FOUND\r\n"},
		{"set q 0 0 1 noreply\r\nq\r\nget q\r\n", "VALUE q 0 1\r\nq\r\nEND\r\n"},
		{"ms m 2 T0\r\nhi\r\n", "HD\r\n"},
		{"mg m v\r\n", "VA 2\r\nhi\r\n"},
		{"mg missing v q\r\nmg m v q\r\nmn\r\n", "VA 2\r\nhi\r\nMN\r\n"},
		{"ma cnt N0 J7 v\r\n", "VA 1\r\n7\r\n"},
		{"md m q\r\nmg m v\r\n", "EN\r\n"},
		{"mn\r\n", "MN\r\n"},
		{"bogus\r\n", "ERROR\r\n"},
		{"set x 0 0 zz\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"stats\r\n", "CLIENT_ERROR podkit shard: 'stats' is not supported: it addresses one server, not the pool\r\n"},
	}
	for _, s := range steps {
		c.send(s.send)
		c.expect(s.want)
	}
	// gets returns a cas unique; cas with it succeeds.
	c.send("gets a\r\n")
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := c.br.ReadString('\n')
	f := strings.Fields(line)
	if len(f) != 5 {
		t.Fatalf("gets: %q", line)
	}
	c.expect("00z12\r\nEND\r\n")
	c.send(fmt.Sprintf("cas a 0 0 1 %s\r\nC\r\n", f[4]))
	c.expect("STORED\r\n")
}

// TestMemcacheMultiGet splits a get over the servers and answers in the
// order of the keys asked.
func TestMemcacheMultiGet(t *testing.T) { testMemcacheMultiGet(t, 1) }

// testMemcacheMultiGet is TestMemcacheMultiGet with loops event loops (the default is 1).
func testMemcacheMultiGet(t *testing.T, loops int) {
	t.Parallel()
	a, b, d := testdeps.StartMemcached(t), testdeps.StartMemcached(t), testdeps.StartMemcached(t)
	if a == "" {
		return
	}
	cfg := mcConfig(a, b, d)
	cfg.EventLoops = loops
	r := start(t, cfg)
	c := dialMC(t, r.addr(""))
	var get, want strings.Builder
	get.WriteString("get")
	servers := map[*server]bool{}
	for i := range 50 {
		k := fmt.Sprintf("mk%d", i)
		c.send(fmt.Sprintf("set %s %d 0 %d\r\n%s\r\n", k, i, len(k), k))
		c.expect("STORED\r\n")
		get.WriteString(" " + k)
		if i == 25 {
			get.WriteString(" absent")
		}
		fmt.Fprintf(&want, "VALUE %s %d %d\r\n%s\r\n", k, i, len(k), k)
		servers[r.px.pools()[0].pick([]byte(k))] = true
	}
	if len(servers) != 3 {
		t.Fatalf("keys on %d servers, want 3", len(servers))
	}
	c.send(get.String() + "\r\n")
	c.expect(want.String() + "END\r\n")
	// gat touches and returns, split the same way.
	c.send("gat 100" + get.String()[3:] + "\r\n")
	c.expect(want.String() + "END\r\n")
}

func TestMemcacheBadData(t *testing.T) {
	t.Parallel()
	a := testdeps.StartMemcached(t)
	if a == "" {
		return
	}
	cfg := mcConfig(a)
	cfg.MaxBulk = 100
	r := start(t, cfg)
	c := dialMC(t, r.addr(""))
	c.send("set k 0 0 2\r\nabcd\r\n")
	c.expect("CLIENT_ERROR bad data chunk\r\n")
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("connection open after a bad data chunk")
	}
	c = dialMC(t, r.addr(""))
	c.send("set k 0 0 1000\r\n")
	c.expect("SERVER_ERROR object too large for cache")
}

// TestMemcacheServerDown: a dead memcached's keys get a SERVER_ERROR
// naming it; the other server's keys are served; with auto_eject_hosts
// the keys move after the failure limit.
func TestMemcacheServerDown(t *testing.T) {
	t.Parallel()
	live := testdeps.StartMemcached(t)
	if live == "" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := mcConfig(live, dead)
	cfg.AutoEject = true
	cfg.FailureLimit = 2
	cfg.RetryTimeout = time.Minute
	r := start(t, cfg)
	c := dialMC(t, r.addr(""))
	var k string
	pl := r.px.pools()[0]
	for i := 0; k == ""; i++ {
		if cand := fmt.Sprintf("mcd%d", i); pl.pick([]byte(cand)).cfg.Addr == dead {
			k = cand
		}
	}
	c.send("get " + k + "\r\n")
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := c.br.ReadString('\n')
	if !strings.HasPrefix(line, "SERVER_ERROR podkit shard: server shard1 ("+dead+"): cannot connect") {
		t.Fatalf("get on a dead server: %q", line)
	}
	eventually(t, "key moved to the live server", func() string {
		c.send("set " + k + " 0 0 1\r\nx\r\n")
		line, _ := c.br.ReadString('\n')
		if line != "STORED\r\n" {
			return line
		}
		return ""
	})
	c.send("get " + k + "\r\n")
	c.expect("VALUE " + k + " 0 1\r\nx\r\nEND\r\n")
}
