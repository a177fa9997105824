package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/podkit/podkit/adapter/metrics"
	"github.com/podkit/podkit/internal/child"
)

// adapterPeer is a third-party server (nginx, redis-server) the adapter
// demos run as a child on the demo's ports, stopped when ctx ends.
type adapterPeer struct {
	proc *child.Process
}

// startAdapterPeer runs bin with args and waits until addr accepts
// connections.
func startAdapterPeer(ctx context.Context, d *env, addr, bin string, args ...string) (*adapterPeer, error) {
	proc, err := child.Start(exec.Command(bin, args...), child.Options{Group: true})
	if err != nil {
		return nil, err
	}
	p := &adapterPeer{proc: proc}
	d.child(proc.Done())
	go func() {
		select {
		case <-ctx.Done():
			proc.Stop(syscall.SIGTERM, 5*time.Second)
		case <-proc.Done():
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-proc.Done():
			return nil, fmt.Errorf("%s exited before answering on %s", filepath.Base(bin), addr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			proc.Kill()
			return nil, fmt.Errorf("%s did not answer on %s", filepath.Base(bin), addr)
		}
	}
}

// lookPeer finds a server binary in PATH or the usual sbin directories.
func lookPeer(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// notStarted is the endpoint of a demo that lacks its peer, and a channel
// that reports when the demo ends.
func notStarted(ctx context.Context, service, what string) ([]Endpoint, <-chan error, error) {
	ch := make(chan error, 1)
	go func() { <-ctx.Done(); ch <- nil }()
	return []Endpoint{{Service: service, What: what}}, ch, nil
}

// startDemoRedis runs redis-server on the next demo port.
func startDemoRedis(ctx context.Context, d *env) (string, error) {
	bin := lookPeer("redis-server")
	if bin == "" {
		return "", errors.New("redis-server not installed")
	}
	addr := d.port()
	host, port, _ := net.SplitHostPort(addr)
	dir, err := d.tempDir("redis")
	if err != nil {
		return "", err
	}
	if _, err := startAdapterPeer(ctx, d, addr, bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no",
		"--dir", dir, "--slowlog-log-slower-than", "1000"); err != nil {
		return "", err
	}
	return addr, nil
}

const demoNginxConf = `daemon off;
master_process on;
worker_processes 1;
%s
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %s/body;
	proxy_temp_path %s/proxy;
	fastcgi_temp_path %s/fastcgi;
	uwsgi_temp_path %s/uwsgi;
	scgi_temp_path %s/scgi;
	server {
		listen %s;
		location = /stub_status { stub_status; }
		location / { return 200 "hello from nginx\n"; }
	}
}
`

// startDemoNginx runs nginx with stub_status on the next demo port.
func startDemoNginx(ctx context.Context, d *env) (string, error) {
	bin := lookPeer("nginx")
	if bin == "" {
		return "", errors.New("nginx not installed")
	}
	addr := d.port()
	dir, err := d.tempDir("nginx")
	if err != nil {
		return "", err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(demoNginxConf, user, dir, dir, dir, dir, dir, dir, dir, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", err
	}
	if _, err := startAdapterPeer(ctx, d, addr, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path); err != nil {
		return "", err
	}
	return addr, nil
}

// startMetrics runs `podkit metrics` in front of a demo nginx (stub_status)
// and a demo redis-server, whichever are installed.
func startMetrics(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	cfg := metrics.DefaultConfig()
	var eps []Endpoint
	if addr, err := startDemoNginx(ctx, d); err == nil {
		cfg.Nginx = append(cfg.Nginx, "http://"+addr+"/stub_status")
		eps = append(eps, Endpoint{"nginx", "nginx with stub_status, scraped by podkit metrics", "http://" + addr + "/stub_status"})
	}
	if addr, err := startDemoRedis(ctx, d); err == nil {
		cfg.Redis = append(cfg.Redis, addr)
		eps = append(eps, Endpoint{"redis", "redis-server scraped by podkit metrics (INFO, SLOWLOG)", "redis://" + addr})
	}
	if len(cfg.Nginx)+len(cfg.Redis) == 0 {
		return notStarted(ctx, "metrics", "not started: needs nginx or redis-server (apt-get install nginx redis-server)")
	}
	ln, err := d.listen()
	if err != nil {
		return nil, nil, err
	}
	cfg.Listener = ln
	cfg.Listen = ln.Addr().String()
	a, err := metrics.New(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, a)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	eps = append([]Endpoint{
		{"metrics", "nginx_*, redis_* as Prometheus metrics (exporter names)", "http://" + ln.Addr().String() + "/metrics"},
		{"metrics", "admin endpoints (contract)", admin + "/readyz"},
	}, eps...)
	return eps, errc, nil
}
