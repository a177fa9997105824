// Package metrics is the adapter pattern's monitoring example: it reads an
// application's native status — nginx's stub_status, Redis INFO and
// SLOWLOG, MySQL/MariaDB global status and variables, PostgreSQL's
// pg_stat_database and replication state — and serves it as Prometheus
// metrics under the names the anchor exporters use
// (nginx-prometheus-exporter, redis_exporter, mysqld_exporter,
// postgres_exporter), so existing dashboards and alerts work unchanged.
//
// Every target is scraped synchronously when /metrics is scraped, with a
// timeout, into const metrics. A target that cannot be read reports
// <source>_up 0 (pg_up for PostgreSQL) while the scrape itself still
// succeeds; a reachable target whose server refuses one query (a missing
// privilege) fails that collector alone, as mysqld_exporter does
// (podkit_metrics_collector_success{collector} 0, and the anchors'
// mysql_exporter_collector_success / pg_scrape_collector_success). Each
// failure is logged and counted in
// podkit_metrics_scrape_errors_total{source,target,reason}. Several targets
// of one kind are told apart by an address label: addr (nginx, Redis,
// MySQL, as redis_exporter's multi-target label) or server (PostgreSQL, as
// postgres_exporter's).
package metrics

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/secretfile"
)

// DefaultListen is the default --listen address: nginx-prometheus-exporter's
// port, on loopback. Another host (Prometheus) reaches it once --listen
// names another address, which needs TLS, tokens or --insecure-listen
// (see APISecurity).
const DefaultListen = "127.0.0.1:9113"

