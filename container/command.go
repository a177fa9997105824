package container

import (
	"context"
	"errors"
	"flag"

	"github.com/podkit/podkit/internal/cli"
)

// BuildFunc builds a component from its positional arguments once its
// flags are parsed.
type BuildFunc func(args []string) (Component, error)

// Command turns a component into a podkit subcommand: setup registers the
// component's own flags; the contract's common flags are added after them.
// A build error is a usage error (exit 2); the component then runs under
// Run with signal handling.
func Command(name, summary, synopsis string, setup func(fs *flag.FlagSet) BuildFunc) cli.Command {
	return cli.Command{
		Name:     name,
		Summary:  summary,
		Synopsis: synopsis,
		Setup: func(fs *flag.FlagSet) cli.Runner {
			build := setup(fs)
			opts := DefaultOptions()
			opts.RegisterFlags(fs)
			return func(ctx context.Context, args []string, stdio cli.IO) error {
				if err := opts.Validate(); err != nil {
					return err
				}
				c, err := build(args)
				if err != nil {
					var ue *cli.UsageError
					if errors.As(err, &ue) {
						return err
					}
					return &cli.UsageError{Msg: err.Error()}
				}
				opts.HandleSignals = true
				return Run(ctx, c, opts)
			}
		},
	}
}

// NoArgs is a BuildFunc helper for components that take no positional
// arguments.
func NoArgs(args []string) error {
	if len(args) > 0 {
		return cli.Usagef("unexpected argument %q (this command takes flags only)", args[0])
	}
	return nil
}

// flagConfig is a component configuration that registers its own flags.
type flagConfig[C any] interface {
	*C
	RegisterFlags(fs *flag.FlagSet)
}

// FlagCommand is Command for the common case: a component configured by
// its flags alone. defaults returns the configuration (DefaultConfig) and
// build validates it and makes the component (New).
func FlagCommand[C any, P flagConfig[C], X Component](name, summary, synopsis string, defaults func() C, build func(C) (X, error)) cli.Command {
	return Command(name, summary, synopsis, func(fs *flag.FlagSet) BuildFunc {
		cfg := defaults()
		P(&cfg).RegisterFlags(fs)
		return func(args []string) (Component, error) {
			if err := NoArgs(args); err != nil {
				return nil, err
			}
			return build(cfg)
		}
	})
}
