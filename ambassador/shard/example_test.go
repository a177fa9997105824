package shard_test

import (
	"context"
	"fmt"
	"log"

	"github.com/podkit/podkit/ambassador/shard"
	"github.com/podkit/podkit/container"
)

// A nutcracker.yml is read as is; the server names are what ketama
// hashes, with twemproxy's rule that port 11211 is left out.
func ExampleParse() {
	pools, _, err := shard.Parse([]byte(`
sessions:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  redis: true
  servers:
   - 10.0.0.1:6379:1
   - 10.0.0.2:6379:1 shard-b
cache:
  listen: 127.0.0.1:22122
  hash: md5
  servers:
   - 10.0.0.3:11211:2
`))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range pools {
		fmt.Println(p.Name, p.Protocol, p.Hash, p.Distribution)
		for _, s := range p.Servers {
			fmt.Printf("  %s weight %d, ketama name %q\n", s.Addr, s.Weight, s.Name)
		}
	}
	// Output:
	// sessions redis fnv1a_64 ketama
	//   10.0.0.1:6379 weight 1, ketama name "10.0.0.1:6379"
	//   10.0.0.2:6379 weight 1, ketama name "shard-b"
	// cache memcache md5 ketama
	//   10.0.0.3:11211 weight 2, ketama name "10.0.0.3"
}

// The single-pool form: the application talks to 127.0.0.1:6379 and its
// keys are spread over two Redis servers.
func ExampleNew() {
	cfg := shard.DefaultConfig()
	cfg.Listen = "127.0.0.1:6379"
	cfg.Servers = []string{"redis-0.redis:6379:1", "redis-1.redis:6379:1"}
	cfg.HashTag = "{}"
	px, err := shard.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	// container.Run serves until SIGTERM, with /readyz and /metrics on
	// the admin port.
	if err := container.Run(context.Background(), px, container.DefaultOptions()); err != nil {
		log.Fatal(err)
	}
}
