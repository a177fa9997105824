package container_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/container"
)

// greeter answers with a greeting read from a file, and reloads it.
type greeter struct {
	greeting atomic.Pointer[string]
	reloader *container.Reloader[string]
	started  chan struct{}
}

func newGreeter(file string) (*greeter, error) {
	g := &greeter{started: make(chan struct{})}
	// Made before the first load, so that a change during it is seen.
	g.reloader = container.NewReloader(container.Reload[string]{
		Subsystem: "greeter", // podkit_greeter_reloads_total
		What:      "greeting",
		Files:     func() []string { return []string{file} },
		Interval:  time.Second,
		// Load reads and validates; nothing is swapped in yet.
		Load: func(context.Context) (string, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", err
			}
			s := strings.TrimSpace(string(b))
			if s == "" {
				return "", errors.New("empty greeting")
			}
			return s, nil
		},
		// Apply swaps a validated version in.
		Apply: func(s string) error { g.greeting.Store(&s); return nil },
	})
	first, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(first))
	g.greeting.Store(&s)
	return g, nil
}

func (g *greeter) Name() string { return "greeter" }

func (g *greeter) Run(ctx context.Context, h *container.Host) error {
	// SIGHUP and file changes reload from here on.
	reloads, err := g.reloader.Start(ctx, h)
	if err != nil {
		return err
	}
	h.SetReady(true)
	close(g.started)
	<-ctx.Done()
	<-reloads
	return nil
}

// A Reloader reloads on SIGHUP, when the files change and when asked:
// the new version is validated before it is swapped in, and a bad one is
// refused while the running one stays.
func ExampleReloader() {
	file := filepath.Join(os.TempDir(), fmt.Sprintf("greeting-%d", os.Getpid()))
	defer os.Remove(file)
	os.WriteFile(file, []byte("hello\n"), 0o644)
	g, _ := newGreeter(file)

	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, g, opts) }()
	<-g.started

	os.WriteFile(file, []byte("bonjour\n"), 0o644)
	fmt.Println(g.reloader.Reload(ctx), *g.greeting.Load())
	os.WriteFile(file, nil, 0o644)
	fmt.Println(g.reloader.Reload(ctx), *g.greeting.Load())

	stop()
	<-done
	// Output:
	// <nil> bonjour
	// empty greeting bonjour
}
