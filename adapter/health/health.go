// Package health is the adapter pattern's health example: it turns a
// database's own health — a query answered correctly, quickly, by a server
// whose replication is not too far behind — into HTTP endpoints that
// Kubernetes probes, load balancers and Compose healthchecks understand
// (anchors: Patroni's REST API and the mariadb-healthcheck script).
//
// The check runs in the background every --period and is cached, so a
// probe never waits on the database. On --listen:
//
//   - GET /livez: the adapter works (its checker is running);
//   - GET /readyz: the last check passed within its period (and the
//     replication lag is under ?lag= or --max-lag);
//   - GET /startupz: a first check has passed.
//
// Each answers with a small JSON body (the last result, its latency, error
// and time); ?verbose adds the configuration and the recent history. They
// are served through the container's API security: with tokens or client
// certificates configured, each needs the probe role.
package health

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/secretfile"
)

// DefaultListen is the default --listen address: Patroni's REST API port,
// on loopback. The kubelet probes the pod IP, so a Kubernetes manifest
// gives --listen :8008 with --insecure-listen or TLS (see docs/health.md).
const DefaultListen = "127.0.0.1:8008"

// Config configures the health adapter.
type Config struct {
	Listen   string       `json:"listen"`
	Listener net.Listener `json:"-"` // if set, used instead of listening on Listen

	// Exactly one target.
	MySQL    string `json:"mysql,omitempty"`    // user@tcp(host:port)/db
	Postgres string `json:"postgres,omitempty"` // postgres://user@host:port/db?sslmode=disable
	Redis    string `json:"redis,omitempty"`    // host:port, redis://[user@]host:port/db, unix:///path

	PasswordFile string `json:"password_file,omitempty"`

	// Query is the SQL statement, or the Redis command (words separated by
	// spaces); default SELECT 1, or PING.
	Query string `json:"query"`
	// Expect, if set, must match the first column of the first row (or the
	// Redis reply): a literal value, or /regexp/.
	Expect string `json:"expect,omitempty"`

	Period     time.Duration `json:"period"`      // between checks
	Timeout    time.Duration `json:"timeout"`     // bound on one check
	MaxLatency time.Duration `json:"max_latency"` // a slower check fails; 0: no limit
	MaxLag     time.Duration `json:"max_lag"`     // replication lag /readyz allows without ?lag=; 0: no limit

	// API secures --listen: TLS, client certificates, tokens with the
	// probe role (container.APISecurity).
	API container.APISecurity `json:"api"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Listen: DefaultListen, Period: 5 * time.Second, Timeout: 2 * time.Second}
}

// RegisterFlags adds the adapter's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "serve /livez, /readyz and /startupz on this `address` (another than loopback needs --tls-cert, --token-file or --insecure-listen)")
	fs.StringVar(&c.MySQL, "mysql", c.MySQL, "check MySQL/MariaDB at this `DSN`: user@tcp(host:port)/db")
	fs.StringVar(&c.Postgres, "postgres", c.Postgres, "check PostgreSQL at this `DSN`: postgres://user@host:port/db?sslmode=disable")
	fs.StringVar(&c.Redis, "redis", c.Redis, "check Redis at this `address`: host:port, redis://[user@]host:port/db or unix:///path")
	fs.StringVar(&c.PasswordFile, "password-file", c.PasswordFile, "read the database password from this `file`")
	fs.StringVar(&c.Query, "query", c.Query, "the SQL `query` (default SELECT 1) or Redis command (default PING) to run")
	fs.StringVar(&c.Expect, "expect", c.Expect, "the first value of the answer must equal this `value`, or match /regexp/")
	fs.DurationVar(&c.Period, "period", c.Period, "time between checks")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound on one check (connect and query)")
	fs.DurationVar(&c.MaxLatency, "max-latency", c.MaxLatency, "a check slower than this fails (0: no limit)")
	fs.DurationVar(&c.MaxLag, "max-lag", c.MaxLag, "replication lag above which /readyz fails when the probe gives no ?lag= (0: no limit)")
	c.API.RegisterFlags(fs)
}

// kind returns the target's kind and address as given.
func (c Config) kind() (string, string) {
	switch {
	case c.MySQL != "":
		return dbwire.MySQL, c.MySQL
	case c.Postgres != "":
		return dbwire.Postgres, c.Postgres
	case c.Redis != "":
		return "redis", c.Redis
	}
	return "", ""
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	addr := "" // the listen rule applies to --listen, not to a given Listener
	if c.Listener == nil {
		if err := container.ValidateListenAddr(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen: %w", err))
		} else {
			addr = c.Listen
		}
	}
	if err := c.API.Validate("--listen", addr, apiAccess()); err != nil {
		errs = append(errs, err)
	}
	n := 0
	for _, s := range []string{c.MySQL, c.Postgres, c.Redis} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		errs = append(errs, errors.New("no target: give one of --mysql, --postgres or --redis"))
	case n > 1:
		errs = append(errs, errors.New("--mysql, --postgres and --redis: give only one (run one health adapter per database)"))
	}
	if c.MySQL != "" {
		if _, err := dbwire.ParseMySQL(c.MySQL); err != nil {
			errs = append(errs, fmt.Errorf("--mysql: %w", err))
		}
	}
	if c.Postgres != "" {
		if _, err := dbwire.ParsePostgres(c.Postgres); err != nil {
			errs = append(errs, fmt.Errorf("--postgres: %w", err))
		}
	}
	if c.Redis != "" {
		if _, err := dbwire.ParseRedisTarget(c.Redis); err != nil {
			errs = append(errs, fmt.Errorf("--redis: %w", err))
		}
		if c.Query != "" && len(strings.Fields(c.Query)) == 0 {
			errs = append(errs, errors.New("--query: empty Redis command"))
		}
	}
	if c.PasswordFile != "" {
		if _, err := secretfile.Read(c.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("--password-file: %w", err))
		}
	}
	if _, err := parseExpect(c.Expect); err != nil {
		errs = append(errs, fmt.Errorf("--expect: %w", err))
	}
	if c.Period <= 0 {
		errs = append(errs, fmt.Errorf("--period: %s must be positive", c.Period))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %s must be positive", c.Timeout))
	} else if c.Period > 0 && c.Timeout > c.Period {
		errs = append(errs, fmt.Errorf("--timeout: %s is longer than --period %s", c.Timeout, c.Period))
	}
	if c.MaxLatency < 0 {
		errs = append(errs, fmt.Errorf("--max-latency: %s is negative", c.MaxLatency))
	}
	if c.MaxLag < 0 {
		errs = append(errs, fmt.Errorf("--max-lag: %s is negative", c.MaxLag))
	}
	return errors.Join(errs...)
}

// expectation matches a check's answer.
type expectation struct {
	literal string
	re      *regexp.Regexp
	set     bool
}

// parseExpect parses --expect: "" (anything), /regexp/, or a literal.
func parseExpect(s string) (expectation, error) {
	if s == "" {
		return expectation{}, nil
	}
	if len(s) >= 2 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
		re, err := regexp.Compile(s[1 : len(s)-1])
		if err != nil {
			return expectation{}, fmt.Errorf("bad regexp %s: %v", s, err)
		}
		return expectation{re: re, set: true}, nil
	}
	return expectation{literal: s, set: true}, nil
}

func (e expectation) match(v string) bool {
	switch {
	case !e.set:
		return true
	case e.re != nil:
		return e.re.MatchString(v)
	}
	return v == e.literal
}

func (e expectation) String() string {
	if e.re != nil {
		return "/" + e.re.String() + "/"
	}
	return fmt.Sprintf("%q", e.literal)
}

// Adapter is the health adapter.
type Adapter struct {
	cfg    Config
	access container.Access // who may call what on --listen
	chk    *checker

	addr container.BoundAddr // the health endpoints', once Run listens
}

var _ container.Component = (*Adapter)(nil)

// Addr returns the bound address of the health endpoints' listener
// (--listen, or Config.Listener), or nil before Run listens.
func (a *Adapter) Addr() net.Addr { return a.addr.Addr() }

// New validates cfg and returns an Adapter.
func New(cfg Config) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Query == "" {
		cfg.Query = "SELECT 1"
		if cfg.Redis != "" {
			cfg.Query = "PING"
		}
	}
	return &Adapter{cfg: cfg, access: apiAccess()}, nil
}

// Command is the `podkit health` subcommand.
func Command() cli.Command {
	return container.FlagCommand("health",
		"check a database in the background and serve its health on /livez /readyz /startupz for probes",
		"--mysql DSN | --postgres DSN | --redis ADDR [--query Q] [--expect V|/RE/] [--listen 127.0.0.1:8008] [--insecure-listen | --tls-cert F --tls-key F] [flags]",
		DefaultConfig, New)
}

// Name implements container.Component.
func (a *Adapter) Name() string { return "health" }

// EffectiveConfig implements container.Configured: DSNs without passwords.
func (a *Adapter) EffectiveConfig() any {
	c := a.cfg
	if c.MySQL != "" {
		if t, err := dbwire.ParseMySQL(c.MySQL); err == nil {
			c.MySQL = t.Redacted
		}
	}
	if c.Postgres != "" {
		if t, err := dbwire.ParsePostgres(c.Postgres); err == nil {
			c.Postgres = t.Redacted
		}
	}
	return struct {
		Config
		Period     string `json:"period"`
		Timeout    string `json:"timeout"`
		MaxLatency string `json:"max_latency"`
		MaxLag     string `json:"max_lag"`
	}{c, c.Period.String(), c.Timeout.String(), c.MaxLatency.String(), c.MaxLag.String()}
}

// Run implements container.Component: it checks the database every
// --period and serves the cached result on --listen until ctx ends.
func (a *Adapter) Run(ctx context.Context, h *container.Host) error {
	chk, err := newChecker(a.cfg, h.Logger())
	if err != nil {
		return err
	}
	defer chk.close()
	a.chk = chk
	if err := chk.register(h.Registerer()); err != nil {
		return err
	}
	api, err := container.OpenAPI(ctx, h, container.APIConfig{
		Flag: "--listen", Addr: a.cfg.Listen, Listener: a.cfg.Listener,
		Security: a.cfg.API, Access: a.access,
	})
	if err != nil {
		return err
	}
	a.addr.Set(api.Listener())
	checkCtx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		chk.loop(checkCtx)
	}()
	srv := &http.Server{Handler: chk.handler(), ReadHeaderTimeout: 5 * time.Second}
	h.Logger().Info("serving health", "listen", api.Addr().String(), "tls", a.cfg.API.TLS(), "target", chk.targetName, "query", a.cfg.Query, "period", a.cfg.Period)
	err = api.Serve(ctx, srv)
	stop()
	<-done
	return err
}
