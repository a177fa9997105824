// Package sampleapp is a small HTTP application used as "the main
// container" in podkit's demo, end-to-end tests and example pods. It runs
// under the container contract like any component (hidden subcommand
// `podkit sample-app`): GET / greets, GET /slow?d=DURATION answers after a
// delay (for drain tests), GET /status reports counters, and it can write a
// marker file and exit after a time (--exit-after) to play a Job.
package sampleapp

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
)

// Config configures the sample app.
type Config struct {
	Listen    string        `json:"listen"`
	Message   string        `json:"message"`
	ExitAfter time.Duration `json:"exit_after"` // 0: run until stopped
	ExitCode  int           `json:"exit_code"`  // status when --exit-after fires
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8080", Message: "hello from the podkit sample app"}
}

// App is the sample application.
type App struct {
	cfg      Config
	ln       net.Listener
	requests atomic.Int64
	inflight atomic.Int64
}

// New validates cfg and returns an App. If ln is non-nil it is served
// instead of listening on cfg.Listen.
func New(cfg Config, ln net.Listener) (*App, error) {
	if ln == nil {
		if err := container.ValidateListenAddr(cfg.Listen); err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
	}
	if cfg.ExitAfter < 0 {
		return nil, fmt.Errorf("--exit-after: %s is negative", cfg.ExitAfter)
	}
	return &App{cfg: cfg, ln: ln}, nil
}

// Command is the hidden `podkit sample-app` subcommand.
func Command() cli.Command {
	c := container.Command("sample-app", "a small HTTP app for demos and tests", "[flags]",
		func(fs *flag.FlagSet) container.BuildFunc {
			cfg := DefaultConfig()
			fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP listen address")
			fs.StringVar(&cfg.Message, "message", cfg.Message, "greeting returned by GET /")
			fs.DurationVar(&cfg.ExitAfter, "exit-after", cfg.ExitAfter, "exit by itself after this long (0: never)")
			fs.IntVar(&cfg.ExitCode, "exit-code", cfg.ExitCode, "exit status used by --exit-after")
			return func(args []string) (container.Component, error) {
				if err := container.NoArgs(args); err != nil {
					return nil, err
				}
				return New(cfg, nil)
			}
		})
	c.Hidden = true
	return c
}

// Name implements container.Component.
func (a *App) Name() string { return "sample-app" }

// EffectiveConfig implements container.Configured.
func (a *App) EffectiveConfig() any { return a.cfg }

// Handler returns the app's HTTP handler.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	host, _ := os.Hostname()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"message": a.cfg.Message, "host": host, "time": time.Now().UTC()})
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		a.inflight.Add(1)
		defer a.inflight.Add(-1)
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > time.Minute {
			http.Error(w, "d must be a duration from 0 to 1m", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "slept %s\n", d)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]int64{"requests": a.requests.Load(), "in_flight": a.inflight.Load()})
	})
	return mux
}

// Run implements container.Component.
func (a *App) Run(ctx context.Context, h *container.Host) error {
	ln, err := container.Listen("--listen "+a.cfg.Listen, a.cfg.Listen, a.ln)
	if err != nil {
		return err
	}
	h.Logger().Info("serving", "listen", ln.Addr().String())
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if a.cfg.ExitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		t := time.AfterFunc(a.cfg.ExitAfter, cancel)
		defer t.Stop()
		err := container.ServeHTTP(ctx, h, srv, ln)
		if err == nil && a.cfg.ExitCode != 0 {
			return &container.ExitError{Code: a.cfg.ExitCode, Msg: fmt.Sprintf("exiting with status %d after %s", a.cfg.ExitCode, a.cfg.ExitAfter)}
		}
		return err
	}
	return container.ServeHTTP(ctx, h, srv, ln)
}
