package broker

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/upstream"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid broker configuration")

// Modes of an upstream.
const (
	TCP  = "tcp"
	HTTP = "http"
)

// Health check types.
const (
	CheckNone     = "none"
	CheckTCP      = "tcp"
	CheckHTTP     = "http"
	CheckRedis    = "redis"
	CheckMySQL    = "mysql"
	CheckPostgres = "postgres"
)

var checkTypes = []string{CheckNone, CheckTCP, CheckHTTP, CheckRedis, CheckMySQL, CheckPostgres}

// Upstream is one listener bound to a discovery source: what a --config
// file's upstreams entry holds, or the flags' single upstream.
type Upstream struct {
	Name   string `yaml:"name" json:"name"`
	Listen string `yaml:"listen" json:"listen"`
	Source string `yaml:"source" json:"source"`
	// Mode is tcp (any protocol, layer 4) or http (HTTP/1.1 and h2c).
	Mode    string `yaml:"mode" json:"mode"`
	Balance string `yaml:"balance" json:"balance"`
	// HashKey is what ring-hash hashes: client-ip, or header:NAME (http).
	HashKey string `yaml:"hash_key" json:"hash_key"`
	// Zone is the pod's own zone: endpoints there are preferred.
	Zone        string      `yaml:"zone" json:"zone,omitempty"`
	HealthCheck HealthCheck `yaml:"health_check" json:"health_check"`
	Outlier     Outlier     `yaml:"outlier" json:"outlier"`
	Limits      Limits      `yaml:"limits" json:"limits"`
	Timeouts    Timeouts    `yaml:"timeouts" json:"timeouts"`
	Retries     Retries     `yaml:"retries" json:"retries"`
	// TLS, when set, originates TLS to the endpoints.
	TLS *TLS `yaml:"tls" json:"tls,omitempty"`

	line int // in the file, for errors
}

// HealthCheck configures active health checks.
type HealthCheck struct {
	// Type is none, tcp, http (with Path), redis, mysql or postgres;
	// "http:PATH" sets Path too.
	Type     string        `yaml:"type" json:"type"`
	Path     string        `yaml:"path" json:"path,omitempty"`
	Interval time.Duration `yaml:"interval" json:"interval"`
	Timeout  time.Duration `yaml:"timeout" json:"timeout"`
	Rise     int           `yaml:"rise" json:"rise"`
	Fall     int           `yaml:"fall" json:"fall"`
	// Status is the range of statuses an http check accepts: "200-399",
	// or one status.
	Status string `yaml:"status" json:"status,omitempty"`
}

// Outlier configures passive ejection.
type Outlier struct {
	Failures    int           `yaml:"failures" json:"failures"`
	Ejection    time.Duration `yaml:"ejection" json:"ejection"`
	MaxEjection time.Duration `yaml:"max_ejection" json:"max_ejection"`
	MaxPercent  int           `yaml:"max_percent" json:"max_percent"`
}

// Limits are the circuit breakers (0: unlimited).
type Limits struct {
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	MaxRequests    int `yaml:"max_requests" json:"max_requests"`
	MaxPending     int `yaml:"max_pending" json:"max_pending"`
}

// Timeouts bound connects, idle connections and requests.
type Timeouts struct {
	Connect time.Duration `yaml:"connect" json:"connect"`
	// Idle: tcp, a connection with no byte either way; http, the wait
	// for a client's next request and each read or write. 0 means the
	// mode's default (5m tcp, 60s http).
	Idle time.Duration `yaml:"idle" json:"idle"`
	// Request bounds the wait for a response head (http).
	Request time.Duration `yaml:"request" json:"request"`
}

// Retries configures retries of failed requests.
type Retries struct {
	// Attempts is how many times an idempotent http request is retried
	// on another endpoint (0: never). Failed connects always move on to
	// the next endpoint.
	Attempts int `yaml:"attempts" json:"attempts"`
	// Budget caps retries at this fraction of requests.
	Budget float64 `yaml:"budget" json:"budget"`
}

