package topz_test

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/sidecar/topz"
)

// TestAddr: Addr is nil before Run listens, then the bound address of the
// listener (Config.Listener when given).
func TestAddr(t *testing.T) {
	for _, given := range []bool{false, true} {
		cfg := topz.DefaultConfig()
		cfg.Proc, cfg.Passwd = "testdata/proc", "testdata/passwd"
		cfg.Listen = "127.0.0.1:0"
		var ln net.Listener
		if given {
			var err error
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			cfg.Listener = ln
		}
		tz, err := topz.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if a := tz.Addr(); a != nil {
			t.Fatalf("Addr before Run = %v, want nil", a)
		}
		opts := container.DefaultOptions()
		opts.AdminAddr, opts.DrainDelay = "off", 0
		opts.Logger = slog.New(slog.DiscardHandler)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- container.Run(ctx, tz, opts) }()
		testdeps.WaitFor(t, "topz to listen", func() bool { return tz.Addr() != nil })
		a := tz.Addr().(*net.TCPAddr)
		if a.Port == 0 || given && a.String() != ln.Addr().String() {
			t.Errorf("given listener %v: Addr = %v, want the bound address", given, a)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}
