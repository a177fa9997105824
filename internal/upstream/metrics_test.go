package upstream

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.txt")

// TestMetricsGolden pins the names, help and labels of the pool's metrics
// (testdata/metrics.txt; go test -run MetricsGolden -update rewrites it).
func TestMetricsGolden(t *testing.T) {
	m := NewMetrics("broker")
	reg := prometheus.NewPedanticRegistry()
	for _, c := range m.Collectors() {
		reg.MustRegister(c)
	}
	chk := newFlaky()
	chk.set(2)
	w := pushWatch(t, ep(1, 1, 0, ""), ep(2, 1, 0, ""), ep(3, 1, 0, ""))
	p := newPool(t, Config{Name: "redis", Metrics: m, Limits: Limits{MaxConnections: 1},
		Check:   CheckConfig{Checker: chk, Interval: 20 * time.Millisecond, Fall: 1},
		Outlier: OutlierConfig{ConsecutiveFailures: 1, BaseEjection: time.Hour}}, w)
	run(t, p)
	testWaitUsable(t, p, 2)
	fail(t, p, addr(3), 1, ConnectFailed)
	held, err := p.Acquire(Hint{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Acquire(Hint{}); err == nil {
		t.Fatal("MaxConnections 1 let a second connection in")
	}
	p.RetryAllowed()

	var got bytes.Buffer
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&got, mf); err != nil {
			t.Fatal(err)
		}
	}
	p.Release(held, Conn, OK)
	golden := filepath.Join("testdata", "metrics.txt")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("metrics differ from %s (-update rewrites it):\n%s", golden, got.String())
	}
}
