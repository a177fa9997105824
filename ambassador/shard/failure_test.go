package shard

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// redisProc is a redis-server the test can stop and start again on the
// same port.
type redisProc struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func newRedisProc(t *testing.T) *redisProc {
	bin := testdeps.Binary(t, "redis-server")
	if bin == "" {
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &redisProc{t: t, bin: bin, port: port, dir: t.TempDir()}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *redisProc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", p.dir)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	testdeps.WaitFor(p.t, "redis on "+p.addr()+" to start", func() bool {
		c, err := net.DialTimeout("tcp", p.addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (p *redisProc) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

// keyOn finds a key that the pool puts on the server at addr.
func keyOn(t *testing.T, r *running, addr string, prefix string) string {
	pl := r.px.pools()[0]
	for i := range 100000 {
		k := fmt.Sprintf("%s%d", prefix, i)
		if pl.pick([]byte(k)).cfg.Addr == addr {
			return k
		}
	}
	t.Fatalf("no key maps to %s", addr)
	return ""
}

// eventually is testdeps.WaitFor for a condition that says what it saw:
// f returns "" once it holds, and its last answer is logged if it never
// does.
func eventually(t *testing.T, what string, f func() string) {
	t.Helper()
	var last string
	defer func() {
		if last != "" {
			t.Logf("%s: last seen: %s", what, last)
		}
	}()
	testdeps.WaitFor(t, what, func() bool {
		last = f()
		return last == ""
	})
}

// TestEjectAndRecover kills a server: with auto_eject_hosts its keys move
// to the live server after server_failure_limit failures, and come back
// after server_retry_timeout once it is up again.
func TestEjectAndRecover(t *testing.T) {
	t.Parallel()
	live, victim := newRedisProc(t), newRedisProc(t)
	if live == nil {
		return
	}
	cfg := redisConfig(live.addr(), victim.addr())
	cfg.AutoEject = true
	cfg.FailureLimit = 2
	cfg.RetryTimeout = 500 * time.Millisecond
	cfg.Timeout = 2 * time.Second
	r := start(t, cfg)
	c := dialRedis(t, r.addr(""))
	k := keyOn(t, r, victim.addr(), "ej:")
	if got := c.do("SET", k, "before"); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	victim.stop()
	// Failures name the server until the limit ejects it.
	got := c.do("GET", k)
	if !strings.HasPrefix(got, "-ERR podkit shard: server shard1 ("+victim.addr()+")") {
		t.Fatalf("GET on a dead server: %q", got)
	}
	eventually(t, "key served by the live server after ejection", func() string {
		if got := c.do("SET", k, "moved"); got != "+OK\r\n" {
			return got
		}
		return ""
	})
	if on := keysOn(t, live.addr(), "ej:"); !on[k] {
		t.Fatalf("key %s not on the live server after ejection", k)
	}
	victim.start()
	eventually(t, "key back on the recovered server", func() string {
		if got := c.do("GET", k); got != "$-1\r\n" { // the recovered server is empty
			return "still " + got
		}
		return ""
	})
	if !strings.Contains(r.logs.String(), "server ejected from the ring") {
		t.Error("no ejection in the log")
	}
}

// TestFailClosed keeps the ring: a dead server's keys get an error naming
// it, other keys are served, and nothing moves.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	live, victim := newRedisProc(t), newRedisProc(t)
	if live == nil {
		return
	}
	cfg := redisConfig(live.addr(), victim.addr())
	cfg.FailClosed = true
	cfg.FailureLimit = 1
	cfg.RetryTimeout = 300 * time.Millisecond
	r := start(t, cfg)
	c := dialRedis(t, r.addr(""))
	dead := keyOn(t, r, victim.addr(), "fc:")
	alive := keyOn(t, r, live.addr(), "fc:")
	victim.stop()
	c.do("GET", dead) // the failure that marks it down
	for range 5 {
		if got := c.do("SET", dead, "x"); !strings.HasPrefix(got, "-ERR podkit shard: server shard1 ("+victim.addr()+")") {
			t.Fatalf("SET on a down server: %q", got)
		}
		if got := c.do("SET", alive, "x"); got != "+OK\r\n" {
			t.Fatalf("SET on the live server: %q", got)
		}
	}
	if keysOn(t, live.addr(), "fc:")[dead] {
		t.Fatal("fail_closed moved a key to another server")
	}
	victim.start()
	eventually(t, "down server back", func() string {
		if got := c.do("SET", dead, "y"); got != "+OK\r\n" {
			return got
		}
		return ""
	})
}

// TestTimeout: a server that accepts and never answers gets an error
// naming it after the pool's timeout.
func TestTimeout(t *testing.T) {
	t.Parallel()
	silent := testdeps.SilentTCP(t)
	cfg := redisConfig(silent)
	cfg.Timeout = 200 * time.Millisecond
	r := start(t, cfg)
	c := dialRedis(t, r.addr(""))
	want := fmt.Sprintf("-ERR podkit shard: server shard0 (%s): timed out after 200ms\r\n", silent)
	if got := c.do("GET", "k"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := c.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("client after a timeout: %q", got)
	}
}
