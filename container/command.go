package container

import (
	"context"
	"errors"
	"flag"

	"github.com/podkit/podkit/cli"
)

// BuildFunc builds a component from its positional arguments once its
// flags are parsed.
type BuildFunc func(args []string) (Component, error)

// Invocation is what a command's build step sees once the flags are
// parsed: the positional arguments, the standard streams and the
// contract's options, which the build may adjust before the component
// runs (no admin listener for a run that serves no probes, attributes on
// every log line, logs on standard error).
type Invocation struct {
	Args  []string
	Stdio cli.IO
	Opts  *Options
	fs    *flag.FlagSet
}

// Given reports whether the flag name was set, on the command line or
// from its PODKIT_ variable, rather than left at its default.
func (in *Invocation) Given(name string) bool {
	given := false
	in.fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// AdminOnlyIfGiven turns the admin listener off unless --admin-addr (or
// PODKIT_ADMIN_ADDR) was given: for a run that serves no probes (a
// filter, a batch, an init container), which must not fail because the
// default admin port is taken.
func (in *Invocation) AdminOnlyIfGiven() {
	if !in.Given("admin-addr") {
		in.Opts.AdminAddr = "off"
	}
}

// A CommandOption adjusts the command that Command, InvocationCommand or
// FlagCommand makes.
type CommandOption func(*commandOptions)

type commandOptions struct {
	logToStderr bool
	verbs       []cli.Verb
}

// LogToStderr sends the contract's and the component's logs to the
// command's standard error instead of standard output (unless the build
// sets Options.LogOutput): for a component whose standard output is its
// data, such as podkit logs.
func LogToStderr() CommandOption {
	return func(o *commandOptions) { o.logToStderr = true }
}

// Verbs gives the command verbs for people, each with its own flags (see
// cli.Verb): `podkit <command> <verb> ...` runs the verb instead of the
// component, such as podkit queue push.
func Verbs(verbs ...cli.Verb) CommandOption {
	return func(o *commandOptions) { o.verbs = append(o.verbs, verbs...) }
}

// Command turns a component into a podkit subcommand: setup registers the
// component's own flags; the contract's common flags are added after them.
// A build error is a usage error (exit 2); the component then runs under
// Run with signal handling.
func Command(name, summary, synopsis string, setup func(fs *flag.FlagSet) BuildFunc, options ...CommandOption) cli.Command {
	return InvocationCommand(name, summary, synopsis, func(fs *flag.FlagSet) func(*Invocation) (Component, error) {
		build := setup(fs)
		return func(in *Invocation) (Component, error) { return build(in.Args) }
	}, options...)
}

// InvocationCommand is Command for a component whose build also adjusts
// the contract's options (see Invocation). The options are checked after
// the build, so what it sets is checked too.
func InvocationCommand(name, summary, synopsis string, setup func(fs *flag.FlagSet) func(*Invocation) (Component, error), options ...CommandOption) cli.Command {
	var co commandOptions
	for _, o := range options {
		o(&co)
	}
	return cli.Command{
		Name:     name,
		Summary:  summary,
		Synopsis: synopsis,
		Verbs:    co.verbs,
		Setup: func(fs *flag.FlagSet) cli.Runner {
			build := setup(fs)
			opts := DefaultOptions()
			opts.RegisterFlags(fs)
			return func(ctx context.Context, args []string, stdio cli.IO) error {
				if co.logToStderr {
					opts.LogOutput = stdio.Stderr
				}
				in := &Invocation{Args: args, Stdio: stdio, Opts: &opts, fs: fs}
				c, err := build(in)
				if verr := opts.Validate(); verr != nil {
					return verr
				}
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
func FlagCommand[C any, P flagConfig[C], X Component](name, summary, synopsis string, defaults func() C, build func(C) (X, error), options ...CommandOption) cli.Command {
	return Command(name, summary, synopsis, func(fs *flag.FlagSet) BuildFunc {
		cfg := defaults()
		P(&cfg).RegisterFlags(fs)
		return func(args []string) (Component, error) {
			if err := NoArgs(args); err != nil {
				return nil, err
			}
			return build(cfg)
		}
	}, options...)
}
