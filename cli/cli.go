// Package cli is podkit's command-line layer: one explicit table of
// subcommands (and their verbs, such as podkit queue push), stdlib flag
// sets whose every flag can also come from a PODKIT_<NAME> environment
// variable (flag > env > default), help text that names each flag's
// variable and default, and exit codes (2 for usage errors).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podkit/podkit/internal/buildinfo"
)

// IO is the standard streams a command runs with.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Runner runs a command once its flags are parsed; args are the positional
// arguments left after the flags.
type Runner func(ctx context.Context, args []string, stdio IO) error

// Command is one podkit subcommand.
type Command struct {
	Name     string
	Summary  string // one line, shown by `podkit help`
	Synopsis string // shown after the command name in usage, e.g. "[flags] [-- CMD ARGS...]"
	Hidden   bool   // omitted from `podkit help` (helpers used by tests and the demo)
	// Env lists the PODKIT_ variables the command reads besides its
	// flags' (say, the flags of its verbs, parsed later), so that setting
	// them draws no "no flag reads it" warning.
	Env []string
	// Setup registers the command's flags on fs and returns the function
	// that runs the command after parsing.
	Setup func(fs *flag.FlagSet) Runner
	// Verbs are the command's own subcommands (podkit queue push): when
	// the first argument after the command's flags names one, the verb
	// runs, with its own flags, instead of the command.
	Verbs []Verb
}

// Verb is a subcommand of a Command, with its own flag set. Its flags may
// come before, between and after its arguments, as people type them; "--"
// ends them. Every flag can also come from its PODKIT_<NAME> variable.
type Verb struct {
	Name     string
	Synopsis string // after "podkit <command> <verb> " in usage
	Summary  string // one sentence, shown by the verb's --help
	// Setup registers the verb's flags on fs and returns the function
	// that runs the verb after parsing.
	Setup func(fs *flag.FlagSet) Runner
}

// UsageError is a bad command line: a one-line message, exit status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// ExitCoder is an error that carries the process exit status.
type ExitCoder interface {
	error
	ExitCode() int
}

// EnvName is the environment variable that sets the flag name.
func EnvName(flagName string) string {
	return "PODKIT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Main runs the command named by args[0] and returns the process exit status.
func Main(ctx context.Context, commands []Command, args []string, stdio IO) int {
	if len(args) == 0 {
		// No command is a usage error: a container started without
		// its arguments must not look like it succeeded.
		printHelp(stdio.Stderr, commands)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if c, ok := find(commands, rest[0]); ok {
				fs := newFlagSet(c)
				c.Setup(fs)
				printUsage(stdio.Stdout, c, fs)
				return 0
			}
			fmt.Fprintf(stdio.Stderr, "podkit: unknown command %q (see 'podkit help')\n", rest[0])
			return 2
		}
		printHelp(stdio.Stdout, commands)
		return 0
	case "version", "-version", "--version":
		bi := buildinfo.Get()
		fmt.Fprintf(stdio.Stdout, "podkit %s (commit %s, %s)\n", bi.Version, bi.Commit, bi.GoVersion)
		return 0
	}
	c, ok := find(commands, name)
	if !ok {
		fmt.Fprintf(stdio.Stderr, "podkit: unknown command %q (see 'podkit help')\n", name)
		return 2
	}
	fs := newFlagSet(c)
	run := c.Setup(fs)
	pos, err := Parse(fs, rest, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdio.Stdout, c, fs)
		return 0
	}
	if err == nil {
		warnUnknownEnv(stdio.Stderr, c.Name, fs, append(verbEnv(c), c.Env...), os.Environ())
		if v, ok := findVerb(c, pos); ok {
			err = runVerb(ctx, c, v, pos[1:], stdio)
		} else {
			err = run(ctx, pos, stdio)
		}
	}
	return report(stdio.Stderr, c.Name, err)
}

func findVerb(c Command, args []string) (Verb, bool) {
	if len(args) == 0 {
		return Verb{}, false
	}
	for _, v := range c.Verbs {
		if v.Name == args[0] {
			return v, true
		}
	}
	return Verb{}, false
}

// verbEnv is the variables of every verb's flags: a command with verbs
// reads them too.
func verbEnv(c Command) []string {
	var env []string
	for _, v := range c.Verbs {
		fs := flag.NewFlagSet(v.Name, flag.ContinueOnError)
		v.Setup(fs)
		fs.VisitAll(func(f *flag.Flag) { env = append(env, EnvName(f.Name)) })
	}
	return env
}

