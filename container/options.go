package container

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/probe"
)

// Options are the contract's settings, common to every component.
type Options struct {
	AdminAddr    string        `json:"admin_addr"`     // admin listener; "off" disables it
	LogFormat    string        `json:"log_format"`     // json, text, or "" (text on a terminal, else json)
	LogLevel     string        `json:"log_level"`      // debug, info, warn, error
	DrainDelay   time.Duration `json:"drain_delay"`    // wait after readiness turns 503, before stopping accepting
	DrainTimeout time.Duration `json:"drain_timeout"`  // bound on finishing in-flight work
	WaitFor      []string      `json:"wait_for"`       // tcp://host:port or http(s)://url; readiness is held until each answers
	WaitTimeout  time.Duration `json:"wait_timeout"`   // 0: wait for --wait-for targets forever
	ExitWhenDone string        `json:"exit_when_done"` // a PID or a file: stop when the PID exits or the file appears

	// Set by programs, not flags.
	Logger        *slog.Logger `json:"-"` // if set, LogFormat and LogLevel are ignored
	LogOutput     io.Writer    `json:"-"` // where the logger made from LogFormat and LogLevel writes; nil: stdout
	LogAttrs      []any        `json:"-"` // attributes on every log line, the contract's own included (which instance this is)
	HandleSignals bool         `json:"-"` // react to SIGTERM and SIGINT (the CLI sets it)
	AdminListener net.Listener `json:"-"` // if set, used instead of listening on AdminAddr
}

// DefaultAdminAddr is the admin listener's default address.
const DefaultAdminAddr = "127.0.0.1:9901"

// DefaultOptions returns the contract's defaults.
func DefaultOptions() Options {
	return Options{
		AdminAddr:    DefaultAdminAddr,
		LogLevel:     "info",
		DrainDelay:   5 * time.Second,
		DrainTimeout: 30 * time.Second,
	}
}

// RegisterFlags adds the common flags to fs.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.AdminAddr, "admin-addr", o.AdminAddr, "admin listener address (/livez /readyz /healthz /metrics /info /lifecycle); \"off\" disables it")
	fs.StringVar(&o.LogFormat, "log-format", o.LogFormat, "log format: json or text (default: text on a terminal, json otherwise)")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "log level: debug, info, warn or error")
	fs.DurationVar(&o.DrainDelay, "drain-delay", o.DrainDelay, "on stop, how long to stay up not-ready before refusing new work, so endpoints notice")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "on stop, how long in-flight work may take to finish")
	fs.Var((*cli.StringList)(&o.WaitFor), "wait-for", "hold readiness until this `target` answers: tcp://host:port, http://url or https://url (repeatable)")
	fs.DurationVar(&o.WaitTimeout, "wait-timeout", o.WaitTimeout, "give up and stop if --wait-for targets have not answered by then (0: wait forever)")
	fs.StringVar(&o.ExitWhenDone, "exit-when-done", o.ExitWhenDone, "stop gracefully when this `PID|file` is done: the process exits or the file appears")
}

// Validate reports every invalid option, each naming its flag.
func (o *Options) Validate() error {
	var errs []error
	if o.AdminListener == nil && o.AdminAddr != "off" {
		if err := validateListenAddr(o.AdminAddr); err != nil {
			errs = append(errs, fmt.Errorf("--admin-addr: %w", err))
		}
	}
	if o.Logger == nil {
		switch o.LogFormat {
		case "", "json", "text":
		default:
			errs = append(errs, fmt.Errorf("--log-format: %q is not json or text", o.LogFormat))
		}
		if _, err := parseLevel(o.LogLevel); err != nil {
			errs = append(errs, fmt.Errorf("--log-level: %w", err))
		}
	}
	if o.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("--drain-delay: %s is negative", o.DrainDelay))
	}
	if o.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--drain-timeout: %s must be positive", o.DrainTimeout))
	}
	if o.WaitTimeout < 0 {
		errs = append(errs, fmt.Errorf("--wait-timeout: %s is negative", o.WaitTimeout))
	}
	if _, err := probe.ParseAll(o.WaitFor); err != nil {
		errs = append(errs, fmt.Errorf("--wait-for: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return &cli.UsageError{Msg: err.Error()}
	}
	return nil
}

// ValidateListenAddr checks a host:port listen address ("" host means all
// interfaces; the port may be 0).
func validateListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, unwrapAddrErr(err))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(strings.Trim(host, "[]")) == nil && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: bad host %q", addr, host)
	}
	return nil
}

// ValidateListenAddr checks a host:port listen address, for components'
// --listen flags.
func ValidateListenAddr(addr string) error { return validateListenAddr(addr) }

func unwrapAddrErr(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

func parsePID(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}
