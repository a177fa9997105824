package broker

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestTCPRedis: real redis-servers behind the tcp mode, used by a RESP
// client and by redis-cli; connections are balanced over both servers.
func TestTCPRedis(t *testing.T) {
	a, b := testdeps.StartRedis(t), testdeps.StartRedis(t)
	if a == "" {
		return
	}
	cfg := flagConfig(static(a, b), TCP)
	cfg.Upstream.HealthCheck.Type = CheckRedis
	r := start(t, cfg)
	addr := r.addr("up")
	ctx := context.Background()
	for i := range 10 {
		c, err := resp.Dial(ctx, "tcp", addr, resp.DialOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("k%d", i)
		if v, err := c.Do(ctx, "SET", key, "v"+key); err != nil || v.Str != "OK" {
			t.Fatalf("SET through the broker = %v, %v", v, err)
		}
		if v, err := c.Do(ctx, "GET", key); err != nil || v.Str != "v"+key {
			t.Fatalf("GET through the broker = %v, %v", v, err)
		}
		c.Close()
	}
	testdeps.WaitFor(t, "both connections counted", func() bool {
		return r.counter("connections", "up", a) == 5 && r.counter("connections", "up", b) == 5
	})

	cli := testdeps.Binary(t, "redis-cli")
	if cli == "" {
		return
	}
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(cli, "-h", host, "-p", port, "PING").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Fatalf("redis-cli PING through the broker = %q, %v", out, err)
	}
	out, err = exec.Command(cli, "-h", host, "-p", port, "--raw", "INFO", "server").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "redis_version") {
		t.Fatalf("redis-cli INFO through the broker = %q, %v", out, err)
	}
}

// TestTCPHalfClose: a client that closes its sending side still gets
// the whole answer, and the server sees the end of the request.
func TestTCPHalfClose(t *testing.T) {
	srv := testdeps.ServeTCP(t, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the client's half-close
		fmt.Fprintf(c, "got %d bytes", len(b))
		c.(*net.TCPConn).CloseWrite()
	})
	r := start(t, flagConfig(static(srv.Addr()), TCP))
	c, err := net.Dial("tcp", r.addr("up"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(strings.Repeat("x", 100000)))
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got 100000 bytes" {
		t.Fatalf("answer %q, %v", got, err)
	}
}

