// Package configsync is the dynamic-configuration sidecar: it keeps an
// application's configuration file in step with a source and tells the
// application to reload it.
//
// The source is a file, a directory (including a Kubernetes ConfigMap or
// Secret volume, whose "..data" symlink swaps it reads as one consistent
// snapshot), or an HTTP URL polled with ETag and If-Modified-Since. Files
// and directories are watched with inotify, with a periodic poll as a
// safety net; bursts of changes are debounced.
//
// Every change runs one pipeline:
//
//	fetch -> render (optional text/template) -> validate (optional command
//	run against the staged file) -> atomic publish (temp file in the same
//	directory, fsync, rename, fsync the directory) -> reload (a signal to
//	processes found by name or PID file, and/or an HTTP request) -> on a
//	failed reload, restore the previous file and reload again.
//
// Content whose SHA-256 equals what is already published does nothing. A
// rejected or failed change leaves the previous file in place, and says so
// in the log and in podkit_configsync_failures_total. Readers of the file
// never see a partial file: it is replaced by rename(2) (except when the
// destination is a bind-mounted file, where rename fails with EBUSY and the
// file is rewritten in place).
//
// With Once set, the pipeline runs once without reloading, for an init
// container that must leave a valid configuration before the application
// starts.
package configsync

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
)

// Sentinel errors: every error Sync returns wraps exactly one of these, so
// callers can tell the stage that failed with errors.Is.
var (
	ErrFetch    = errors.New("fetch failed")
	ErrRender   = errors.New("render failed")
	ErrValidate = errors.New("validation rejected the new content")
	ErrPublish  = errors.New("publish failed")
	ErrReload   = errors.New("reload failed")
)

// ErrNoProcess is returned (wrapped) by a signal reload that found no
// process to signal. Sync treats it as a warning, not a failed reload: the
// file is published, and an application that is not running yet reads it
// when it starts.
var ErrNoProcess = errors.New("no process to signal")

// Config configures a Syncer.
type Config struct {
	// Source is a file or directory path, or an http(s) URL.
	Source string `json:"source"`
	// Dest is the file to keep in step with the source; a directory when
	// the source is a directory and there is no Template: one that exists,
	// or a path ending in "/", which is created.
	Dest string `json:"dest"`
	// Template, if set, is a text/template file rendered with the source
	// (see TemplateData); Dest is then always one file.
	Template string `json:"template,omitempty"`
	// FileMode is the permission of published files (default 0644).
	FileMode fs.FileMode `json:"file_mode"`

	// ValidateCmd is run against the staged file before it is published:
	// "{}" in it is replaced by the staged path, which is also in
	// $PODKIT_STAGED_FILE. It is split into words like a shell would
	// (quotes and backslashes), but no shell runs it. A non-zero exit
	// rejects the new content.
	ValidateCmd     string        `json:"validate_cmd,omitempty"`
	ValidateTimeout time.Duration `json:"validate_timeout"`

	// Signal is sent to the processes named by ProcessName or PIDFile after
	// a publish (default HUP).
	Signal string `json:"signal"`
	// ProcessName selects the processes to signal: those whose
	// /proc/PID/comm or argv[0] base name equals it (only the top-most of a
	// tree of matches, e.g. nginx's master and not its workers).
	ProcessName string `json:"process_name,omitempty"`
	// PIDFile holds the PID to signal; it is read at every reload.
	PIDFile string `json:"pid_file,omitempty"`

	// ReloadURL, if set, is requested after a publish (and after the
	// signal). The reload succeeds when it answers ReloadExpectStatus (0:
	// any 2xx); it is retried ReloadRetries times with exponential backoff.
	ReloadURL          string        `json:"reload_url,omitempty"`
	ReloadMethod       string        `json:"reload_method"`
	ReloadExpectStatus int           `json:"reload_expect_status"`
	ReloadRetries      int           `json:"reload_retries"`
	ReloadTimeout      time.Duration `json:"reload_timeout"`

	// Debounce waits for this much quiet after a change before syncing.
	Debounce time.Duration `json:"debounce"`
	// PollInterval is how often the source is polled: the period for an
	// HTTP source, a safety net beside inotify for files.
	PollInterval time.Duration `json:"poll_interval"`
	// FetchTimeout bounds each HTTP fetch.
	FetchTimeout time.Duration `json:"fetch_timeout"`
	// Headers are added to HTTP fetches, each "Name: value".
	Headers []string `json:"-"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer"; it is
	// read at every fetch, so a rotated token is picked up.
	BearerTokenFile string `json:"bearer_token_file,omitempty"`
	// MaxBytes bounds the source's size (all files of a directory).
	MaxBytes int64 `json:"max_bytes"`

	// Once runs the pipeline once, without reloading, and returns: exit 0
	// when the destination is in step, non-zero otherwise.
	Once bool `json:"once"`

	// Client makes HTTP fetches and reloads (nil: a client with the
	// timeouts above).
	Client *http.Client `json:"-"`
	// Logger logs outside Run (nil: slog.Default()); under Run the host's
	// logger is used.
	Logger *slog.Logger `json:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		FileMode:        0o644,
		ValidateTimeout: 30 * time.Second,
		Signal:          "HUP",
		ReloadMethod:    http.MethodPost,
		ReloadRetries:   3,
		ReloadTimeout:   10 * time.Second,
		Debounce:        250 * time.Millisecond,
		PollInterval:    10 * time.Second,
		FetchTimeout:    10 * time.Second,
		MaxBytes:        16 << 20,
	}
}

