package broker_test

import (
	"fmt"

	"github.com/podkit/podkit/ambassador/broker"
)

// A YAML file of upstreams: defaults: apply to each, which overrides them.
func ExampleParse() {
	ups, err := broker.Parse([]byte(`
defaults:
  health_check: {type: tcp, interval: 2s}
upstreams:
  - name: redis
    listen: 127.0.0.1:6379
    source: dns:redis:6379
    balance: ring-hash
    health_check: {type: redis}
  - name: api
    listen: 127.0.0.1:8080
    source: static:10.0.0.1:80;zone=a,10.0.0.2:80;zone=b
    mode: http
    zone: a
`), broker.DefaultUpstream())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range ups {
		fmt.Println(u.Name, u.Mode, u.Balance, u.HealthCheck.Type, u.HealthCheck.Interval)
	}
	// Output:
	// redis tcp ring-hash redis 2s
	// api http round-robin tcp 2s
}

// One upstream from flags: podkit broker --listen 127.0.0.1:6379
// --source static:10.0.0.1:6379,10.0.0.2:6379 --health-check redis.
func ExampleNew() {
	cfg := broker.DefaultConfig()
	cfg.Upstream.Listen = "127.0.0.1:6379"
	cfg.Upstream.Source = "static:10.0.0.1:6379,10.0.0.2:6379"
	cfg.Upstream.HealthCheck.Type = broker.CheckRedis
	b, err := broker.New(cfg)
	fmt.Println(b.Name(), err)
	// Run it with container.Run(ctx, b, container.DefaultOptions()).
	// Output: broker <nil>
}