// TLS are the files for TLS towards the endpoints.
type TLS struct {
	CA         string   `yaml:"ca" json:"ca,omitempty"`
	Cert       string   `yaml:"cert" json:"cert,omitempty"`
	Key        string   `yaml:"key" json:"key,omitempty"`
	ServerName string   `yaml:"server_name" json:"server_name,omitempty"`
	SANs       []string `yaml:"sans" json:"sans,omitempty"`
}

// Mode defaults of the idle timeout.
const (
	DefaultTCPIdle  = 5 * time.Minute
	DefaultHTTPIdle = 60 * time.Second
)

// DefaultUpstream returns an upstream's defaults.
func DefaultUpstream() Upstream {
	return Upstream{
		Name:    "default",
		Mode:    TCP,
		Balance: string(upstream.RoundRobin),
		HashKey: "client-ip",
		HealthCheck: HealthCheck{
			Type: CheckTCP, Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3, Status: "200-399",
		},
		Outlier:  Outlier{Failures: 5, Ejection: 30 * time.Second, MaxEjection: 5 * time.Minute, MaxPercent: 50},
		Timeouts: Timeouts{Connect: 2 * time.Second, Request: 60 * time.Second},
		Retries:  Retries{Attempts: 1, Budget: 0.2},
	}
}

// idle is the idle timeout in force.
func (u Upstream) idle() time.Duration {
	switch {
	case u.Timeouts.Idle > 0:
		return u.Timeouts.Idle
	case u.Mode == HTTP:
		return DefaultHTTPIdle
	}
	return DefaultTCPIdle
}

// hashHeader is the header ring-hash hashes, or "" for the client IP.
func (u Upstream) hashHeader() string {
	h, _ := strings.CutPrefix(u.HashKey, "header:")
	if h == u.HashKey {
		return ""
	}
	return h
}

// statusRange parses "200-399" or "204".
func statusRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, fmt.Errorf("%q is not a status or a range LO-HI within 100-599", s)
	}
	return lo, hi, nil
}

// flagNames maps the YAML keys of an upstream to the flags that set them.
var flagNames = map[string]string{
	"name": "--name", "listen": "--listen", "source": "--source", "mode": "--mode", "balance": "--balance",
	"hash_key": "--hash-key", "zone": "--zone",
	"health_check.type": "--health-check", "health_check.path": "--health-check", "health_check.interval": "--health-interval",
	"health_check.timeout": "--health-timeout", "health_check.rise": "--health-rise", "health_check.fall": "--health-fall",
	"health_check.status": "--health-status",
	"outlier.failures":    "--outlier-failures", "outlier.ejection": "--outlier-ejection",
	"outlier.max_ejection": "--outlier-max-ejection", "outlier.max_percent": "--outlier-max-percent",
	"limits.max_connections": "--max-connections", "limits.max_requests": "--max-requests", "limits.max_pending": "--max-pending",
	"timeouts.connect": "--connect-timeout", "timeouts.idle": "--idle-timeout", "timeouts.request": "--request-timeout",
	"retries.attempts": "--retries", "retries.budget": "--retry-budget",
	"tls.ca": "--upstream-ca", "tls.cert": "--upstream-cert", "tls.key": "--upstream-key",
	"tls.server_name": "--upstream-server-name", "tls.sans": "--upstream-san",
}

