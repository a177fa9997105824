package upstream

import (
	"testing"

	"github.com/podkit/podkit/discovery"
)

// BenchmarkAcquireRelease is the per-connection cost of each policy over
// 8 endpoints of mixed weights, from parallel goroutines.
func BenchmarkAcquireRelease(b *testing.B) {
	var eps []discovery.Endpoint
	for i := range 8 {
		eps = append(eps, discovery.Endpoint{Host: "10.0.0.1", Port: 1000 + i, Weight: 1 + i%3, Ready: true, Serving: true})
	}
	for _, policy := range Policies {
		b.Run(string(policy), func(b *testing.B) {
			w := discovery.StartWatch(b.Context(), pushed{}, discovery.WatchOptions{Logger: quiet()})
			w.Update(discovery.Set{Endpoints: eps})
			p, err := New(Config{Policy: policy, Logger: quiet(), Metrics: NewMetrics("bench"),
				Limits:  Limits{MaxConnections: 1 << 20},
				Outlier: OutlierConfig{ConsecutiveFailures: 5}}, w)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var k uint64
				for pb.Next() {
					k++
					e, err := p.Acquire(Hint{Key: k * 0x9e3779b97f4a7c15, HasKey: true})
					if err != nil {
						b.Error(err)
						return
					}
					p.Release(e, Conn, OK)
				}
			})
		})
	}
}