// RegisterFlags adds config-sync's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Source, "source", c.Source, "where the config comes from: a file, a directory (e.g. a ConfigMap volume) or an http(s) `URL`")
	fs.StringVar(&c.Dest, "dest", c.Dest, "the `file` to keep in step (for a directory source without --template: a directory, existing or written with a trailing slash to be created)")
	fs.StringVar(&c.Template, "template", c.Template, "render this text/template `file` with the source's data (.Data, .Files, .Source) into --dest")
	fs.Var((*modeValue)(&c.FileMode), "file-mode", "permission `bits` of published files, octal")
	fs.StringVar(&c.ValidateCmd, "validate-cmd", c.ValidateCmd, "check the staged file with this `command` before publishing; {} is its path (also $PODKIT_STAGED_FILE); non-zero rejects it")
	fs.DurationVar(&c.ValidateTimeout, "validate-timeout", c.ValidateTimeout, "how long --validate-cmd may run")
	fs.StringVar(&c.Signal, "signal", c.Signal, "signal `name` sent to --process-name / --pid-file after a publish, e.g. HUP, USR1")
	fs.StringVar(&c.ProcessName, "process-name", c.ProcessName, "signal the processes with this `name` (/proc/PID/comm or argv[0]; needs a shared PID namespace across containers)")
	fs.StringVar(&c.PIDFile, "pid-file", c.PIDFile, "signal the PID in this `file`")
	fs.StringVar(&c.ReloadURL, "reload-url", c.ReloadURL, "request this `URL` after a publish to make the app reload")
	fs.StringVar(&c.ReloadMethod, "reload-method", c.ReloadMethod, "HTTP method for --reload-url")
	fs.IntVar(&c.ReloadExpectStatus, "reload-expect-status", c.ReloadExpectStatus, "status --reload-url must answer (0: any 2xx)")
	fs.IntVar(&c.ReloadRetries, "reload-retries", c.ReloadRetries, "retries of a failed --reload-url request, with exponential backoff")
	fs.DurationVar(&c.ReloadTimeout, "reload-timeout", c.ReloadTimeout, "timeout of each --reload-url request")
	fs.DurationVar(&c.Debounce, "debounce", c.Debounce, "wait for this much quiet after a change before syncing")
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "poll the source this often (HTTP: the period; files: a safety net beside inotify)")
	fs.DurationVar(&c.FetchTimeout, "fetch-timeout", c.FetchTimeout, "timeout of each HTTP fetch")
	fs.Var((*cli.StringList)(&c.Headers), "header", "add this `Name: value` header to HTTP fetches (repeatable)")
	fs.StringVar(&c.BearerTokenFile, "bearer-token-file", c.BearerTokenFile, "send the token in this `file` as Authorization: Bearer on HTTP fetches")
	fs.Int64Var(&c.MaxBytes, "max-bytes", c.MaxBytes, "largest source accepted, in bytes")
	fs.BoolVar(&c.Once, "once", c.Once, "sync once without reloading and exit (0: in step; non-zero: failed), for an init container")
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Source == "":
		errs = append(errs, errors.New("--source: required (a file, a directory or an http(s) URL)"))
	case isURL(c.Source):
		u, err := url.Parse(c.Source)
		if err != nil {
			errs = append(errs, fmt.Errorf("--source %q: %v", container.RedactURL(c.Source), err))
		} else if u.Host == "" {
			errs = append(errs, fmt.Errorf("--source %q: missing host", container.RedactURL(c.Source)))
		} else if strings.HasSuffix(u.Host, ":") {
			errs = append(errs, fmt.Errorf("--source %q: empty port", container.RedactURL(c.Source)))
		}
	case strings.Contains(c.Source, "://"):
		errs = append(errs, fmt.Errorf("--source %q: unknown scheme (want a path, http:// or https://)", container.RedactURL(c.Source)))
	}
	if c.Dest == "" {
		errs = append(errs, errors.New("--dest: required (the file to keep in step)"))
	} else if !isURL(c.Source) && c.Source != "" && filepath.Clean(c.Source) == filepath.Clean(c.Dest) {
		errs = append(errs, fmt.Errorf("--dest %q: is the same path as --source", c.Dest))
	}
	if err := c.checkDestShape(); err != nil {
		errs = append(errs, err)
	}
	if c.FileMode&^fs.ModePerm != 0 || c.FileMode == 0 {
		errs = append(errs, fmt.Errorf("--file-mode: %#o is not a permission from 0001 to 0777", uint32(c.FileMode)))
	}
	if c.ValidateCmd != "" {
		if words, err := splitWords(c.ValidateCmd); err != nil {
			errs = append(errs, fmt.Errorf("--validate-cmd: %w", err))
		} else if len(words) == 0 {
			errs = append(errs, errors.New("--validate-cmd: no command in it"))
		} else if !strings.Contains(words[0], "{}") {
			// Found now, not at the first sync that needs it.
			if _, err := exec.LookPath(words[0]); err != nil {
				var ee *exec.Error
				if errors.As(err, &ee) {
					err = ee.Err
				}
				errs = append(errs, fmt.Errorf("--validate-cmd: %q cannot be run: %v", words[0], err))
			}
		}
	}
	if c.ValidateTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--validate-timeout: %s must be positive", c.ValidateTimeout))
	}
	if _, err := parseSignal(c.Signal); err != nil {
		errs = append(errs, fmt.Errorf("--signal: %w", err))
	}
	if c.ProcessName != "" && c.PIDFile != "" {
		errs = append(errs, errors.New("--process-name and --pid-file: give one or the other"))
	}
	if strings.ContainsRune(c.ProcessName, 0) {
		errs = append(errs, errors.New("--process-name: contains a NUL byte"))
	}
	if c.ReloadURL != "" {
		u, err := url.Parse(c.ReloadURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--reload-url %q: %v", container.RedactURL(c.ReloadURL), err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("--reload-url %q: unknown scheme %q (want http or https)", container.RedactURL(c.ReloadURL), u.Scheme))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("--reload-url %q: missing host", container.RedactURL(c.ReloadURL)))
		case strings.HasSuffix(u.Host, ":"):
			errs = append(errs, fmt.Errorf("--reload-url %q: empty port", container.RedactURL(c.ReloadURL)))
		}
	}
	if !validMethod(c.ReloadMethod) {
		errs = append(errs, fmt.Errorf("--reload-method: %q is not an HTTP method", c.ReloadMethod))
	}
	if c.ReloadExpectStatus != 0 && (c.ReloadExpectStatus < 100 || c.ReloadExpectStatus > 599) {
		errs = append(errs, fmt.Errorf("--reload-expect-status: %d is not 0 or an HTTP status from 100 to 599", c.ReloadExpectStatus))
	}
	if c.ReloadRetries < 0 {
		errs = append(errs, fmt.Errorf("--reload-retries: %d is negative", c.ReloadRetries))
	}
	if c.ReloadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--reload-timeout: %s must be positive", c.ReloadTimeout))
	}
	if c.Debounce < 0 {
		errs = append(errs, fmt.Errorf("--debounce: %s is negative", c.Debounce))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("--poll-interval: %s must be positive", c.PollInterval))
	}
	if c.FetchTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--fetch-timeout: %s must be positive", c.FetchTimeout))
	}
	for _, h := range c.Headers {
		if _, _, err := parseHeader(h); err != nil {
			errs = append(errs, fmt.Errorf("--header: %w", err))
		}
	}
	if c.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("--max-bytes: %d must be positive", c.MaxBytes))
	}
	if (len(c.Headers) > 0 || c.BearerTokenFile != "") && !isURL(c.Source) && c.Source != "" {
		errs = append(errs, errors.New("--header and --bearer-token-file: only apply to an http(s) --source"))
	}
	return errors.Join(errs...)
}

