package demo

import (
	"context"
	"os"
	"path/filepath"

	"github.com/podkit/podkit/sidecar/topz"
)

// startTopz runs topz over the machine's /proc: on a workstation it is not
// in a pod, so it lists every process the demo's user can see (the other
// demo services among them).
func startTopz(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	cfg := topz.DefaultConfig()
	if _, err := os.Stat(filepath.Join(cfg.Proc, "stat")); err != nil {
		done := make(chan error, 1)
		go func() { <-ctx.Done(); done <- nil }()
		return []Endpoint{{"topz", "not started: topz reads " + cfg.Proc + " (Linux): " + err.Error(), "-"}}, done, nil
	}
	ln, err := d.listen()
	if err != nil {
		return nil, nil, err
	}
	cfg.Listener = ln
	t, err := topz.New(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, t)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	base := "http://" + ln.Addr().String()
	return []Endpoint{
		{"topz", "processes visible here, as an HTML page (sort, auto-refresh)", base + "/topz?sort=cpu&refresh=5"},
		{"topz", "the same as JSON; text with curl (Accept: */*)", base + "/topz?format=json&limit=10"},
		{"topz", "admin: podkit_topz_* metrics", admin + "/metrics"},
	}, errc, nil
}
