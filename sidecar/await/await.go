// Package await is the lifecycle sidecar helper for clusters and Jobs
// without native sidecars: it holds a command until the pod's dependencies
// answer, runs it as a child (forwarding the stop signal), and when it
// exits tells the other containers to stop (POST to their /quitquitquit)
// and exits with the command's status, so a Job can complete.
//
// The dependencies are the container contract's --wait-for targets; while
// they have not answered, readiness is 503 and the command has not started.
// Without a command, await only gates readiness on the targets.
//
// The notify POSTs speak podkit's API security as a client: a CA to
// verify an https:// URL, a client certificate, a bearer token
// (--notify-ca, --notify-cert, --notify-key, --notify-token-file).
package await

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/child"
	"github.com/podkit/podkit/internal/retry"
)

// Config configures Await.
type Config struct {
	// Command is the program and its arguments; empty means "no child":
	// await then only holds readiness until the --wait-for targets answer.
	Command []string `json:"command"`
	// Notify URLs are POSTed (empty body) after the command exits.
	Notify []string `json:"notify"`
	// NotifyTimeout bounds each notify attempt (default 5s); each URL is
	// tried up to NotifyAttempts times (default 3).
	NotifyTimeout  time.Duration `json:"notify_timeout"`
	NotifyAttempts int           `json:"notify_attempts"`
	// NotifyClient are the credentials of every notify POST: a CA for
	// https:// URLs, a client certificate, a bearer token.
	NotifyClient container.APIClient `json:"notify_client"`
	// Stdin, Stdout and Stderr are the child's streams (nil: the process's).
	Stdin          io.Reader `json:"-"`
	Stdout, Stderr io.Writer `json:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{NotifyTimeout: 5 * time.Second, NotifyAttempts: 3}
}

// RegisterFlags adds await's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*cli.StringList)(&c.Notify), "notify", "POST to this `URL` when the command exits, e.g. http://127.0.0.1:9901/quitquitquit (repeatable)")
	fs.DurationVar(&c.NotifyTimeout, "notify-timeout", c.NotifyTimeout, "timeout of each --notify attempt")
	fs.IntVar(&c.NotifyAttempts, "notify-attempts", c.NotifyAttempts, "attempts per --notify URL")
	c.NotifyClient.RegisterFlags(fs, "notify-", "each --notify URL")
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	for _, n := range c.Notify {
		if err := cli.CheckHTTPURL("notify", n); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NotifyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--notify-timeout: %s must be positive", c.NotifyTimeout))
	}
	if c.NotifyAttempts < 1 {
		errs = append(errs, fmt.Errorf("--notify-attempts: %d must be at least 1", c.NotifyAttempts))
	}
	if c.NotifyClient.Set() && len(c.Notify) == 0 {
		errs = append(errs, errors.New("--notify-ca, --notify-cert, --notify-key, --notify-token-file: there is no --notify URL to use them with"))
	}
	if err := c.NotifyClient.Validate("notify-"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Await is the component.
type Await struct {
	cfg    Config
	client *http.Client // the notify POSTs'

	runs    prometheus.Gauge
	exitc   prometheus.Gauge
	notifyF *prometheus.CounterVec
}

var _ container.Component = (*Await)(nil)

// New validates cfg and returns an Await.
func New(cfg Config) (*Await, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := cfg.NotifyClient.Client(nil, cfg.NotifyTimeout)
	if err != nil {
		return nil, err
	}
	return &Await{
		cfg:    cfg,
		client: client,
		runs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_await_child_running", Help: "1 while the command runs.",
		}),
		exitc: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_await_child_exit_code", Help: "The command's exit status (-1 until it exits).",
		}),
		notifyF: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_await_notify_total", Help: "Notify POSTs after the command exited, by result.",
		}, []string{"result"}),
	}, nil
}

// Command is the `podkit await` subcommand.
func Command() cli.Command {
	return container.Command("await",
		"hold a command until its dependencies answer, run it, then notify sidecars and exit with its status",
		"[--wait-for tcp://H:P|http(s)://URL ...] [--notify URL ...] [flags] [-- CMD ARGS...]",
		func(fs *flag.FlagSet) container.BuildFunc {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(args []string) (container.Component, error) {
				cfg.Command = args
				return New(cfg)
			}
		})
}

// Name implements container.Component.
func (a *Await) Name() string { return "await" }

// EffectiveConfig implements container.Configured.
func (a *Await) EffectiveConfig() any { return a.cfg }

// Run implements container.Component.
func (a *Await) Run(ctx context.Context, h *container.Host) error {
	a.exitc.Set(-1)
	h.Registerer().MustRegister(a.runs, a.exitc, a.notifyF)
	log := h.Logger()
	if a.cfg.NotifyClient.TokenFile != "" {
		for _, u := range a.cfg.Notify {
			if plaintextRemote(u) {
				log.Warn("the --notify-token-file token is sent in plaintext: use https://", "url", u)
			}
		}
	}
	if err := h.Awaited(ctx); err != nil {
		// The contract decides the exit status (1 when --wait-timeout
		// expired); the sidecars are told to stop either way, so the pod
		// can end.
		log.Info("stopped before the dependencies answered; the command was not started")
		a.notify(h)
		return nil
	}
	if len(a.cfg.Command) == 0 {
		h.SetReady(true)
		<-ctx.Done()
		return nil
	}
	cmd := exec.Command(a.cfg.Command[0], a.cfg.Command[1:]...)
	cmd.Stdin = orReader(a.cfg.Stdin, os.Stdin)
	cmd.Stdout = orWriter(a.cfg.Stdout, os.Stdout)
	cmd.Stderr = orWriter(a.cfg.Stderr, os.Stderr)
	proc, err := child.Start(cmd, child.Options{})
	if err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		a.notify(h)
		return &container.ExitError{Code: code, Msg: fmt.Sprintf("cannot start %q: %v", a.cfg.Command[0], err)}
	}
	a.runs.Set(1)
	log.Info("command started", "pid", proc.Pid(), "argv", a.cfg.Command)
	h.SetReady(true)

	select {
	case <-proc.Done():
	case <-ctx.Done():
		sig, _ := h.StopSignal().(syscall.Signal)
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		log.Info("forwarding stop signal to the command", "signal", sig.String(), "pid", proc.Pid())
		proc.Signal(sig)
		select {
		case <-proc.Done():
		case <-h.DrainContext().Done():
			log.Warn("command did not exit by the drain deadline; killing it", "pid", proc.Pid())
			proc.Kill()
		}
	}
	werr := proc.Wait()
	h.SetReady(false)
	a.runs.Set(0)
	code := child.ExitCode(proc.State(), werr)
	a.exitc.Set(float64(code))
	log.Info("command exited", "exit_code", code, "state", cmd.ProcessState.String())
	a.notify(h)
	if code == 0 {
		return nil
	}
	return &container.ExitError{Code: code}
}

// plaintextRemote reports an http:// URL to another host.
func plaintextRemote(u string) bool {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "http" {
		return false
	}
	port := pu.Port()
	if port == "" {
		port = "80"
	}
	return !container.IsLoopbackAddr(net.JoinHostPort(pu.Hostname(), port))
}

// refused reports the statuses a retry cannot change: the request, or its
// credentials, were refused.
func refused(code int) bool {
	return code == http.StatusBadRequest || code == http.StatusUnauthorized || code == http.StatusForbidden
}

// notify POSTs every --notify URL (empty body, with the --notify-*
// credentials), each up to --notify-attempts times, 200ms after the first
// failure and twice as long after each next one. A 400, 401 or 403 is not
// retried: it is logged with the answer, which names what was missing.
func (a *Await) notify(h *container.Host) {
	for _, u := range a.cfg.Notify {
		req := retry.Request{Client: a.client, URL: u, Header: http.Header{"Content-Type": {"text/plain"}}, Final: refused}
		if n, err := req.Do(context.Background(), retry.Policy{Attempts: a.cfg.NotifyAttempts}); err != nil {
			a.notifyF.WithLabelValues("error").Inc()
			attrs := []any{"url", u, "attempts", n, "error", err}
			var se *retry.StatusError
			if errors.As(err, &se) && len(se.Body) > 0 {
				attrs = append(attrs, "answer", string(se.Body))
			}
			h.Logger().Error("notify failed", attrs...)
			continue
		}
		a.notifyF.WithLabelValues("ok").Inc()
		h.Logger().Info("notified", "url", u)
	}
}

func orReader(r, def io.Reader) io.Reader {
	if r != nil {
		return r
	}
	return def
}

func orWriter(w, def io.Writer) io.Writer {
	if w != nil {
		return w
	}
	return def
}