// checkDestShape checks, as far as can be told at start, that --dest is
// what the output needs: a directory for a directory source without
// --template, one file otherwise. A source that does not exist yet is
// checked at every sync instead.
func (c Config) checkDestShape() error {
	if c.Dest == "" || c.Source == "" {
		return nil
	}
	if isURL(c.Source) || c.Template != "" {
		return destShape(c.Dest, c.Source, false)
	}
	fi, err := os.Stat(c.Source)
	if err != nil {
		return nil
	}
	return destShape(c.Dest, c.Source, fi.IsDir())
}

// destShape reports a --dest that cannot hold the output: a directory
// output (a directory source) needs a directory, existing or spelled with
// a trailing slash (then created), so that a path meant as a file never
// becomes a directory; a one-file output needs a path that is not a
// directory.
func destShape(dest, source string, dir bool) error {
	fi, err := os.Stat(dest)
	exists := err == nil
	switch {
	case dir && exists && !fi.IsDir():
		return fmt.Errorf("--dest %s is a file, but --source %s is a directory, whose files are published into a directory --dest (or add --template to render them into one file)", dest, source)
	case dir && !exists && !strings.HasSuffix(dest, "/"):
		return fmt.Errorf("--dest %s does not exist, and --source %s is a directory, whose files are published into a directory --dest: write %q to have it created, add --template to render them into one file, or name one file of the source as --source", dest, source, dest+"/")
	case !dir && exists && fi.IsDir():
		return fmt.Errorf("--dest %s is a directory, but the output is one file: name the file, e.g. --dest %s", dest, filepath.Join(dest, filepath.Base(strings.TrimSuffix(source, "/"))))
	case !dir && strings.HasSuffix(dest, "/"):
		return fmt.Errorf("--dest %s ends with a slash, but the output is one file: name the file", dest)
	}
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < '!' || r > '~' || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

// modeValue is an octal file-mode flag.
type modeValue fs.FileMode

func (m *modeValue) String() string { return fmt.Sprintf("%#o", uint32(*m)) }

func (m *modeValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return errors.New("want an octal mode such as 0644")
	}
	*m = modeValue(n)
	return nil
}

