package shard

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

// BenchmarkRedisGET measures the proxy's hot path (parse, route, batch,
// reply) against two real redis-servers: parallel clients, one GET at a
// time each. Speed comparisons with nutcracker live in bench/shard.sh.
func BenchmarkRedisGET(b *testing.B) {
	a, c := testdeps.StartRedis(b), testdeps.StartRedis(b)
	if a == "" {
		return
	}
	r := startB(b, redisConfig(a, c))
	addr := r.addr("")
	var id atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		rd := resp.NewReader(nc, 4096, resp.DefaultLimits)
		req := cmd("GET", fmt.Sprintf("bench:%d", id.Add(1)))
		for pb.Next() {
			if _, err := nc.Write(req); err != nil {
				b.Error(err)
				return
			}
			if _, err := rd.ReadReply(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
