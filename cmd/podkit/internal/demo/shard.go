package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/podkit/podkit/ambassador/shard"
	"github.com/podkit/podkit/internal/child"
)

// startShard runs two redis-server shards and podkit shard in front of
// them (ketama, fnv1a_64, hash tag "{}"), as twemproxy would shard them.
func startShard(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		ch := make(chan error, 1)
		go func() { <-ctx.Done(); ch <- nil }()
		return []Endpoint{{"shard", "not started: redis-server is not installed (apt-get install redis-server)", "-"}}, ch, nil
	}
	dir, err := d.tempDir("shard")
	if err != nil {
		return nil, nil, err
	}
	var procs []*child.Process
	stopAll := func() {
		for _, p := range procs {
			p.Signal(syscall.SIGTERM)
			p.Wait()
		}
	}
	var servers []string
	for i := range 2 {
		addr := d.port()
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(bin, "--port", port, "--bind", host, "--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", fmt.Sprintf("%s/redis-%d.log", dir, i))
		p, err := child.Start(cmd, child.Options{})
		if err != nil {
			stopAll()
			return nil, nil, fmt.Errorf("redis-server: %w", err)
		}
		procs = append(procs, p)
		servers = append(servers, fmt.Sprintf("%s:1 shard-%c", addr, 'a'+i))
	}
	for _, s := range servers {
		addr, _, _ := strings.Cut(s, ":1 ")
		if err := waitTCP(ctx, addr, 10*time.Second); err != nil {
			stopAll()
			return nil, nil, fmt.Errorf("redis-server on %s: %w", addr, err)
		}
	}
	cfg := shard.DefaultConfig()
	cfg.Listen = d.port()
	cfg.Servers = servers
	cfg.HashTag = "{}"
	px, err := shard.New(cfg)
	if err != nil {
		stopAll()
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, px)
	if err != nil {
		stopAll()
		return nil, nil, err
	}
	out := make(chan error, 1)
	go func() {
		err := <-errc
		stopAll()
		out <- err
	}()
	host, port, _ := net.SplitHostPort(cfg.Listen)
	return []Endpoint{
		{"shard", fmt.Sprintf("Redis sharded over two redis-servers, twemproxy-compatible (redis-cli -h %s -p %s)", host, port), "redis://" + cfg.Listen},
		{"shard", "its metrics: requests, errors, latency per server", admin + "/metrics"},
	}, out, nil
}

// waitTCP waits until addr accepts a connection.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not listening")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