// Config configures the metrics adapter.
type Config struct {
	Listen string `json:"listen"`
	// Listener, if set, is used instead of listening on Listen.
	Listener net.Listener `json:"-"`

	Nginx    []string `json:"nginx"`    // stub_status URLs
	Redis    []string `json:"redis"`    // host:port, redis://host:port/db, unix:///path
	MySQL    []string `json:"mysql"`    // go-sql-driver DSNs, user@tcp(host:port)/db
	Postgres []string `json:"postgres"` // postgres://user@host:port/db?sslmode=disable or key=value

	RedisPasswordFile    string `json:"redis_password_file"`
	MySQLPasswordFile    string `json:"mysql_password_file"`
	PostgresPasswordFile string `json:"postgres_password_file"`

	// Timeout bounds the scrape of each target.
	Timeout time.Duration `json:"timeout"`

	// HTTPClient fetches stub_status pages; nil means a client of its own.
	HTTPClient *http.Client `json:"-"`

	// API secures --listen: TLS, client certificates, tokens with the
	// scraper role (container.APISecurity).
	API container.APISecurity `json:"api"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Listen: DefaultListen, Timeout: 5 * time.Second}
}

// RegisterFlags adds the adapter's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "serve /metrics on this `address` (another than loopback needs --tls-cert, --token-file or --insecure-listen)")
	fs.Var((*cli.StringList)(&c.Nginx), "nginx", "scrape nginx's stub_status at this `URL`; without a scheme, http:// (repeatable)")
	fs.Var((*cli.StringList)(&c.Redis), "redis", "scrape Redis at this `address`: host:port, redis://[user@]host:port/db or unix:///path (repeatable)")
	fs.Var((*cli.StringList)(&c.MySQL), "mysql", "scrape MySQL/MariaDB at this `DSN`: user@tcp(host:port)/db (repeatable)")
	fs.Var((*cli.StringList)(&c.Postgres), "postgres", "scrape PostgreSQL at this `DSN`: postgres://user@host:port/db?sslmode=disable (repeatable)")
	fs.StringVar(&c.RedisPasswordFile, "redis-password-file", c.RedisPasswordFile, "read the Redis password from this `file`")
	fs.StringVar(&c.MySQLPasswordFile, "mysql-password-file", c.MySQLPasswordFile, "read the MySQL password from this `file`")
	fs.StringVar(&c.PostgresPasswordFile, "postgres-password-file", c.PostgresPasswordFile, "read the PostgreSQL password from this `file`")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound on scraping each target")
	c.API.RegisterFlags(fs)
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
	if len(c.Nginx)+len(c.Redis)+len(c.MySQL)+len(c.Postgres) == 0 {
		errs = append(errs, errors.New("no target: give at least one of --nginx, --redis, --mysql, --postgres"))
	}
	// Targets are told apart by address: the same server twice would
	// export the same series twice.
	seen := map[string]bool{}
	dup := func(flag, addr string) {
		if seen[flag+" "+addr] {
			errs = append(errs, fmt.Errorf("%s: %s is given twice (the address labels the series; one target per server)", flag, addr))
		}
		seen[flag+" "+addr] = true
	}
	for _, u := range c.Nginx {
		if pu, err := parseNginxURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--nginx %q: %w", u, err))
		} else {
			dup("--nginx", pu.Host)
		}
	}
	for _, a := range c.Redis {
		if t, err := dbwire.ParseRedisTarget(a); err != nil {
			errs = append(errs, fmt.Errorf("--redis: %w", err))
		} else {
			dup("--redis", t.String())
		}
	}
	for _, d := range c.MySQL {
		if t, err := dbwire.ParseMySQL(d); err != nil {
			errs = append(errs, fmt.Errorf("--mysql %s: %w", redactDSN(d), err))
		} else {
			dup("--mysql", t.Addr)
		}
	}
	for _, d := range c.Postgres {
		if t, err := dbwire.ParsePostgres(d); err != nil {
			errs = append(errs, fmt.Errorf("--postgres %s: %w", redactDSN(d), err))
		} else {
			dup("--postgres", t.Addr)
		}
	}
	for flag, f := range map[string]string{
		"--redis-password-file": c.RedisPasswordFile, "--mysql-password-file": c.MySQLPasswordFile,
		"--postgres-password-file": c.PostgresPasswordFile,
	} {
		if f == "" {
			continue
		}
		if _, err := secretfile.Read(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %s must be positive", c.Timeout))
	}
	return errors.Join(errs...)
}

// redactDSN quotes a DSN for an error message without its password.
func redactDSN(d string) string {
	if strings.Contains(d, "://") {
		return fmt.Sprintf("%q", container.RedactURL(d))
	}
	if at := strings.LastIndex(d, "@"); at >= 0 {
		if colon := strings.Index(d[:at], ":"); colon >= 0 {
			return fmt.Sprintf("%q", d[:colon]+":[redacted]"+d[at:])
		}
	}
	if strings.Contains(d, "password") {
		return "(DSN with a password)"
	}
	return fmt.Sprintf("%q", d)
}

// parseNginxURL parses a --nginx URL. One without a scheme
// (127.0.0.1:8080/stub_status) is taken as http://, as curl takes it.
func parseNginxURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("missing host")
	}
	if u.User != nil {
		return nil, errors.New("user info in the URL is not supported")
	}
	return u, nil
}

// Adapter is the metrics adapter.
type Adapter struct {
	cfg     Config
	access  container.Access // who may call what on --listen
	targets []*target
	sh      *shared

	addr container.BoundAddr // /metrics', once Run listens
}

var _ container.Component = (*Adapter)(nil)

// Addr returns the bound address of the /metrics listener (--listen, or
// Config.Listener), or nil before Run listens.
func (a *Adapter) Addr() net.Addr { return a.addr.Addr() }

// New validates cfg and returns an Adapter.
func New(cfg Config) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Adapter{cfg: cfg, access: apiAccess()}, nil
}

// Command is the `podkit metrics` subcommand.
func Command() cli.Command {
	return container.FlagCommand("metrics",
		"serve nginx, Redis, MySQL and PostgreSQL status as Prometheus metrics under the anchor exporters' names",
		"--nginx URL | --redis ADDR | --mysql DSN | --postgres DSN ... [--listen 127.0.0.1:9113] [--token-file F] [--tls-cert F --tls-key F] [flags]",
		DefaultConfig, New)
}

// Name implements container.Component.
func (a *Adapter) Name() string { return "metrics" }

// effectiveConfig is what GET /info shows: DSNs without passwords.
type effectiveConfig struct {
	Listen               string   `json:"listen"`
	Nginx                []string `json:"nginx"`
	Redis                []string `json:"redis"`
	MySQL                []string `json:"mysql"`
	Postgres             []string `json:"postgres"`
	RedisPasswordFile    string   `json:"redis_password_file,omitempty"`
	MySQLPasswordFile    string   `json:"mysql_password_file,omitempty"`
	PostgresPasswordFile string   `json:"postgres_password_file,omitempty"`
	Timeout              string   `json:"timeout"`

	API container.APISecurity `json:"api"`
}

// EffectiveConfig implements container.Configured.
func (a *Adapter) EffectiveConfig() any {
	ec := effectiveConfig{
		Listen: a.cfg.Listen, Redis: a.cfg.Redis,
		RedisPasswordFile: a.cfg.RedisPasswordFile, MySQLPasswordFile: a.cfg.MySQLPasswordFile,
		PostgresPasswordFile: a.cfg.PostgresPasswordFile, Timeout: a.cfg.Timeout.String(),
		API: a.cfg.API,
	}
	for _, u := range a.cfg.Nginx {
		if pu, err := parseNginxURL(u); err == nil {
			ec.Nginx = append(ec.Nginx, pu.String())
		}
	}
	for _, d := range a.cfg.MySQL {
		if t, err := dbwire.ParseMySQL(d); err == nil {
			ec.MySQL = append(ec.MySQL, t.Redacted)
		}
	}
	for _, d := range a.cfg.Postgres {
		if t, err := dbwire.ParsePostgres(d); err == nil {
			ec.Postgres = append(ec.Postgres, t.Redacted)
		}
	}
	return ec
}

// Collectors builds one collector per target and registers them, with the
// adapter's own metrics, on reg. Run calls it; it is exported for
// embedding the adapter's collectors in another registry.
func (a *Adapter) Collectors(reg prometheus.Registerer, h *container.Host) error {
	log := h.Logger()
	a.sh = newShared(log, a.cfg.Timeout)
	password := func(file string) string {
		if file == "" {
			return ""
		}
		pw, _ := secretfile.Read(file) // validated
		return pw
	}
	client := a.cfg.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2
		client = &http.Client{Transport: tr}
	}
	for _, u := range a.cfg.Nginx {
		pu, _ := parseNginxURL(u)
		a.targets = append(a.targets, newTarget(srcNginx, pu.Host, &nginxScraper{url: pu.String(), client: client}, a.sh))
	}
	redisPW := password(a.cfg.RedisPasswordFile)
	for _, s := range a.cfg.Redis {
		t, _ := dbwire.ParseRedisTarget(s)
		a.targets = append(a.targets, newTarget(srcRedis, t.String(), &redisScraper{target: t, password: redisPW}, a.sh))
	}
	for _, spec := range []struct {
		src  source
		dsns []string
		pw   string
	}{
		{srcMySQL, a.cfg.MySQL, password(a.cfg.MySQLPasswordFile)},
		{srcPostgres, a.cfg.Postgres, password(a.cfg.PostgresPasswordFile)},
	} {
		for _, d := range spec.dsns {
			var t dbwire.SQLTarget
			if spec.src.name == "mysql" {
				t, _ = dbwire.ParseMySQL(d)
			} else {
				t, _ = dbwire.ParsePostgres(d)
			}
			db, err := dbwire.Open(t, spec.pw, log)
			if err != nil {
				return fmt.Errorf("--%s %s: %w", spec.src.name, t.Redacted, err)
			}
			var s scraper = &mysqlScraper{db: db}
			if spec.src.name == "postgres" {
				s = &postgresScraper{db: db}
			}
			a.targets = append(a.targets, newTarget(spec.src, t.Addr, s, a.sh))
		}
	}
	for _, t := range a.targets {
		if err := reg.Register(t); err != nil {
			return fmt.Errorf("%s target %s: %w", t.src.name, t.addr, err)
		}
	}
	return nil
}

// Run implements container.Component: it serves /metrics on --listen until
// ctx ends, through the container's API security (TLS, client
// certificates, tokens; the listen rule).
func (a *Adapter) Run(ctx context.Context, h *container.Host) error {
	if err := a.Collectors(h.Registerer(), h); err != nil {
		return err
	}
	defer func() {
		for _, t := range a.targets {
			t.s.close()
		}
	}()
	api, err := container.OpenAPI(ctx, h, container.APIConfig{
		Flag: "--listen", Addr: a.cfg.Listen, Listener: a.cfg.Listener,
		Security: a.cfg.API, Access: a.access,
	})
	if err != nil {
		return err
	}
	a.addr.Set(api.Listener())
	srv := &http.Server{Handler: a.Handler(h.Gatherer()), ReadHeaderTimeout: 10 * time.Second}
	h.Logger().Info("serving metrics", "listen", api.Addr().String(), "tls", a.cfg.API.TLS(), "targets", len(a.targets))
	return api.Serve(ctx, srv)
}

// roleScraper is the one role of the --listen API: it may read /metrics.
const roleScraper = "scraper"

// apiAccess declares who may call what on --listen, beside the routes
// Handler serves: GET /metrics needs the scraper role; the index page on
// /, a link to /metrics and nothing else, is public. Any other path needs
// the role too, so a caller without one learns nothing, not even which
// paths exist.
func apiAccess() container.Access {
	return container.Access{
		Component: "metrics",
		Subsystem: "metrics",
		Roles:     []container.Role{{Name: roleScraper, Help: "read GET /metrics (Prometheus)"}},
		Need: func(r *http.Request) []string {
			if r.URL.Path == "/" {
				return nil
			}
			return []string{roleScraper}
		},
	}
}

// Handler serves /metrics from g, and an index page on /. It checks no
// credentials: Run serves it behind the API's security (apiAccess).
func (a *Adapter) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>podkit metrics</title></head><body><h1>podkit metrics</h1><p><a href="/metrics">/metrics</a></p></body></html>`+"\n")
	})
	return mux
}
