// Package demo implements `podkit demo`: everything podkit can do, started
// on loopback with embedded defaults, printed as a table of what runs where,
// and stopped cleanly on Ctrl-C. Each component adds a Service here.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/sidecar/await"
)

// Config configures the demo.
type Config struct {
	Host     string // interface every service listens on
	PortBase int    // first port; services take consecutive ports from here
	Exe      string // the podkit binary, for services that run it as a child
	Log      *slog.Logger
}

// Endpoint is one address a service exposes.
type Endpoint struct {
	Service, What, URL string
}

// service is one demo entry: start runs it until ctx ends.
type service struct {
	name  string
	start func(ctx context.Context, d *env) ([]Endpoint, <-chan error, error)
}

// services is the demo's table; each component adds its entry.
var services = []service{
	{name: "await", start: startAwait},
	{name: "tls-proxy", start: startTLSProxy},
	{name: "config-sync", start: startConfigSync},
	{name: "topz", start: startTopz},
	{name: "shard", start: startShard},
	{name: "broker", start: startBroker},
	{name: "metrics", start: startMetrics},
	{name: "health", start: startHealth},
	{name: "logs", start: startLogs},
	{name: "queue", start: startQueue},
	{name: "elect", start: startElect},
}

type env struct {
	cfg  Config
	mu   sync.Mutex
	next int
	// What Run removes and waits for once every service has stopped: the
	// temporary directories, and the third-party servers run as children
	// (a directory is removed only after the server using it has exited).
	dirs     []string
	children []<-chan struct{}
}

// tempDir makes a temporary directory that Run removes when the demo ends.
func (e *env) tempDir(what string) (string, error) {
	dir, err := os.MkdirTemp("", "podkit-demo-"+what+"-")
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.dirs = append(e.dirs, dir)
	e.mu.Unlock()
	return dir, nil
}

// child registers a child process's exit, which Run waits for before it
// removes the temporary directories.
func (e *env) child(done <-chan struct{}) {
	e.mu.Lock()
	e.children = append(e.children, done)
	e.mu.Unlock()
}

// cleanup waits for the children to exit and removes the temporary
// directories. A child that outlives childGrace is left to its own
// shutdown (it was sent SIGTERM and is killed with its process group).
func (e *env) cleanup() {
	e.mu.Lock()
	dirs, children := e.dirs, e.children
	e.dirs, e.children = nil, nil
	e.mu.Unlock()
	deadline := time.After(childGrace)
	for _, c := range children {
		select {
		case <-c:
		case <-deadline:
		}
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			e.cfg.Log.Warn("could not remove a temporary directory", "dir", d, "err", err)
		}
	}
}

// childGrace bounds how long the demo waits for its children to exit.
const childGrace = 10 * time.Second

// port returns the next port in the demo's range.
func (e *env) port() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.cfg.PortBase + e.next
	e.next++
	return net.JoinHostPort(e.cfg.Host, strconv.Itoa(p))
}

// listen opens the next port, or fails naming it.
func (e *env) listen() (net.Listener, error) {
	addr := e.port()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo needs %s (use --port-base to move the range): %w", addr, err)
	}
	return ln, nil
}

// run hosts c under the contract with the demo's logger and an admin
// listener on the next port. attrs, if any, tag every log line of c (the
// instance of a component that runs more than once).
func (e *env) run(ctx context.Context, c container.Component, attrs ...any) (adminURL string, errc <-chan error, err error) {
	ln, err := e.listen()
	if err != nil {
		return "", nil, err
	}
	o := container.DefaultOptions()
	o.AdminListener = ln
	o.AdminAddr = ln.Addr().String()
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = e.cfg.Log
	o.LogAttrs = attrs
	ch := make(chan error, 1)
	go func() { ch <- container.Run(ctx, c, o) }()
	return "http://" + ln.Addr().String(), ch, nil
}

