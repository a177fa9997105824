package shard

import (
	"runtime"
	"testing"
)

// checkDataPath checks that every server has a connection (per protocol)
// for each event loop, owned by its loop.
func checkDataPath(t testing.TB, px *Proxy, cfg Config) {
	t.Helper()
	lpp, ok := px.path.(*loopPath)
	if !ok {
		t.Fatalf("data path %T, want event loops", px.path)
	}
	want := cfg.EventLoops
	if want < 1 {
		want = runtime.GOMAXPROCS(0)
	}
	if len(lpp.loops) != want {
		t.Fatalf("%d event loops, want %d", len(lpp.loops), want)
	}
	for _, p := range px.pools() {
		for _, s := range p.servers {
			loops := map[*loop]bool{}
			for _, c := range s.cs[:s.n2] {
				loops[c.lp] = true
			}
			if loops[nil] || len(loops) != want {
				t.Fatalf("server %s: connections in %d event loops, want %d", s.cfg.Name, len(loops), want)
			}
		}
	}
}