// validate checks an upstream; name turns a YAML key into what the error
// calls it (the flag, or the key in the file).
func (u *Upstream) validate(name func(key string) string) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name(key)}, a...)...))
	}
	if u.Name == "" || strings.ContainsAny(u.Name, " \t\r\n\"") {
		bad("name", "%q must be a non-empty name without spaces or quotes", u.Name)
	}
	if u.Listen == "" {
		bad("listen", "required: the address the application connects to, e.g. 127.0.0.1:6379")
	} else if err := container.ValidateListenAddr(u.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if u.Source == "" {
		bad("source", "required: a discovery source (%s)", strings.Join(discovery.Kinds, ", "))
	} else if _, err := discovery.Parse(u.Source, discovery.Options{}); err != nil {
		bad("source", "%v", err)
	}
	switch u.Mode {
	case TCP, HTTP:
	default:
		bad("mode", "%q is not tcp or http", u.Mode)
	}
	if _, err := upstream.ParsePolicy(u.Balance); err != nil {
		bad("balance", "%v", err)
	}
	switch h := u.hashHeader(); {
	case u.HashKey == "client-ip":
	case strings.HasPrefix(u.HashKey, "header:") && httpHeaderName(h):
		if u.Mode != HTTP {
			bad("hash_key", "%q: a header is only known in http mode", u.HashKey)
		}
	default:
		bad("hash_key", "%q is not client-ip or header:NAME", u.HashKey)
	}
	hc := &u.HealthCheck
	if t, path, ok := strings.Cut(hc.Type, ":"); ok && t == CheckHTTP {
		hc.Type, hc.Path = CheckHTTP, path
	}
	switch {
	case !slices.Contains(checkTypes, hc.Type):
		bad("health_check.type", "%q is not one of none, tcp, http:PATH, redis, mysql, postgres", hc.Type)
	case hc.Type == CheckHTTP && !strings.HasPrefix(hc.Path, "/"):
		bad("health_check.path", "an http check needs a path starting with /, e.g. http:/healthz (got %q)", hc.Path)
	case hc.Type == CheckHTTP && u.Mode != HTTP && u.TLS == nil:
		// Allowed: a tcp upstream may be an HTTP service.
	}
	if hc.Type != CheckNone {
		if hc.Interval <= 0 {
			bad("health_check.interval", "%s must be positive", hc.Interval)
		}
		if hc.Timeout <= 0 {
			bad("health_check.timeout", "%s must be positive", hc.Timeout)
		}
		if hc.Rise < 1 {
			bad("health_check.rise", "%d must be at least 1", hc.Rise)
		}
		if hc.Fall < 1 {
			bad("health_check.fall", "%d must be at least 1", hc.Fall)
		}
	}
	if _, _, err := statusRange(hc.Status); err != nil {
		bad("health_check.status", "%v", err)
	}
	o := u.Outlier
	if o.Failures < 0 {
		bad("outlier.failures", "%d must not be negative (0: off)", o.Failures)
	}
	if o.Ejection <= 0 {
		bad("outlier.ejection", "%s must be positive", o.Ejection)
	}
	if o.MaxEjection < o.Ejection {
		bad("outlier.max_ejection", "%s must be at least the ejection time %s", o.MaxEjection, o.Ejection)
	}
	if o.MaxPercent < 0 || o.MaxPercent > 100 {
		bad("outlier.max_percent", "%d is not a percentage from 0 to 100", o.MaxPercent)
	}
	for k, v := range map[string]int{"limits.max_connections": u.Limits.MaxConnections, "limits.max_requests": u.Limits.MaxRequests, "limits.max_pending": u.Limits.MaxPending} {
		if v < 0 {
			bad(k, "%d must not be negative (0: unlimited)", v)
		}
	}
	if u.Timeouts.Connect <= 0 {
		bad("timeouts.connect", "%s must be positive", u.Timeouts.Connect)
	}
	if u.Timeouts.Idle < 0 {
		bad("timeouts.idle", "%s must not be negative (0: the mode's default)", u.Timeouts.Idle)
	}
	if u.Timeouts.Request <= 0 {
		bad("timeouts.request", "%s must be positive", u.Timeouts.Request)
	}
	if u.Retries.Attempts < 0 || u.Retries.Attempts > 10 {
		bad("retries.attempts", "%d is not from 0 to 10", u.Retries.Attempts)
	}
	if u.Retries.Budget < 0 || u.Retries.Budget > 1 {
		bad("retries.budget", "%g is not a fraction from 0 to 1", u.Retries.Budget)
	}
	if t := u.TLS; t != nil {
		if (t.Cert == "") != (t.Key == "") {
			bad("tls.cert", "a client certificate needs both a certificate and a key file")
		}
		for k, f := range map[string]string{"tls.ca": t.CA, "tls.cert": t.Cert, "tls.key": t.Key} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(f); err != nil {
				bad(k, "%v", err)
			}
		}
	}
	return errs
}

func httpHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// Config configures the broker: one upstream from flags, or several from
// a YAML file (ConfigFile).
type Config struct {
	// ConfigFile is the YAML file of upstreams; it is reloaded on SIGHUP
	// and when it changes. With it, Upstream's Listen and Source must be
	// empty; Upstream's other fields are the defaults of every upstream
	// of the file (under the file's own defaults:).
	ConfigFile string `json:"config_file,omitempty"`
	// WatchInterval is how often ConfigFile and the TLS files are
	// checked for changes besides inotify (0: SIGHUP only).
	WatchInterval time.Duration `json:"watch_interval"`
	// Upstream is the flags' upstream.
	Upstream Upstream `json:"upstream"`
	// UpstreamTLS turns TLS towards the endpoints on for the flags'
	// upstream (Upstream.TLS then holds the files).
	UpstreamTLS bool `json:"upstream_tls"`
	// Discovery tunes dns:, srv: and kubernetes: sources.
	DNSResolver   string        `json:"dns_resolver,omitempty"`
	DNSMinRefresh time.Duration `json:"dns_min_refresh"`
	DNSMaxRefresh time.Duration `json:"dns_max_refresh"`
	Kubeconfig    string        `json:"kubeconfig,omitempty"`

	// Listeners, if set, are used instead of listening on an upstream's
	// address (by upstream name), each once: for tests and programs that
	// embed the broker (podkit demo).
	Listeners map[string]net.Listener `json:"-"`

	tlsFiles TLS // the flags' files, before UpstreamTLS decides
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		WatchInterval: 2 * time.Second,
		Upstream:      DefaultUpstream(),
		DNSMinRefresh: discovery.DefaultMinRefresh,
		DNSMaxRefresh: discovery.DefaultMaxRefresh,
	}
}