// runVerb parses the verb's flags from args (wherever they are among its
// arguments) and runs it; --help prints its usage.
func runVerb(ctx context.Context, c Command, v Verb, args []string, stdio IO) error {
	fs := flag.NewFlagSet("podkit "+c.Name+" "+v.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	run := v.Setup(fs)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printVerbUsage(stdio.Stdout, c, v, fs)
		return nil
	}
	if err != nil {
		return err
	}
	return run(ctx, pos, stdio)
}

// parseInterspersed parses the flags wherever they are among args and
// returns the other arguments in order. A flag's value is the next argument
// unless the flag is a boolean or written --name=value; "--" ends the
// flags; "-" is an argument (stdin). Errors are Parse's.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // unknown, or -h: Parse says so
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	rest, err := Parse(fs, flags, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 { // cannot happen: every argument in flags is a flag or its value
		return nil, Usagef("unexpected argument %q", rest[0])
	}
	return pos, nil
}

// ownEnv are podkit's PODKIT_ variables that are not flags: they are set
// for or by tests, the image and the commands a worker or config-sync
// runs, so seeing them is no sign of a typo.
var ownEnv = map[string]bool{
	"PODKIT_REQUIRE_DEPS":   true, // internal/testdeps
	"PODKIT_IMAGE":          true, // e2e/containertest
	"PODKIT_PEER_IMAGE":     true, // e2e/containertest
	"PODKIT_KUBE_APISERVER": true, // internal/kubetest
	"PODKIT_STAGED_FILE":    true, // set by config-sync for its --validate command
	"PODKIT_ITEM_ID":        true, // set by the queue worker for its command
	"PODKIT_ATTEMPT":        true,
	"PODKIT_ITEM_FILE":      true,
	"PODKIT_QUEUE":          true,
	"PODKIT_ITEM_DEADLINE":  true,
	"PODKIT_WORKER_ID":      true,
	// switches of podkit's own tests and benchmarks, set around a podkit
	// command they run
	"PODKIT_SHARD_AS_COMMAND": true,
	"PODKIT_SHARD_CPUPROFILE": true,
	"PODKIT_LONG":             true,
	"PODKIT_ELECT_SCHEDULES":  true,
	"PODKIT_BIN":              true,
}

// warnUnknownEnv writes one line to w for each PODKIT_ variable in environ
// that no flag of fs reads (a misspelling is otherwise ignored silently),
// naming the closest flag when one is close.
func warnUnknownEnv(w io.Writer, command string, fs *flag.FlagSet, extra, environ []string) {
	known := map[string]string{} // variable -> flag
	fs.VisitAll(func(f *flag.Flag) { known[EnvName(f.Name)] = f.Name })
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "PODKIT_") || ownEnv[name] || slices.Contains(extra, name) {
			continue
		}
		if _, ok := known[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		msg := fmt.Sprintf("podkit %s: warning: %s is set but no flag of this command reads it", command, name)
		if f := closestFlag(name, known); f != "" {
			msg += fmt.Sprintf(" (did you mean %s, --%s?)", EnvName(f), f)
		}
		fmt.Fprintln(w, msg)
	}
}

