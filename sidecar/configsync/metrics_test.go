//go:build linux

package configsync

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/podkit/podkit/internal/testdeps"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestMetricsGolden: the names, help, types and labels of config-sync's
// metrics after a publish, a validation failure and a skip, against
// testdata/metrics.golden (go test -run TestMetricsGolden -update rewrites
// it). Timestamps and durations are normalized.
func TestMetricsGolden(t *testing.T) {
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	testdeps.ReplaceFile(t, src, "ok\n")
	cfg := DefaultConfig()
	cfg.Source, cfg.Dest = src, dest
	cfg.ValidateCmd = "/bin/sh -c 'grep -q ok {}'"
	s, _ := newSyncer(t, cfg)
	ctx := context.Background()
	s.Sync(ctx)
	testdeps.ReplaceFile(t, src, "bad\n")
	s.Sync(ctx)
	s.Sync(ctx)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.m.collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	got := buf.Bytes()
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^(podkit_configsync_last_\w+_timestamp_seconds) \S+$`),
		regexp.MustCompile(`(?m)^(podkit_configsync_sync_duration_seconds_(?:bucket\{le="[^"]+"\}|sum)) \S+$`),
	} {
		got = re.ReplaceAll(got, []byte("$1 X"))
	}
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("/metrics differs from %s (run with -update if intended):\n%s", golden, got)
	}
}