// RegisterFlags adds the broker's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	u := &c.Upstream
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML `file` of upstreams (reloaded on SIGHUP and when it changes); the other upstream flags are then every upstream's defaults")
	fs.StringVar(&u.Listen, "listen", u.Listen, "`address` the application connects to, e.g. 127.0.0.1:6379 (required without --config)")
	fs.StringVar(&u.Source, "source", u.Source, "discovery `source`: static:HOST:PORT,..., file:PATH, dns:NAME:PORT, srv:_SVC._PROTO.NAME, kubernetes:NS/SVC:PORTNAME (required without --config)")
	fs.StringVar(&u.Name, "name", u.Name, "upstream `name` in metrics, logs and /endpoints")
	fs.StringVar(&u.Mode, "mode", u.Mode, "tcp (any protocol) or http (HTTP/1.1 and h2c)")
	fs.StringVar(&u.Balance, "balance", u.Balance, "round-robin, least-request, p2c or ring-hash")
	fs.StringVar(&u.HashKey, "hash-key", u.HashKey, "what ring-hash hashes: client-ip or header:NAME (http)")
	fs.StringVar(&u.HealthCheck.Type, "health-check", u.HealthCheck.Type, "active check: none, tcp, http:PATH, redis, mysql or postgres")
	fs.DurationVar(&u.HealthCheck.Interval, "health-interval", u.HealthCheck.Interval, "time between checks of an endpoint")
	fs.DurationVar(&u.HealthCheck.Timeout, "health-timeout", u.HealthCheck.Timeout, "bound on one check")
	fs.IntVar(&u.HealthCheck.Rise, "health-rise", u.HealthCheck.Rise, "passed checks in a row that make an endpoint healthy")
	fs.IntVar(&u.HealthCheck.Fall, "health-fall", u.HealthCheck.Fall, "failed checks in a row that make an endpoint unhealthy")
	fs.StringVar(&u.HealthCheck.Status, "health-status", u.HealthCheck.Status, "statuses an http check accepts: LO-HI or one status")
	fs.IntVar(&u.Outlier.Failures, "outlier-failures", u.Outlier.Failures, "connect failures or 5xx in a row that eject an endpoint (0: off)")
	fs.DurationVar(&u.Outlier.Ejection, "outlier-ejection", u.Outlier.Ejection, "first ejection time; the n-th lasts n times as long")
	fs.DurationVar(&u.Outlier.MaxEjection, "outlier-max-ejection", u.Outlier.MaxEjection, "longest ejection")
	fs.IntVar(&u.Outlier.MaxPercent, "outlier-max-percent", u.Outlier.MaxPercent, "most endpoints ejected at once, in percent")
	fs.IntVar(&u.Limits.MaxConnections, "max-connections", u.Limits.MaxConnections, "open connections through the upstream (tcp; 0: unlimited); more are closed at once")
	fs.IntVar(&u.Limits.MaxRequests, "max-requests", u.Limits.MaxRequests, "requests in flight (http; 0: unlimited); more are answered 503")
	fs.IntVar(&u.Limits.MaxPending, "max-pending", u.Limits.MaxPending, "connects in progress (0: unlimited)")
	fs.DurationVar(&u.Timeouts.Connect, "connect-timeout", u.Timeouts.Connect, "bound on a connect to an endpoint")
	fs.DurationVar(&u.Timeouts.Idle, "idle-timeout", u.Timeouts.Idle, "tcp: a connection with no byte either way is closed; http: the wait for a next request (0: 5m in tcp mode, 60s in http mode)")
	fs.DurationVar(&u.Timeouts.Request, "request-timeout", u.Timeouts.Request, "http: wait for a response head, then 504")
	fs.IntVar(&u.Retries.Attempts, "retries", u.Retries.Attempts, "http: retries of an idempotent request on another endpoint after a failed connect or a reset before any response byte")
	fs.Float64Var(&u.Retries.Budget, "retry-budget", u.Retries.Budget, "retries allowed as a fraction of requests (at least 3 concurrent retries are always allowed)")
	fs.StringVar(&u.Zone, "zone", u.Zone, "the pod's own `zone`: its endpoints are preferred (from the downward API)")
	fs.BoolVar(&c.UpstreamTLS, "upstream-tls", c.UpstreamTLS, "originate TLS to the endpoints")
	fs.StringVar(&c.tlsFiles.CA, "upstream-ca", "", "PEM `file` of the CAs that issue the endpoints' certificates (default: the system's)")
	fs.StringVar(&c.tlsFiles.Cert, "upstream-cert", "", "client certificate `file` presented to the endpoints (mutual TLS)")
	fs.StringVar(&c.tlsFiles.Key, "upstream-key", "", "key `file` of --upstream-cert")
	fs.StringVar(&c.tlsFiles.ServerName, "upstream-server-name", "", "SNI and the `name` the endpoints' certificates are verified for (default: the dialed host)")
	fs.Var((*cli.StringList)(&c.tlsFiles.SANs), "upstream-san", "a `name` (DNS, IP or URI such as spiffe://...) the endpoint's certificate must carry; any one suffices (repeatable)")
	fs.StringVar(&c.DNSResolver, "dns-resolver", c.DNSResolver, "DNS server `HOST:PORT` for dns: and srv: sources (default: /etc/resolv.conf's)")
	fs.DurationVar(&c.DNSMinRefresh, "dns-min-refresh", c.DNSMinRefresh, "shortest time between DNS refreshes")
	fs.DurationVar(&c.DNSMaxRefresh, "dns-max-refresh", c.DNSMaxRefresh, "longest time between DNS refreshes")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig `file` for kubernetes: sources (default: in-cluster, then $KUBECONFIG)")
}

// base returns the flags' upstream with its TLS decided.
func (c Config) base() Upstream {
	u := c.Upstream
	if c.UpstreamTLS {
		t := c.tlsFiles
		if u.TLS != nil {
			t = *u.TLS
		}
		u.TLS = &t
	}
	return u
}

// SetTLS sets the flags' upstream TLS files (as --upstream-tls and the
// --upstream-* flags do).
func (c *Config) SetTLS(t TLS) { c.UpstreamTLS, c.tlsFiles = true, t }