// Syncer keeps Dest in step with Source.
type Syncer struct {
	cfg      Config
	src      source
	reloader []reloader
	m        *metrics
	log      *slog.Logger

	mu         sync.Mutex // one sync at a time
	lastNames  []string   // directory destinations: names published last time, for pruning
	manifestOK bool       // the manifest on disk lists lastNames
	lastErr    atomic.Pointer[errHolder]
	rejected   *rejection // the last version validation or the app refused
	// retryRejected: the next sync tries a rejected version again (SIGHUP).
	retryRejected atomic.Bool
}

var _ container.Component = (*Syncer)(nil)

// New validates cfg and returns a Syncer. The template, if any, must parse.
func New(cfg Config) (*Syncer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Syncer{cfg: cfg, m: newMetrics(), log: logger.With("component", "config-sync")}
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
	}
	if isURL(cfg.Source) {
		s.src = &httpSource{url: cfg.Source, client: client, timeout: cfg.FetchTimeout, headers: cfg.Headers, tokenFile: cfg.BearerTokenFile, max: cfg.MaxBytes}
	} else {
		s.src = &pathSource{path: cfg.Source, max: cfg.MaxBytes}
	}
	if cfg.Template != "" {
		if _, err := loadTemplate(cfg.Template); err != nil {
			return nil, fmt.Errorf("--template: %w", err)
		}
	}
	if cfg.ProcessName != "" || cfg.PIDFile != "" {
		sig, _ := parseSignal(cfg.Signal) // validated
		s.reloader = append(s.reloader, &signalReloader{sig: sig, sigName: cfg.Signal, name: cfg.ProcessName, pidFile: cfg.PIDFile, self: os.Getpid()})
	}
	if cfg.ReloadURL != "" {
		s.reloader = append(s.reloader, &httpReloader{url: cfg.ReloadURL, method: cfg.ReloadMethod, expect: cfg.ReloadExpectStatus, retries: cfg.ReloadRetries, timeout: cfg.ReloadTimeout, client: client})
	}
	return s, nil
}

