package demo

import (
	"context"

	"github.com/podkit/podkit/adapter/health"
)

// startHealth runs `podkit health` against a demo redis-server: /readyz
// is the database's readiness, as a probe would read it.
func startHealth(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	addr, err := startDemoRedis(ctx, d)
	if err != nil {
		return notStarted(ctx, "health", "not started: needs redis-server (apt-get install redis-server)")
	}
	ln, err := d.listen()
	if err != nil {
		return nil, nil, err
	}
	cfg := health.DefaultConfig()
	cfg.Listener = ln
	cfg.Listen = ln.Addr().String()
	cfg.Redis = addr
	cfg.Expect = "PONG"
	a, err := health.New(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, a)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	base := "http://" + ln.Addr().String()
	return []Endpoint{
		{"health", "redis-server's health for probes (also /livez, /startupz, ?lag=10s)", base + "/readyz?verbose"},
		{"health", "admin endpoints and podkit_health_* metrics", admin + "/metrics"},
		{"redis", "redis-server checked by podkit health", "redis://" + addr},
	}, errc, nil
}