func startAwait(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	appAddr, appAdmin := d.port(), d.port()
	for _, a := range []string{appAddr, appAdmin} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return nil, nil, fmt.Errorf("demo needs %s (use --port-base to move the range): %w", a, err)
		}
		ln.Close()
	}
	cfg := await.DefaultConfig()
	cfg.Command = []string{d.cfg.Exe, "sample-app", "--listen", appAddr, "--admin-addr", appAdmin,
		"--drain-delay", "0s", "--log-format", "text"}
	cfg.Stdout, cfg.Stderr = os.Stderr, os.Stderr
	a, err := await.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, a)
	if err != nil {
		return nil, nil, err
	}
	return []Endpoint{
		{"await", "sample app run by podkit await (readiness, lifecycle SSE)", admin + "/readyz"},
		{"sample-app", "the app itself: GET /, /slow?d=2s, /status", "http://" + appAddr + "/"},
		{"sample-app", "the app's own admin endpoints (contract)", "http://" + appAdmin + "/info"},
	}, errc, nil
}

// Command is the `podkit demo` subcommand.
func Command() cli.Command {
	return cli.Command{
		Name:     "demo",
		Summary:  "run every podkit component on loopback with embedded defaults; Ctrl-C stops",
		Synopsis: "[--host 127.0.0.1] [--port-base 18000]",
		Setup: func(fs *flag.FlagSet) cli.Runner {
			cfg := Config{Host: "127.0.0.1", PortBase: 18000}
			fs.StringVar(&cfg.Host, "host", cfg.Host, "loopback address every demo service listens on")
			fs.IntVar(&cfg.PortBase, "port-base", cfg.PortBase, "first port of the range the demo uses")
			return func(ctx context.Context, args []string, stdio cli.IO) error {
				if len(args) > 0 {
					return cli.Usagef("unexpected argument %q", args[0])
				}
				// The demo's APIs take no credentials, so they stay where
				// only this machine reaches them (the listen rule).
				if !container.IsLoopbackAddr(net.JoinHostPort(cfg.Host, "0")) {
					return cli.Usagef("--host %s: the demo's services run without credentials, on loopback only (127.0.0.1, ::1 or localhost)", cfg.Host)
				}
				if cfg.PortBase < 1 || cfg.PortBase > 65000 {
					return cli.Usagef("--port-base: %d is not a port from 1 to 65000", cfg.PortBase)
				}
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find the podkit binary: %w", err)
				}
				cfg.Exe = exe
				cfg.Log = slog.New(slog.NewTextHandler(stdio.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				return Run(ctx, cfg, stdio.Stdout)
			}
		},
	}
}

// Run starts every service, prints the table to out, and returns when ctx
// ends and every service has stopped.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &env{cfg: cfg}
	var (
		all   []Endpoint
		waits []<-chan error
	)
	for _, s := range services {
		cfg.Log.Info("podkit demo: starting", "service", s.name)
		eps, errc, err := s.start(ctx, d)
		if err != nil {
			cancel()
			waitAll(waits)
			d.cleanup()
			return fmt.Errorf("%s: %w", s.name, err)
		}
		all = append(all, eps...)
		waits = append(waits, errc)
	}
	fmt.Fprintf(out, "podkit demo: running on %s (Ctrl-C to stop)\n\n", cfg.Host)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tWHAT\tURL")
	for _, e := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Service, e.What, e.URL)
	}
	tw.Flush()
	fmt.Fprintln(out)

	// Stop when asked, or when any service ends by itself.
	first := make(chan error, len(waits))
	for _, w := range waits {
		go func() { first <- <-w }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-first:
		if err != nil {
			err = fmt.Errorf("a demo service stopped: %w", err)
		}
	}
	cancel()
	for range len(waits) - boolInt(err != nil || ctx.Err() == nil) {
		if e := <-first; e != nil && err == nil && !errors.Is(e, context.Canceled) {
			err = e
		}
	}
	d.cleanup()
	fmt.Fprintln(out, "podkit demo: stopped")
	return err
}

func waitAll(ws []<-chan error) {
	for _, w := range ws {
		<-w
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
