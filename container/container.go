// Package container is the single-container contract every podkit component
// runs in. container.Run hosts a Component and gives it, without the
// component writing any of it:
//
//   - an admin listener (--admin-addr, loopback by default) with /livez,
//     /readyz, /healthz, /metrics, /info, /lifecycle (Server-Sent Events),
//     and the loopback-only POST /pause, /resume and /quitquitquit;
//   - dependency checks run in the background and cached, so a probe never
//     blocks on a dependency;
//   - graceful stop on SIGTERM, SIGINT or /quitquitquit: readiness turns 503
//     at once, the host waits --drain-delay for endpoints to notice, then
//     cancels the component's context (stop accepting) and gives it
//     --drain-timeout to finish in-flight work; a second signal exits at once;
//   - start and stop ordering: --wait-for holds readiness until the main
//     container answers, --exit-when-done stops the component when the main
//     container's process ends or a file appears;
//   - structured logging with log/slog, JSON by default, text on a terminal.
package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/podkit/podkit/internal/probe"
)

// Component is a podkit component hosted by Run.
//
// Run serves until ctx ends, then stops accepting new work and finishes the
// work in flight before h.DrainContext() ends, and returns. A component
// reports that it is ready for traffic with h.SetReady(true). Returning on
// its own (before ctx ends) stops the process: a nil error exits 0, an error
// with an ExitCode method exits with that code, any other error exits 1.
type Component interface {
	Name() string
	Run(ctx context.Context, h *Host) error
}

// Configured is implemented by components that expose their effective
// configuration on GET /info. Secrets must be typed Secret (or redacted
// with RedactURL) so they never appear there.
type Configured interface {
	EffectiveConfig() any
}

// Run hosts c under the container contract until it stops, and returns the
// error that decides the exit status (nil: exit 0). Cancelling ctx has the
// same effect as SIGTERM.
func Run(ctx context.Context, c Component, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	targets, _ := probe.ParseAll(opts.WaitFor) // validated above
	logger := opts.Logger
	if logger == nil {
		out := opts.LogOutput
		if out == nil {
			out = os.Stdout
		}
		var err error
		if logger, err = NewLogger(out, opts.LogFormat, opts.LogLevel); err != nil {
			return err
		}
	}
	logger = logger.With("component", c.Name()).With(opts.LogAttrs...)
	h := newHost(c, opts, logger)

	admin, err := h.startAdmin(opts)
	if err != nil {
		return err
	}

	// Stop requests: signals, /quitquitquit, ctx, --exit-when-done.
	var sigs chan os.Signal
	if opts.HandleSignals {
		sigs = make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigs)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	// The wait ends with the first stop request: a --wait-timeout that
	// expires during a stop asked for by a signal does not turn it into a
	// failure.
	waitCtx, stopWait := context.WithCancel(watchCtx)
	defer stopWait()
	if len(targets) > 0 {
		go h.awaitTargets(waitCtx, targets, opts.WaitTimeout)
	} else {
		h.markAwaited()
	}
	if opts.ExitWhenDone != "" {
		go h.watchMain(watchCtx, opts.ExitWhenDone)
	}
	h.checks.start(watchCtx)

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("%s: panic: %v", c.Name(), p)
			}
		}()
		done <- c.Run(runCtx, h)
	}()
	logger.Info("started", "admin_addr", admin.addr())

	var (
		runErr  error
		stopped bool
		reason  string
		sig     os.Signal
	)
	select {
	case runErr = <-done:
		stopped = true
	case sig = <-sigs:
		reason = "signal " + sig.String()
	case reason = <-h.stopReq:
	case <-ctx.Done():
		reason = "context ended"
	}
	stopWait()

	if !stopped {
		runErr, err = h.drain(reason, sig, sigs, cancelRun, done)
		if err != nil {
			// Forced: a second signal, or a component that would not stop.
			h.finish(admin)
			return err
		}
	}
	h.finish(admin)
	if werr := h.waitErr.Load(); werr != nil {
		// The component never had what it waited for: whatever it
		// returned, the start failed (a Job must not succeed).
		return werr
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		var ec interface{ ExitCode() int }
		if errors.As(runErr, &ec) && ec.ExitCode() == 0 {
			return nil
		}
		return runErr
	}
	return nil
}