func (c Config) discoveryOptions() discovery.Options {
	return discovery.Options{
		Resolver: c.DNSResolver, MinRefresh: c.DNSMinRefresh, MaxRefresh: c.DNSMaxRefresh, Kubeconfig: c.Kubeconfig,
	}
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.WatchInterval < 0 {
		errs = append(errs, fmt.Errorf("watch interval %s must not be negative", c.WatchInterval))
	}
	if c.DNSMinRefresh < 0 || c.DNSMaxRefresh < 0 {
		errs = append(errs, errors.New("--dns-min-refresh, --dns-max-refresh: must not be negative"))
	}
	if c.DNSMinRefresh > 0 && c.DNSMaxRefresh > 0 && c.DNSMaxRefresh < c.DNSMinRefresh {
		errs = append(errs, fmt.Errorf("--dns-max-refresh: %s is shorter than --dns-min-refresh %s", c.DNSMaxRefresh, c.DNSMinRefresh))
	}
	if c.DNSResolver != "" {
		if _, _, err := net.SplitHostPort(c.DNSResolver); err != nil {
			errs = append(errs, fmt.Errorf("--dns-resolver: %q is not HOST:PORT", c.DNSResolver))
		}
	}
	if !c.UpstreamTLS && c.Upstream.TLS == nil {
		t := c.tlsFiles
		if t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != "" || len(t.SANs) > 0 {
			errs = append(errs, errors.New("--upstream-ca, --upstream-cert, --upstream-key, --upstream-server-name, --upstream-san: need --upstream-tls"))
		}
	}
	flagName := func(key string) string {
		if f, ok := flagNames[key]; ok {
			return f
		}
		return key
	}
	if c.ConfigFile != "" {
		if c.Upstream.Listen != "" || c.Upstream.Source != "" {
			errs = append(errs, errors.New("--config and --listen/--source are exclusive: put the upstreams in the file"))
		}
		// The flags are the file's defaults: check them without the
		// per-upstream keys.
		u := c.base()
		u.Listen, u.Source = "127.0.0.1:1", "static:127.0.0.1:1"
		errs = append(errs, u.validate(flagName)...)
		if len(errs) == 0 {
			if _, err := c.upstreams(); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	u := c.base()
	errs = append(errs, u.validate(flagName)...)
	return errors.Join(errs...)
}

// upstreams returns the configured upstreams: the file's, or the flags'
// one.
func (c Config) upstreams() ([]Upstream, error) {
	if c.ConfigFile == "" {
		u := c.base()
		if errs := u.validate(func(k string) string { return flagNames[k] }); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return []Upstream{u}, nil
	}
	b, err := os.ReadFile(c.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	ups, err := Parse(b, c.base())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.ConfigFile, err)
	}
	return ups, nil
}

// Parse decodes a broker YAML file strictly: an unknown or repeated key,
// a value of the wrong type or an invalid setting is an error naming its
// line. base holds the defaults under the file's defaults: (the flags').
func Parse(b []byte, base Upstream) ([]Upstream, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: YAML syntax: %s", ErrConfig, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%w: the file is empty (want an upstreams list)", ErrConfig)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: want a mapping with upstreams: (and optionally defaults:)", ErrConfig, root.Line)
	}
	var (
		errs     []error
		defaults *yaml.Node
		list     *yaml.Node
	)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "defaults":
			defaults = v
		case "upstreams":
			list = v
		default:
			errs = append(errs, fmt.Errorf("line %d: unknown key %q (want defaults or upstreams)", k.Line, k.Value))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	ut := reflect.TypeFor[Upstream]()
	if defaults != nil {
		if defaults.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%w: line %d: defaults: want a mapping of upstream keys", ErrConfig, defaults.Line)
		}
		errs = append(errs, checkKeys(defaults, ut, "defaults", []string{"name", "listen", "source"})...)
		if len(errs) == 0 {
			if err := decode(defaults, &base); err != nil {
				errs = append(errs, fmt.Errorf("defaults: %w", err))
			}
		}
	}
	if list == nil || list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		errs = append(errs, errors.New("no upstreams: want upstreams: with at least one entry"))
	} else if list.Kind != yaml.SequenceNode {
		errs = append(errs, fmt.Errorf("line %d: upstreams: want a list", list.Line))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	var ups []Upstream
	names, listens := map[string]int{}, map[string]string{}
	for _, n := range list.Content {
		if n.Kind != yaml.MappingNode {
			errs = append(errs, fmt.Errorf("line %d: an upstream must be a mapping of keys", n.Line))
			continue
		}
		label := fmt.Sprintf("upstream at line %d", n.Line)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				label = fmt.Sprintf("upstream %q", n.Content[i+1].Value)
			}
		}
		if kerrs := checkKeys(n, ut, label, nil); len(kerrs) > 0 {
			errs = append(errs, kerrs...)
			continue
		}
		u := base
		u.Name, u.Listen, u.Source = "", "", ""
		if u.TLS != nil {
			t := *u.TLS
			t.SANs = slices.Clone(t.SANs)
			u.TLS = &t
		}
		if err := decode(n, &u); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		u.line = n.Line
		errs = append(errs, u.validate(func(key string) string { return fmt.Sprintf("line %d: %s: %s", keyLine(n, key), label, key) })...)
		if l, dup := names[u.Name]; dup && u.Name != "" {
			errs = append(errs, fmt.Errorf("line %d: %s is a duplicate (first on line %d)", n.Line, label, l))
		}
		names[u.Name] = n.Line
		if other, dup := listens[u.Listen]; dup && u.Listen != "" && !strings.HasSuffix(u.Listen, ":0") {
			errs = append(errs, fmt.Errorf("line %d: %s listens on %s, as upstream %q does", n.Line, label, u.Listen, other))
		}
		listens[u.Listen] = u.Name
		ups = append(ups, u)
	}
	if len(errs) == 0 && len(ups) == 0 {
		errs = append(errs, errors.New("upstreams: the list is empty"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return ups, nil
}

// decode decodes n into v, turning the YAML library's errors into ones
// without its prefix.
func decode(n *yaml.Node, v any) (err error) {
	defer func() {
		// The YAML decoder panics on nothing we know of, but a bad file
		// must never stop the process.
		if r := recover(); r != nil {
			err = fmt.Errorf("line %d: cannot decode: %v", n.Line, r)
		}
	}()
	if err := n.Decode(v); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
		msg = strings.ReplaceAll(msg, "\n  ", "; ")
		return errors.New(strings.TrimPrefix(msg, "yaml: "))
	}
	return nil
}

// keyLine is the line of a dotted key (health_check.interval) inside the
// mapping n, or n's line.
func keyLine(n *yaml.Node, key string) int {
	line := n.Line
	for part := range strings.SplitSeq(key, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, next = n.Content[i].Line, n.Content[i+1]
			}
		}
		n = next
	}
	return line
}

// checkKeys reports every key of the mapping n that t (a struct with yaml
// tags) does not have, recursing into nested structs, and every key in
// forbidden.
func checkKeys(n *yaml.Node, t reflect.Type, where string, forbidden []string) []error {
	if n.Kind != yaml.MappingNode {
		return nil // decode reports the type mismatch
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fields[tag] = f.Type
		if !slices.Contains(forbidden, tag) {
			names = append(names, tag)
		}
	}
	var errs []error
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		switch {
		case slices.Contains(forbidden, k.Value):
			errs = append(errs, fmt.Errorf("line %d: %s: %s is not allowed here (only in an upstream)", k.Line, where, k.Value))
		case !ok:
			errs = append(errs, fmt.Errorf("line %d: %s: unknown key %q (want one of %s)", k.Line, where, k.Value, strings.Join(names, ", ")))
		case seen[k.Value] > 0:
			errs = append(errs, fmt.Errorf("line %d: %s: %s is a duplicate (first on line %d)", k.Line, where, k.Value, seen[k.Value]))
		default:
			seen[k.Value] = k.Line
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
				errs = append(errs, checkKeys(v, ft, where+": "+k.Value, nil)...)
			}
		}
	}
	return errs
}
