package containertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// Hosted is a component run by container.Run for a test, with its admin
// listener on a free loopback port and its log kept in memory.
type Hosted struct {
	// Admin is the admin listener's base URL (http://127.0.0.1:PORT).
	Admin string
	// Logs holds the component's log (text, debug level); it is printed
	// when the test fails.
	Logs fmt.Stringer

	t    testing.TB
	done chan error
	err  error
	stop func()
}

// Host runs c under container.Run with no drain delay and a drain timeout
// of 5 s, until the test ends (or Stop). The test fails if c returns an
// error when stopped, or does not stop within 20 s.
func Host(t testing.TB, c container.Component) *Hosted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testdeps.Buffer{}
	h := &Hosted{Admin: "http://" + ln.Addr().String(), Logs: logs, t: t, done: make(chan error, 1)}
	o := container.DefaultOptions()
	o.AdminListener = ln
	o.AdminAddr = ln.Addr().String()
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- container.Run(ctx, c, o) }()
	h.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-h.done:
			h.err = err
			if err != nil {
				t.Errorf("%s stopped with %v", c.Name(), err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop within 20s of its context ending", c.Name())
		}
	})
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", c.Name(), h.Logs.String())
		}
	})
	return h
}

// Stop stops the component and waits for it (at most 20 s).
func (h *Hosted) Stop() { h.stop() }

// Exited fails the test at once if the component has returned on its own
// (use it inside a wait for readiness); it reports false otherwise.
func (h *Hosted) Exited() bool {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.t.Fatalf("the component stopped on its own: %v", err)
		return true
	default:
		return false
	}
}