// drain runs the graceful stop. It returns the component's error, or a
// non-nil second error when the stop was forced.
func (h *Host) drain(reason string, sig os.Signal, sigs <-chan os.Signal, cancelRun context.CancelFunc, done <-chan error) (error, error) {
	o := h.opts
	deadline := time.Now().Add(o.DrainDelay + o.DrainTimeout)
	h.stopSignal.Store(&sigHolder{sig})
	h.setDraining(deadline)
	h.log.Info("draining", "reason", reason, "drain_delay", o.DrainDelay.String(), "drain_timeout", o.DrainTimeout.String(), "deadline", deadline.UTC().Format(time.RFC3339Nano))

	forced := func(s os.Signal) error {
		h.log.Warn("second signal: exiting now", "signal", s.String())
		h.drainCancel()
		cancelRun()
		code := 1
		if ss, ok := s.(syscall.Signal); ok {
			code = 128 + int(ss)
		}
		return &ExitError{Code: code, Msg: "stopped by a second signal (" + s.String() + ") before draining finished"}
	}

	// 1. Let endpoints notice that we are no longer ready (unless readiness
	// was held by --wait-for all along: no endpoint ever had us).
	if o.DrainDelay > 0 && h.waitErr.Load() == nil {
		t := time.NewTimer(o.DrainDelay)
		select {
		case <-t.C:
		case s := <-sigs:
			t.Stop()
			return nil, forced(s)
		case err := <-done:
			t.Stop()
			return err, nil
		}
	}
	// 2. Stop accepting; drain in flight until the deadline.
	drainTimer := time.AfterFunc(o.DrainTimeout, h.drainCancel)
	defer drainTimer.Stop()
	cancelRun()
	const grace = 2 * time.Second
	var graceC <-chan time.Time
	for {
		select {
		case err := <-done:
			return err, nil
		case s := <-sigs:
			return nil, forced(s)
		case <-h.drainCtx.Done():
			if graceC == nil {
				h.log.Warn("drain timeout reached; closing what is still open", "drain_timeout", o.DrainTimeout.String())
				graceC = time.After(grace)
			}
		case <-graceC:
			return nil, &ExitError{Code: 1, Msg: fmt.Sprintf("component did not stop within --drain-timeout (%s) + %s", o.DrainTimeout, grace)}
		}
	}
}

// finish announces the stop and closes the admin listener.
func (h *Host) finish(admin *adminServer) {
	h.stopReloadSignals()
	h.setStopping()
	h.drainCancel()
	admin.close()
	h.log.Info("stopped")
}

// ExitError stops the process with a given exit status.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// ExitCode implements the exit-status contract of internal/cli.
func (e *ExitError) ExitCode() int { return e.Code }

type sigHolder struct{ sig os.Signal }

// requestStop asks Run to begin a graceful stop (at most once).
func (h *Host) requestStop(reason string) {
	h.stopOnce.Do(func() { h.stopReq <- reason })
}

func (h *Host) watchMain(ctx context.Context, target string) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if mainDone(target) {
			h.log.Info("main container finished", "exit_when_done", target)
			h.requestStop("--exit-when-done " + target + " finished")
			return
		}
	}
}

func (h *Host) awaitTargets(ctx context.Context, targets []probe.Target, timeout time.Duration) {
	stopping := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var mu sync.Mutex
	last := map[string]time.Time{}
	err := probe.Wait(ctx, targets, 250*time.Millisecond, func(t probe.Target, err error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last[t.String()]) > 5*time.Second {
			last[t.String()] = time.Now()
			h.log.Info("waiting for dependency", "target", t.String(), "error", err.Error())
		}
	})
	if err != nil {
		if timeout > 0 && errors.Is(err, context.DeadlineExceeded) && stopping.Err() == nil {
			msg := fmt.Sprintf("--wait-timeout %s expired: %v", timeout, err)
			h.log.Error("--wait-for targets did not answer in time; stopping", "wait_timeout", timeout.String(), "error", err.Error())
			h.waitErr.Store(&ExitError{Code: 1, Msg: msg})
			h.requestStop("--wait-timeout expired")
		}
		return
	}
	h.log.Info("dependencies answered", "targets", len(targets))
	h.markAwaited()
}

// mainDone reports whether the main container's process (a PID) has exited,
// or the marker file exists.
func mainDone(target string) bool {
	if pid, ok := parsePID(target); ok {
		err := syscall.Kill(pid, 0)
		return errors.Is(err, syscall.ESRCH)
	}
	_, err := os.Stat(target)
	return err == nil
}