// closestFlag returns the flag whose variable is nearest to name (by edit
// distance), if it is near enough to be a likely misspelling.
func closestFlag(name string, known map[string]string) string {
	best, bestDist := "", 0
	for env, flagName := range known {
		d := editDistance(name, env)
		if best == "" || d < bestDist || d == bestDist && flagName < best {
			best, bestDist = flagName, d
		}
	}
	// PODKIT_ is common to all: judge by the rest of the name.
	limit := max(2, (len(name)-len("PODKIT_"))/4)
	if best == "" || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func report(w io.Writer, name string, err error) int {
	if err == nil {
		return 0
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "podkit %s: %s\n", name, oneLine(ue.Msg))
		return 2
	}
	var ec ExitCoder
	if errors.As(err, &ec) {
		if msg := ec.Error(); msg != "" {
			fmt.Fprintf(w, "podkit %s: %s\n", name, oneLine(msg))
		}
		return ec.ExitCode()
	}
	fmt.Fprintf(w, "podkit %s: %s\n", name, oneLine(err.Error()))
	return 1
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func find(commands []Command, name string) (Command, bool) {
	for _, c := range commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

func newFlagSet(c Command) *flag.FlagSet {
	fs := flag.NewFlagSet("podkit "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses args into fs, then fills every flag not given on the command
// line from its PODKIT_<NAME> variable (looked up with lookupEnv). Errors are
// *UsageError values naming the flag (and the variable). flag.ErrHelp is
// returned as is.
func Parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &UsageError{Msg: flagError(fs, err.Error())}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(f.Name)
		v, ok := lookupEnv(env)
		if !ok {
			return
		}
		values := []string{v}
		if _, multi := f.Value.(interface{ Multi() }); multi {
			values = splitList(v)
		}
		for _, one := range values {
			if err := fs.Set(f.Name, one); err != nil {
				errs = append(errs, fmt.Errorf("%s (--%s): invalid value %q: %s", env, f.Name, one, explain(f, unwrapFlagErr(err).Error())))
				return
			}
		}
	})
	if len(errs) > 0 {
		return nil, &UsageError{Msg: errors.Join(errs...).Error()}
	}
	return fs.Args(), nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func unwrapFlagErr(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// flagError rewrites the flag package's messages into podkit's form:
// "--name: reason", one line.
func flagError(fs *flag.FlagSet, msg string) string {
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: -"):
		return "unknown flag --" + strings.TrimLeft(strings.TrimPrefix(msg, "flag provided but not defined: "), "-")
	case strings.HasPrefix(msg, "flag needs an argument: -"):
		return "flag --" + strings.TrimLeft(strings.TrimPrefix(msg, "flag needs an argument: "), "-") + " needs a value"
	case strings.HasPrefix(msg, "invalid value ") || strings.HasPrefix(msg, "invalid boolean value "):
		// invalid value "x" for flag -name: reason
		if i := strings.Index(msg, " for flag -"); i >= 0 {
			rest := msg[i+len(" for flag -"):]
			name, reason, _ := strings.Cut(rest, ": ")
			name = strings.TrimLeft(name, "-")
			if f := fs.Lookup(name); f != nil {
				reason = explain(f, reason)
			}
			return "--" + name + ": " + msg[:i] + ": " + reason
		}
	case strings.HasPrefix(msg, "bad flag syntax: "):
		return msg
	}
	return msg
}

func printHelp(w io.Writer, commands []Command) {
	fmt.Fprintf(w, "podkit — reusable containers for the container design patterns.\n\nUsage: podkit <command> [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	visible := make([]Command, 0, len(commands))
	for _, c := range commands {
		if !c.Hidden {
			visible = append(visible, c)
		}
	}
	sort.SliceStable(visible, func(i, j int) bool { return visible[i].Name < visible[j].Name })
	for _, c := range visible {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "help", "show this list, or a command's flags: podkit help <command>")
	fmt.Fprintf(tw, "  %s\t%s\n", "version", "print the version, commit and Go version")
	tw.Flush()
	fmt.Fprintf(w, "\nEvery flag can also be set with PODKIT_<FLAG_NAME> (flag > env > default).\nRun 'podkit <command> --help' for a command's flags.\n")
}

func printUsage(w io.Writer, c Command, fs *flag.FlagSet) {
	syn := c.Synopsis
	if syn == "" {
		syn = "[flags]"
	}
	fmt.Fprintf(w, "Usage: podkit %s %s\n\n%s\n\nFlags:\n", c.Name, syn, c.Summary)
	printFlags(w, fs)
}

// printVerbUsage prints a verb's help in the form of every podkit
// command's: usage, summary, then each flag with its variable and default.
func printVerbUsage(w io.Writer, c Command, v Verb, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: podkit %s %s %s\n\n%s\n\nFlags:\n", c.Name, v.Name, v.Synopsis, v.Summary+". Flags may come before or after the arguments; -- ends them.")
	printFlags(w, fs)
}

// printFlags writes each flag of fs as every podkit command's help shows
// it: the flag and its value's name, then its usage, variable and default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "%s\n      %s (env %s, default %s)\n", line, usage, EnvName(f.Name), def)
	})
}

// explain replaces the flag package's bare "parse error" with what the flag
// wants.
func explain(f *flag.Flag, reason string) string {
	if reason != "parse error" && reason != "invalid syntax" && !strings.Contains(reason, "parse error") {
		return reason
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return reason
	}
	switch g.Get().(type) {
	case time.Duration:
		return "want a duration such as 500ms, 5s or 1m"
	case int, int64, uint, uint64:
		return "want an integer"
	case float64:
		return "want a number"
	case bool:
		return "want true or false"
	}
	return reason
}