// TestTCPIdleTimeout: a connection with no byte either way is closed.
func TestTCPIdleTimeout(t *testing.T) {
	srv := echo(t)
	cfg := flagConfig(static(srv.Addr()), TCP)
	cfg.Upstream.Timeouts.Idle = 300 * time.Millisecond
	r := start(t, cfg)
	c, err := net.Dial("tcp", r.addr("up"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Traffic keeps it open past the idle timeout...
	buf := make([]byte, 1)
	for range 6 {
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("echo through the broker: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ...silence closes it.
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("read %d bytes from an idle connection, want it closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the idle connection was not closed")
	}
}

// TestTCPConnectFailover: a failed connect moves on to the next
// endpoint, so the client never sees a dead endpoint; with every endpoint
// dead the client is closed, and the failures are counted.
func TestTCPConnectFailover(t *testing.T) {
	srv := echo(t)
	dead := deadAddr(t)
	cfg := flagConfig(static(dead, srv.Addr()), TCP)
	cfg.Upstream.HealthCheck.Type = CheckNone
	cfg.Upstream.Outlier.Failures = 0
	r := start(t, cfg)
	for i := range 6 {
		c, err := net.Dial("tcp", r.addr("up"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "ping%d", i)
		buf := make([]byte, 5)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != fmt.Sprintf("ping%d", i) {
			t.Fatalf("connection %d: %q, %v", i, buf, err)
		}
		c.Close()
	}
	if n := r.counter("connect_errors", "up", dead); n < 1 {
		t.Errorf("connect errors to the dead endpoint = %v, want some", n)
	}

	// Every endpoint dead: the client is closed.
	cfg = flagConfig(static(dead, deadAddr(t)), TCP)
	cfg.Upstream.HealthCheck.Type = CheckNone
	cfg.Upstream.Outlier.Failures = 0
	r2 := start(t, cfg)
	c, err := net.Dial("tcp", r2.addr("up"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes, want the connection closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the client was left hanging")
	}
	c.Close()
	testdeps.WaitFor(t, "both connect failures counted", func() bool {
		return r2.counter("connect_errors", "up", dead) == 1
	})
}

// TestTCPMaxConnections: over --max-connections a client is closed at
// once and counted; below it again, connections go through.
func TestTCPMaxConnections(t *testing.T) {
	srv := echo(t)
	cfg := flagConfig(static(srv.Addr()), TCP)
	cfg.Upstream.Limits.MaxConnections = 2
	r := start(t, cfg)
	roundTrip := func(c net.Conn) error {
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", r.addr("up"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := roundTrip(c); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if over, err := net.Dial("tcp", r.addr("up")); err == nil { // the reset may beat the dial's return
		if err := roundTrip(over); err == nil {
			t.Fatal("a connection over the limit went through")
		}
		over.Close()
	}
	if n := r.counter("rejected", "up", reasonOverloaded); n != 1 {
		t.Errorf("rejected{overloaded} = %v, want 1", n)
	}
	held[0].Close()
	testdeps.WaitFor(t, "a connection to go through below the limit", func() bool {
		c, err := net.Dial("tcp", r.addr("up"))
		if err != nil {
			return false
		}
		defer c.Close()
		return roundTrip(c) == nil
	})
}

// TestReadinessNoEndpoint: readiness is 503, naming the upstream and
// why, while no endpoint is usable; it turns 200 once one is.
func TestReadinessNoEndpoint(t *testing.T) {
	dead := deadAddr(t)
	cfg := flagConfig(static(dead), TCP)
	r := start(t, cfg)
	testdeps.WaitFor(t, "the endpoint unhealthy", func() bool {
		e, ok := r.endpoint("up", dead)
		return ok && e.Health == "unhealthy"
	})
	testdeps.WaitFor(t, "readiness 503 naming the upstream", func() bool {
		code, body := r.get("/healthz")
		return code == 503 && strings.Contains(body, `upstream up`) && strings.Contains(body, "no usable endpoint")
	})
	if code, _ := r.get("/readyz"); code != 503 {
		t.Errorf("/readyz = %d, want 503", code)
	}
	// The client is reset at once (the reset may even beat the dial's
	// return).
	if c, err := net.Dial("tcp", r.addr("up")); err == nil {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a connection with no usable endpoint got bytes")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a connection with no usable endpoint was left hanging")
		}
		c.Close()
	}
	testdeps.WaitFor(t, "rejected{no_endpoint} counted", func() bool {
		return r.counter("rejected", "up", reasonNoEndpoint) >= 1
	})
	// The endpoint appears: ready.
	ln, err := net.Listen("tcp", dead)
	if err != nil {
		t.Fatalf("cannot listen on %s again (another process took the port meanwhile?): %v", dead, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	testdeps.WaitFor(t, "readiness 200", func() bool {
		code, _ := r.get("/readyz")
		return code == 200
	})
}

// TestTCPEndpointKilledUnderLoad: redis-servers under a load of new
// connections; one is shut down. Clients see no failure (a failed
// connect moves to the next endpoint); the failed connects to it before
// it is taken out are bounded; after that no connection goes to it. It
// comes back: once it passes its checks it takes connections again.
func TestTCPEndpointKilledUnderLoad(t *testing.T) {
	bin := testdeps.Binary(t, "redis-server")
	if bin == "" {
		return
	}
	a, b := testdeps.StartRedis(t), testdeps.StartRedis(t)
	victim := testdeps.StartRedis(t)
	cfg := flagConfig(static(a, b, victim), TCP)
	cfg.Upstream.HealthCheck.Type = CheckRedis
	// The ejection outlasts the checks' verdict (2 failed checks, 200ms
	// apart), which keeps the endpoint out while it is dead.
	cfg.Upstream.Outlier.Ejection, cfg.Upstream.Outlier.MaxEjection = 2*time.Second, 4*time.Second
	r := start(t, cfg)
	addr := r.addr("up")

	var (
		ok, failed atomic.Int64
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	const workers = 4
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := resp.Dial(ctx, "tcp", addr, resp.DialOptions{Timeout: 10 * time.Second})
				if err == nil {
					var v resp.Value
					v, err = c.Do(ctx, "PING")
					if err == nil && v.Str != "PONG" {
						err = fmt.Errorf("PING: %v", v)
					}
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	testdeps.WaitFor(t, "load on the victim", func() bool { return r.counter("connections", "up", victim) > 20 })

	// Shut the victim down.
	vc, err := resp.Dial(context.Background(), "tcp", victim, resp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vc.Do(context.Background(), "SHUTDOWN", "NOSAVE")
	vc.Close()
	testdeps.WaitFor(t, "the victim taken out", func() bool {
		e, _ := r.endpoint("up", victim)
		return !e.Usable
	})
	before := r.counter("connect_errors", "up", victim)
	conns := r.counter("connections", "up", victim)
	t.Logf("failed connects to the killed endpoint before it was taken out: %v (workers: %d)", before, workers)
	if before > 3*workers {
		t.Errorf("failed connects before the endpoint was taken out = %v, want at most %d", before, 3*workers)
	}
	// More load: nothing goes to it.
	n := ok.Load()
	testdeps.WaitFor(t, "more load on the others", func() bool { return ok.Load() > n+200 })
	if after := r.counter("connect_errors", "up", victim); after != before {
		t.Errorf("connect errors to the dead endpoint went on after it was taken out: %v, then %v", before, after)
	}
	if c := r.counter("connections", "up", victim); c != conns {
		t.Errorf("connections to the dead endpoint: %v, then %v", conns, c)
	}
	// Only connections open on the victim when it was shut down may
	// fail; a failed connect moves on to another endpoint.
	t.Logf("client connections failed: %d (open on the endpoint when it was shut down)", failed.Load())
	if f := failed.Load(); f > workers {
		t.Errorf("%d client connections failed, want at most %d (those open on the endpoint when it died)", f, workers)
	}

	// Back on the same port: used again after passing its checks.
	_, port, _ := net.SplitHostPort(victim)
	testdeps.Start(t, "redis-server (back)", bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	testdeps.WaitFor(t, "the endpoint to take connections again", func() bool {
		return r.counter("connections", "up", victim) > conns+5
	})
	e, _ := r.endpoint("up", victim)
	if e.Health != "healthy" || !e.Usable {
		t.Errorf("the endpoint back: %+v", e)
	}
}

// TestTCPRingHashAndZone: ring-hash on the client address keeps one
// client on one endpoint; with --zone the endpoints of the pod's zone
// take the traffic while one is usable there.
func TestTCPRingHashAndZone(t *testing.T) {
	a, b, c := echo(t), echo(t), echo(t)
	cfg := flagConfig(static(a.Addr(), b.Addr(), c.Addr()), TCP)
	cfg.Upstream.Balance = "ring-hash"
	r := start(t, cfg)
	for range 12 {
		conn, err := net.Dial("tcp", r.addr("up"))
		if err != nil {
			t.Fatal(err)
		}
		echoOnce(conn, "x")
		conn.Close()
	}
	var used []string
	testdeps.WaitFor(t, "12 connections counted", func() bool {
		used = nil
		var n float64
		for _, s := range []string{a.Addr(), b.Addr(), c.Addr()} {
			if v := r.counter("connections", "up", s); v > 0 {
				used = append(used, s)
				n += v
			}
		}
		return n == 12
	})
	if len(used) != 1 {
		t.Errorf("one client's connections went to %v, want one endpoint", used)
	}

	cfg = flagConfig("static:"+a.Addr()+";zone=z1,"+b.Addr()+";zone=z2,"+c.Addr()+";zone=z2", TCP)
	cfg.Upstream.Zone = "z1"
	r2 := start(t, cfg)
	for range 6 {
		conn, err := net.Dial("tcp", r2.addr("up"))
		if err != nil {
			t.Fatal(err)
		}
		echoOnce(conn, "x")
		conn.Close()
	}
	testdeps.WaitFor(t, "6 connections to the own zone's endpoint", func() bool {
		return r2.counter("connections", "up", a.Addr()) == 6
	})
}
