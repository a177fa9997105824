// Package logs is the log adapter: heterogeneous logs in, one structured
// stream out. It reads standard input, or follows files by glob through
// rotation and copytruncate with checkpoints (package tail); merges
// multi-line events such as stack traces (package multiline); parses JSON
// lines, logfmt, Common/Combined Log Format, log4j-style lines and syslog
// (package parse); normalizes timestamps to RFC 3339 UTC (package
// timestamp); and writes JSON lines with the stable fields timestamp,
// severity, body, attributes and source. It also polls Redis servers'
// SLOWLOG and writes each new entry once, noticing restarts and lost
// entries (package slowlog).
//
// Output goes to standard output; podkit's own logs go to standard error,
// so the two never mix.
package logs

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // --default-timezone works FROM scratch

	"github.com/podkit/podkit/adapter/logs/multiline"
	"github.com/podkit/podkit/adapter/logs/parse"
	"github.com/podkit/podkit/adapter/logs/tail"
	"github.com/podkit/podkit/adapter/logs/timestamp"
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/secretfile"
)

// Config configures the adapter.
type Config struct {
	// Files are globs of files to follow; none means standard input
	// (unless RedisSlowlog is set).
	Files    []string `json:"files"`
	StateDir string   `json:"state_dir"`
	// ReadFrom is where files found at start without a checkpoint begin:
	// "beginning" or "end".
	ReadFrom string `json:"read_from"`

	// Multiline is none, a built-in detector (java, python, go, node,
	// auto), or custom (the MultilineMode/Start/Condition fields).
	Multiline          string        `json:"multiline"`
	MultilineMode      string        `json:"multiline_mode,omitempty"`
	MultilineStart     string        `json:"multiline_start,omitempty"`
	MultilineCondition string        `json:"multiline_condition,omitempty"`
	MultilineConfig    string        `json:"multiline_config,omitempty"` // a rules file; overrides the above
	MultilineTimeout   time.Duration `json:"multiline_timeout"`
	MultilineMaxLines  int           `json:"multiline_max_lines"`
	MultilineMaxBytes  int           `json:"multiline_max_bytes"`

	// Parse is auto, none, or a comma-separated list of json, logfmt,
	// clf, log4j, syslog.
	Parse           string `json:"parse"`
	DefaultTimezone string `json:"default_timezone"`

	PollInterval       time.Duration `json:"poll_interval"`
	ScanInterval       time.Duration `json:"scan_interval"`
	RotateWait         time.Duration `json:"rotate_wait"`
	CheckpointInterval time.Duration `json:"checkpoint_interval"`
	MaxLineBytes       int           `json:"max_line_bytes"`
	ExitOnEOF          bool          `json:"exit_on_eof"`

	// RedisSlowlog are Redis addresses (host:port) whose SLOWLOG is
	// polled every Every.
	RedisSlowlog      []string      `json:"redis_slowlog,omitempty"`
	Every             time.Duration `json:"every"`
	RedisPasswordFile string        `json:"redis_password_file,omitempty"`
	RedisTimeout      time.Duration `json:"redis_timeout"`

	// Stdin and Stdout default to the process's.
	Stdin  io.Reader `json:"-"`
	Stdout io.Writer `json:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ReadFrom:           "beginning",
		Multiline:          "none",
		MultilineTimeout:   multiline.DefaultTimeout,
		MultilineMaxLines:  multiline.DefaultMaxLines,
		MultilineMaxBytes:  multiline.DefaultMaxBytes,
		Parse:              "auto",
		DefaultTimezone:    "UTC",
		PollInterval:       tail.DefaultPollInterval,
		ScanInterval:       tail.DefaultScanInterval,
		RotateWait:         tail.DefaultRotateWait,
		CheckpointInterval: tail.DefaultCheckpointInterval,
		MaxLineBytes:       tail.DefaultMaxLineBytes,
		Every:              10 * time.Second,
		RedisTimeout:       5 * time.Second,
	}
}

// RegisterFlags adds the adapter's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*cli.StringList)(&c.Files), "files", "follow files matching this `glob` (repeatable); without it, read standard input")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "keep file checkpoints (and slowlog positions) in this `dir`; empty keeps none")
	fs.StringVar(&c.ReadFrom, "read-from", c.ReadFrom, "where files found at start without a checkpoint begin: beginning or end")
	fs.StringVar(&c.Multiline, "multiline", c.Multiline, "merge multi-line events: none, java, python, go, node, auto (all four), or custom (--multiline-mode/-start/-condition)")
	fs.StringVar(&c.MultilineMode, "multiline-mode", c.MultilineMode, "custom rule mode: continue_through, continue_past, halt_before or halt_with")
	fs.StringVar(&c.MultilineStart, "multiline-start", c.MultilineStart, "custom rule: `regexp` of lines that may begin an event (empty: any line)")
	fs.StringVar(&c.MultilineCondition, "multiline-condition", c.MultilineCondition, "custom rule: condition `regexp` (see --multiline-mode)")
	fs.StringVar(&c.MultilineConfig, "multiline-config", c.MultilineConfig, "YAML `file` of multiline rules, per path (strict: unknown keys are errors)")
	fs.DurationVar(&c.MultilineTimeout, "multiline-timeout", c.MultilineTimeout, "emit an open multiline event after this long without a new line")
	fs.IntVar(&c.MultilineMaxLines, "multiline-max-lines", c.MultilineMaxLines, "cut multiline events at this many lines (the rest continues in the next)")
	fs.IntVar(&c.MultilineMaxBytes, "multiline-max-bytes", c.MultilineMaxBytes, "cut multiline events at this many bytes")
	fs.StringVar(&c.Parse, "parse", c.Parse, "line formats: auto, none, or a list of json, logfmt, clf, log4j, syslog (first match wins)")
	fs.StringVar(&c.DefaultTimezone, "default-timezone", c.DefaultTimezone, "IANA `zone` for timestamps written without one (log4j, syslog, CLF without offset)")
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "wait between reads when the files have nothing new")
	fs.DurationVar(&c.ScanInterval, "scan-interval", c.ScanInterval, "how often --files globs are expanded again")
	fs.DurationVar(&c.RotateWait, "rotate-wait", c.RotateWait, "keep a rotated or deleted file open this long after it stopped growing")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", c.CheckpointInterval, "at most one checkpoint write per interval (and one at exit)")
	fs.IntVar(&c.MaxLineBytes, "max-line-bytes", c.MaxLineBytes, "cut longer lines; the rest continues as a new line")
	fs.BoolVar(&c.ExitOnEOF, "exit-on-eof", c.ExitOnEOF, "exit once every --files file has been read to its end (a batch run; a glob matching no file is an error)")
	fs.Var((*cli.StringList)(&c.RedisSlowlog), "redis-slowlog", "poll the SLOWLOG of the Redis server at `host:port` (repeatable)")
	fs.DurationVar(&c.Every, "every", c.Every, "how often --redis-slowlog servers are polled")
	fs.StringVar(&c.RedisPasswordFile, "redis-password-file", c.RedisPasswordFile, "read the Redis password from this `file`")
	fs.DurationVar(&c.RedisTimeout, "redis-timeout", c.RedisTimeout, "timeout of each Redis connection and command")
}

// compiled is what Validate builds.
type compiled struct {
	rule     *multiline.Rule
	rules    []multiline.PathRule
	formats  []parse.Format
	auto     bool
	loc      *time.Location
	password string
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c Config) compile() (*compiled, error) {
	var errs []error
	out := &compiled{}
	for _, g := range c.Files {
		if _, err := filepath.Match(g, ""); err != nil {
			errs = append(errs, fmt.Errorf("--files %q: %v", g, err))
		}
	}
	switch c.ReadFrom {
	case "beginning", "end":
	default:
		errs = append(errs, fmt.Errorf("--read-from: %q is not beginning or end", c.ReadFrom))
	}
	custom := c.MultilineMode != "" || c.MultilineStart != "" || c.MultilineCondition != ""
	switch {
	case c.MultilineConfig != "":
		data, err := os.ReadFile(c.MultilineConfig)
		if err != nil {
			errs = append(errs, fmt.Errorf("--multiline-config: %w", err))
			break
		}
		rules, err := multiline.ParseFile(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("--multiline-config %s: %w", c.MultilineConfig, err))
		}
		out.rules = rules
	case c.Multiline == "custom" || (custom && c.Multiline == "none"):
		r, err := multiline.Config{Mode: c.MultilineMode, StartPattern: c.MultilineStart, ConditionPattern: c.MultilineCondition}.Compile()
		if err != nil {
			errs = append(errs, fmt.Errorf("--multiline-mode/--multiline-start/--multiline-condition: %w", err))
		}
		out.rule = r
	case c.Multiline == "none" || c.Multiline == "":
	default:
		if custom {
			errs = append(errs, fmt.Errorf("--multiline %s: --multiline-mode, --multiline-start and --multiline-condition need --multiline custom", c.Multiline))
		}
		r, err := multiline.Builtin(c.Multiline)
		if err != nil {
			errs = append(errs, fmt.Errorf("--multiline: %w", err))
		}
		out.rule = r
	}
	if c.MultilineTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--multiline-timeout: %s must be positive", c.MultilineTimeout))
	}
	if c.MultilineMaxLines < 1 {
		errs = append(errs, fmt.Errorf("--multiline-max-lines: %d must be at least 1", c.MultilineMaxLines))
	}
	if c.MultilineMaxBytes < 1 {
		errs = append(errs, fmt.Errorf("--multiline-max-bytes: %d must be at least 1", c.MultilineMaxBytes))
	}
	if out.rule != nil {
		out.rule.Timeout, out.rule.MaxLines, out.rule.MaxBytes = c.MultilineTimeout, c.MultilineMaxLines, c.MultilineMaxBytes
	}
	formats, auto, err := parse.ParseFormats(c.Parse)
	if err != nil {
		errs = append(errs, fmt.Errorf("--parse: %w", err))
	}
	out.formats, out.auto = formats, auto
	if c.Parse == "none" {
		out.formats = nil
	}
	loc, err := time.LoadLocation(c.DefaultTimezone)
	if err != nil {
		errs = append(errs, fmt.Errorf("--default-timezone: %q is not a known time zone (want an IANA name such as UTC or Europe/Berlin)", c.DefaultTimezone))
	}
	out.loc = loc
	for name, d := range map[string]time.Duration{"poll-interval": c.PollInterval, "scan-interval": c.ScanInterval,
		"rotate-wait": c.RotateWait, "checkpoint-interval": c.CheckpointInterval, "every": c.Every, "redis-timeout": c.RedisTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s: %s must be positive", name, d))
		}
	}
	if c.MaxLineBytes < 1 {
		errs = append(errs, fmt.Errorf("--max-line-bytes: %d must be at least 1", c.MaxLineBytes))
	}
	for _, a := range c.RedisSlowlog {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--redis-slowlog %q: want host:port", a))
		}
	}
	if c.RedisPasswordFile != "" {
		pw, err := secretfile.Read(c.RedisPasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--redis-password-file: %w", err))
		}
		out.password = pw
	}
	if c.StateDir != "" {
		if fi, err := os.Stat(c.StateDir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("--state-dir %s: not a directory", c.StateDir))
		}
	}
	return out, errors.Join(errs...)
}

// Logs is the component.
type Logs struct {
	cfg Config
	c   *compiled
	m   *metrics
	// clock is the observed time of events without a timestamp of their
	// own (nil: time.Now); tests fix it.
	clock func() time.Time
}

var _ container.Component = (*Logs)(nil)

// New validates cfg and returns the adapter.
func New(cfg Config) (*Logs, error) {
	c, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	return &Logs{cfg: cfg, c: c, m: newMetrics()}, nil
}

// Name implements container.Component.
func (l *Logs) Name() string { return "logs" }

// EffectiveConfig implements container.Configured.
func (l *Logs) EffectiveConfig() any {
	c := l.cfg
	if c.RedisPasswordFile != "" {
		c.RedisPasswordFile += " (" + string(container.Secret("set")) + ")"
	}
	return c
}

// Command is the `podkit logs` subcommand. Unlike most components it
// sends podkit's own logs to standard error: standard output is the data.
// A filter (podkit logs < file) or a batch run serves no probes: it opens
// the admin listener only when --admin-addr is given, so a taken default
// admin port cannot fail it.
func Command() cli.Command {
	return container.InvocationCommand("logs",
		"normalize logs (stdin or files, with rotation and checkpoints; multiline; JSON/logfmt/CLF/log4j/syslog) into JSON lines; poll Redis SLOWLOG",
		"[--files GLOB ...] [--state-dir DIR] [--multiline java|python|go|node|auto] [--parse auto] [--redis-slowlog HOST:PORT --every 10s] [flags]",
		func(fs *flag.FlagSet) func(*container.Invocation) (container.Component, error) {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(in *container.Invocation) (container.Component, error) {
				if err := container.NoArgs(in.Args); err != nil {
					return nil, err
				}
				if cfg.endsAtEOF() {
					in.AdminOnlyIfGiven()
				}
				cfg.Stdin, cfg.Stdout = in.Stdio.Stdin, in.Stdio.Stdout
				return New(cfg)
			}
		}, container.LogToStderr())
}

// stdinFilter reports whether the adapter reads standard input and exits
// at its end: no --files and no --redis-slowlog.
func (c Config) stdinFilter() bool { return len(c.Files) == 0 && len(c.RedisSlowlog) == 0 }

// endsAtEOF reports whether the run ends by itself at the end of its
// input: a stdin filter, or --files with --exit-on-eof (a batch run).
func (c Config) endsAtEOF() bool { return c.stdinFilter() || len(c.Files) > 0 && c.ExitOnEOF }

// Run implements container.Component.
func (l *Logs) Run(ctx context.Context, h *container.Host) error {
	l.m.register(h.Registerer())
	log := h.Logger()
	out := &syncWriter{w: l.cfg.Stdout}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, addr := range l.cfg.RedisSlowlog {
		sp := &slowlogPoller{addr: addr, password: l.c.password, every: l.cfg.Every, timeout: l.cfg.RedisTimeout,
			stateDir: l.cfg.StateDir, out: out, log: log, m: l.m}
		sp.firstPolled = func() {
			h.AddCheck(container.Check{Name: "redis-slowlog " + addr, Period: l.cfg.Every, Func: sp.check})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sp.run(ctx)
		}()
	}
	p := l.newPipeline(out)
	h.SetReady(true)
	switch {
	case len(l.cfg.Files) > 0:
		mh := &metricsHandler{pipeline: p}
		t, err := tail.New(tail.Config{
			Globs:              l.cfg.Files,
			StateDir:           l.cfg.StateDir,
			ReadFromEnd:        l.cfg.ReadFrom == "end",
			PollInterval:       l.cfg.PollInterval,
			ScanInterval:       l.cfg.ScanInterval,
			RotateWait:         l.cfg.RotateWait,
			CheckpointInterval: l.cfg.CheckpointInterval,
			MaxLineBytes:       l.cfg.MaxLineBytes,
			ExitOnEOF:          l.cfg.ExitOnEOF,
			Logger:             log,
			OnRotate:           func(kind string) { l.m.rotations.WithLabelValues(kind).Inc() },
			OnCheckpoint: func(err error) {
				if err != nil {
					l.m.checkpoints.WithLabelValues("error").Inc()
				} else {
					l.m.checkpoints.WithLabelValues("ok").Inc()
				}
			},
			OnOpen: func(n int) { l.m.filesOpen.Set(float64(n)) },
			Paused: h.Paused,
		}, mh)
		if err != nil {
			return err
		}
		log.Info("following files", "globs", l.cfg.Files, "state_dir", l.cfg.StateDir)
		err = t.Run(ctx, h.DrainContext())
		var nm *tail.NoMatchError
		if errors.As(err, &nm) {
			var msgs []string
			for _, g := range nm.Globs {
				msgs = append(msgs, fmt.Sprintf("--files %q: no file matches it", g))
			}
			return fmt.Errorf("%s (with --exit-on-eof there is nothing to wait for)", strings.Join(msgs, "; "))
		}
		return err
	case l.cfg.stdinFilter():
		p.input = "stdin"
		err := p.runStdin(ctx, l.cfg.Stdin, tail.DefaultReadBytes, l.cfg.MaxLineBytes)
		if err == nil && ctx.Err() == nil {
			log.Info("standard input ended")
		}
		return err
	default:
		<-ctx.Done()
		return nil
	}
}

func (l *Logs) newPipeline(out io.Writer) *pipeline {
	p := &pipeline{
		out:   out,
		rule:  l.c.rule,
		rules: l.c.rules,
		input: "file",
		m:     l.m,
		clock: l.clock,
		auto:  l.c.auto,
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	p.now = p.clock()
	if len(l.c.formats) > 0 {
		p.parser = &parse.Parser{Formats: l.c.formats, Time: timestamp.Parser{Location: l.c.loc, Now: p.clock}}
	}
	p.enc.buf = make([]byte, 0, flushBytes+64<<10)
	return p
}
