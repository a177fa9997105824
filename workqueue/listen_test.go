package workqueue_test

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue"
)

// TestListener: a coordinator given Config.Listener serves on it (not on
// Listen), and Addr reports its bound address once Run listens.
func TestListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := workqueue.DefaultConfig()
	cfg.Listen = "256.0.0.1:bad" // not used, not checked
	cfg.Listener = ln
	cfg.DataDir = t.TempDir()
	c, err := workqueue.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Addr(); a != nil {
		t.Fatalf("Addr before Run = %v, want nil", a)
	}
	ctx, stop := context.WithCancel(context.Background())
	opts := container.DefaultOptions()
	opts.AdminAddr, opts.DrainDelay = "off", 0
	opts.Logger = quietLog()
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, c, opts) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testdeps.WaitFor(t, "the coordinator to listen", func() bool { return c.Addr() != nil })
	if got, want := c.Addr().String(), ln.Addr().String(); got != want {
		t.Fatalf("Addr = %s, want the listener's %s", got, want)
	}
	resp, err := http.Get("http://" + c.Addr().String() + "/queues")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /queues on the given listener: %s", resp.Status)
	}
}