// Command is the `podkit config-sync` subcommand. With --once it opens
// no admin listener unless --admin-addr (or PODKIT_ADMIN_ADDR) is given:
// an init container serves no probes and is done in a moment, and must not
// fail because the default admin port is taken.
func Command() cli.Command {
	return container.InvocationCommand("config-sync",
		"keep a config file in step with a file, directory or URL: validate, publish atomically, reload the app (signal or HTTP)",
		"--source PATH|URL --dest PATH [--template FILE] [--validate-cmd CMD] [--process-name NAME|--pid-file FILE] [--reload-url URL] [--once] [flags]",
		func(fs *flag.FlagSet) func(*container.Invocation) (container.Component, error) {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(in *container.Invocation) (container.Component, error) {
				if err := container.NoArgs(in.Args); err != nil {
					return nil, err
				}
				if cfg.Once {
					in.AdminOnlyIfGiven()
				}
				return New(cfg)
			}
		})
}

// Name implements container.Component.
func (s *Syncer) Name() string { return "config-sync" }

// EffectiveConfig implements container.Configured: URLs are redacted and
// header values hidden.
func (s *Syncer) EffectiveConfig() any {
	type view struct {
		Config
		Source    string   `json:"source"`
		ReloadURL string   `json:"reload_url,omitempty"`
		FileMode  string   `json:"file_mode"`
		Headers   []string `json:"headers,omitempty"`
	}
	c := s.cfg
	c.Headers, c.Client, c.Logger = nil, nil, nil
	v := view{Config: c, Source: s.cfg.Source, ReloadURL: s.cfg.ReloadURL, FileMode: fmt.Sprintf("%#o", uint32(s.cfg.FileMode))}
	if isURL(v.Source) {
		v.Source = container.RedactURL(v.Source)
	}
	if v.ReloadURL != "" {
		v.ReloadURL = container.RedactURL(v.ReloadURL)
	}
	for _, h := range s.cfg.Headers {
		name, _, _ := parseHeader(h)
		v.Headers = append(v.Headers, name+": "+container.Secret("x").String())
	}
	return v
}
