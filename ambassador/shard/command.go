package shard

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/buildinfo"
)

// nutcrackerFlags are nutcracker's command-line options that act on the
// process rather than the proxy, so that `podkit shard` can replace the
// nutcracker binary in an existing image or script. (-c, -s, -a, -i and -m
// are Config's.)
type nutcrackerFlags struct {
	testConf  bool   // -t: check the configuration and exit 0 or 1
	version   bool   // -V
	daemonize bool   // -d: refused
	verbose   int    // -v 0..11 → --log-level; -1: not given
	output    string // -o: log file
	pidFile   string // -p
}

func (n *nutcrackerFlags) register(fs *flag.FlagSet) {
	n.verbose = -1
	both := func(short, long string, f func(name string)) {
		f(long)
		f(short)
	}
	both("t", "test-conf", func(name string) {
		fs.BoolVar(&n.testConf, name, false, "nutcracker's -t: check the configuration, print whether it is ok, and exit 0 (ok) or 1")
	})
	both("V", "version", func(name string) {
		fs.BoolVar(&n.version, name, false, "nutcracker's -V: print the version and exit")
	})
	both("d", "daemonize", func(name string) {
		fs.BoolVar(&n.daemonize, name, false, "nutcracker's -d: refused (run podkit in the foreground under a supervisor)")
	})
	both("v", "verbose", func(name string) {
		fs.IntVar(&n.verbose, name, n.verbose, "nutcracker's log `level` 0-11 (sets --log-level: up to 3 error, 4 warn, 5-6 info, 7 and more debug)")
	})
	both("o", "output", func(name string) {
		fs.StringVar(&n.output, name, "", "nutcracker's -o: log to this `file` (appended) instead of stdout")
	})
	both("p", "pid-file", func(name string) {
		fs.StringVar(&n.pidFile, name, "", "nutcracker's -p: write the process ID to this `file` (removed on exit)")
	})
}

// logLevel maps nutcracker's verbosity (LOG_EMERG 0 ... LOG_PVERB 11) to a
// log level.
func logLevel(v int) string {
	switch {
	case v <= 3:
		return "error"
	case v == 4:
		return "warn"
	case v <= 6:
		return "info"
	}
	return "debug"
}

// Command is the `podkit shard` subcommand. Besides podkit's flags it
// takes nutcracker's command line (-c, -s, -a, -i, -t, -v, -o, -p, -V,
// -m; -d is refused), so it can stand in for the nutcracker binary.
func Command() cli.Command {
	return cli.Command{
		Name:     "shard",
		Summary:  "shard Redis or memcached keys over several servers, twemproxy-compatible (reads nutcracker.yml, takes nutcracker's flags)",
		Synopsis: "--config nutcracker.yml | -c nutcracker.yml | --listen ADDR --server HOST:PORT:WEIGHT [--server ...] [flags]",
		Setup: func(fs *flag.FlagSet) cli.Runner {
			cfg := DefaultConfig()
			cfg.StatsAddr = DefaultStatsAddr // as nutcracker: on unless turned off
			cfg.RegisterFlags(fs)
			var nut nutcrackerFlags
			nut.register(fs)
			opts := container.DefaultOptions()
			opts.RegisterFlags(fs)
			return func(ctx context.Context, args []string, stdio cli.IO) error {
				if err := container.NoArgs(args); err != nil {
					return err
				}
				return runCommand(ctx, fs, cfg, nut, opts, stdio)
			}
		},
	}
}

func runCommand(ctx context.Context, fs *flag.FlagSet, cfg Config, nut nutcrackerFlags, opts container.Options, stdio cli.IO) error {
	if nut.version {
		bi := buildinfo.Get()
		fmt.Fprintf(stdio.Stderr, "This is podkit shard %s (commit %s), nutcracker-0.5.0 compatible\n", bi.Version, bi.Commit)
		return nil
	}
	if nut.daemonize {
		return cli.Usagef("-d/--daemonize: podkit shard does not daemonize; run it in the foreground under a supervisor (Kubernetes, systemd, docker), which restarts it and collects its logs")
	}
	if nut.testConf {
		return testConf(cfg, stdio)
	}
	if nut.verbose != -1 {
		if nut.verbose < 0 || nut.verbose > 11 {
			return cli.Usagef("-v/--verbose: %d is not a log level from 0 to 11", nut.verbose)
		}
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "log-level" })
		if given {
			return cli.Usagef("-v/--verbose and --log-level: give one of them")
		}
		opts.LogLevel = logLevel(nut.verbose)
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	px, err := New(cfg)
	if err != nil {
		var ue *cli.UsageError
		if errors.As(err, &ue) {
			return err
		}
		return &cli.UsageError{Msg: err.Error()}
	}
	if nut.output != "" {
		f, err := os.OpenFile(nut.output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("-o/--output: %w", err)
		}
		defer f.Close()
		if opts.Logger, err = container.NewLogger(f, opts.LogFormat, opts.LogLevel); err != nil {
			return &cli.UsageError{Msg: err.Error()}
		}
	}
	if nut.pidFile != "" {
		if err := os.WriteFile(nut.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("-p/--pid-file: %w", err)
		}
		defer os.Remove(nut.pidFile)
	}
	opts.HandleSignals = true
	return container.Run(ctx, px, opts)
}

// testConf is nutcracker's -t: the configuration is read and checked as
// at start; the verdict goes to stderr, as nutcracker writes it, and the
// exit status is 0 or 1.
func testConf(cfg Config, stdio cli.IO) error {
	what := "configuration (flags)"
	if cfg.ConfigFile != "" {
		what = fmt.Sprintf("configuration file '%s'", cfg.ConfigFile)
	}
	err := cfg.Validate()
	if err == nil {
		_, _, err = cfg.pools()
	}
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "podkit shard: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return &container.ExitError{Code: 1, Msg: what + " syntax is invalid"}
	}
	fmt.Fprintf(stdio.Stderr, "podkit shard: %s syntax is ok\n", what)
	return nil
}
