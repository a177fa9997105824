package shard

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/podkit/podkit/ambassador/shard/internal/ketama"
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/secretfile"
)

// Protocols a pool speaks.
const (
	Redis    = "redis"
	Memcache = "memcache"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid shard configuration")

// Server is one backend server of a pool, written "host:port:weight [name]"
// or "/path/to/socket:weight [name]" as in nutcracker.yml.
type Server struct {
	Spec    string `json:"spec"`    // as written
	Network string `json:"network"` // tcp or unix
	Addr    string `json:"addr"`    // what is dialled
	Weight  int    `json:"weight"`
	// Name is what ketama hashes (see ketama.ServerName).
	Name string `json:"name"`
}

// Pool is one pool of servers behind one listen address: twemproxy's pool
// keys, plus podkit's own (FailClosed, RedisAuthFile).
type Pool struct {
	Name         string `json:"name"`
	Listen       string `json:"listen"`
	Protocol     string `json:"protocol"` // redis or memcache (twemproxy: redis: true|false)
	Hash         string `json:"hash"`
	HashTag      string `json:"hash_tag,omitempty"`
	Distribution string `json:"distribution"`
	// Timeout bounds each request to a server; 0 waits for ever
	// (twemproxy's default).
	Timeout            time.Duration    `json:"timeout"`
	Backlog            int              `json:"backlog,omitempty"`
	ClientConnections  int              `json:"client_connections,omitempty"`
	TCPKeepalive       bool             `json:"tcpkeepalive"`
	RedisAuth          container.Secret `json:"redis_auth"`
	RedisDB            int              `json:"redis_db"`
	Preconnect         bool             `json:"preconnect"`
	AutoEjectHosts     bool             `json:"auto_eject_hosts"`
	ServerConnections  int              `json:"server_connections"`
	ServerRetryTimeout time.Duration    `json:"server_retry_timeout"`
	ServerFailureLimit int              `json:"server_failure_limit"`
	// FailClosed (podkit) marks a failing server down like auto_eject_hosts
	// does, but keeps it on the ring: its keys get an error until it
	// recovers, and no key moves to another server.
	FailClosed bool     `json:"fail_closed"`
	Servers    []Server `json:"servers"`
	line       int
}

// Twemproxy's defaults.
const (
	defaultRetryTimeout = 30 * time.Second
	defaultFailureLimit = 2
)

func newPool(name string) Pool {
	return Pool{
		Name: name, Protocol: Memcache, Hash: ketama.DefaultHash, Distribution: ketama.Ketama,
		Backlog: 512, ServerConnections: 1, ServerRetryTimeout: defaultRetryTimeout, ServerFailureLimit: defaultFailureLimit,
	}
}

// keys are the pool keys accepted in the YAML file: twemproxy's, and
// podkit's extensions.
var twemproxyKeys = []string{
	"listen", "hash", "hash_tag", "distribution", "timeout", "backlog", "client_connections", "tcpkeepalive",
	"redis", "redis_auth", "redis_db", "preconnect", "auto_eject_hosts", "server_connections",
	"server_retry_timeout", "server_failure_limit", "servers",
}

var podkitKeys = []string{"fail_closed", "redis_auth_file"}

// ignoredKeys are accepted for compatibility but change nothing.
var ignoredKeys = map[string]string{
	"backlog": "the Go runtime sets the listen backlog (net.core.somaxconn)",
}

// Warning is a start-up notice about the configuration.
type Warning struct {
	Line int
	Msg  string
}

func (w Warning) String() string {
	if w.Line > 0 {
		return fmt.Sprintf("line %d: %s", w.Line, w.Msg)
	}
	return w.Msg
}

// LoadFile reads a nutcracker.yml file.
func LoadFile(path string) ([]Pool, []Warning, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	pools, warns, err := Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return pools, warns, nil
}

// Parse decodes twemproxy's nutcracker.yml format strictly: every key
// twemproxy accepts is accepted, and any other key, a duplicate key, or a
// value twemproxy would refuse is an error naming its line.
func Parse(b []byte) ([]Pool, []Warning, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrConfig, syntaxError(b, err))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil, fmt.Errorf("%w: no pools", ErrConfig)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%w: line %d: want a mapping of pool names to pools", ErrConfig, root.Line)
	}
	var (
		pools []Pool
		warns []Warning
		errs  []error
	)
	lineErr := func(n *yaml.Node, format string, a ...any) {
		errs = append(errs, fmt.Errorf("line %d: "+format, append([]any{n.Line}, a...)...))
	}
	seenPool := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := root.Content[i], root.Content[i+1]
		name := kn.Value
		if kn.Kind != yaml.ScalarNode || name == "" {
			lineErr(kn, "pool name must be a non-empty string")
			continue
		}
		if l, dup := seenPool[name]; dup {
			lineErr(kn, "pool %q is a duplicate (first on line %d)", name, l)
			continue
		}
		seenPool[name] = kn.Line
		if vn.Kind != yaml.MappingNode {
			lineErr(vn, "pool %q: want a mapping of keys", name)
			continue
		}
		p := newPool(name)
		p.line = kn.Line
		seen := map[string]int{}
		authFile := ""
		var authNode *yaml.Node
		for j := 0; j+1 < len(vn.Content); j += 2 {
			k, v := vn.Content[j], vn.Content[j+1]
			key := k.Value
			if !slices.Contains(twemproxyKeys, key) && !slices.Contains(podkitKeys, key) {
				lineErr(k, "pool %q: unknown key %q (twemproxy's keys: %s; podkit's: %s)", name, key,
					strings.Join(twemproxyKeys, ", "), strings.Join(podkitKeys, ", "))
				continue
			}
			if l, dup := seen[key]; dup {
				lineErr(k, "pool %q: %s is a duplicate (first on line %d)", name, key, l)
				continue
			}
			seen[key] = k.Line
			if why, ok := ignoredKeys[key]; ok {
				warns = append(warns, Warning{k.Line, fmt.Sprintf("pool %q: %s is accepted but podkit does not act on it: %s", name, key, why)})
			}
			if key == "servers" {
				if v.Kind != yaml.SequenceNode {
					lineErr(v, "pool %q: servers must be a list of \"host:port:weight [name]\"", name)
					continue
				}
				for _, sn := range v.Content {
					if sn.Kind != yaml.ScalarNode {
						lineErr(sn, "pool %q: server must be a string \"host:port:weight [name]\"", name)
						continue
					}
					s, err := ParseServer(sn.Value)
					if err != nil {
						lineErr(sn, "pool %q: server %q: %v", name, sn.Value, err)
						continue
					}
					p.Servers = append(p.Servers, s)
				}
				continue
			}
			if v.Kind != yaml.ScalarNode {
				lineErr(v, "pool %q: %s must be a single value", name, key)
				continue
			}
			val := v.Value
			if err := p.set(key, val); err != nil {
				lineErr(v, "pool %q: %s: %v", name, key, err)
			}
			switch key {
			case "redis_auth_file":
				authFile = val
				authNode = v
			case "redis_auth":
				authNode = v
			}
		}
		if _, ok := seen["listen"]; !ok {
			lineErr(kn, "pool %q: listen is missing", name)
		}
		if len(p.Servers) == 0 {
			lineErr(kn, "pool %q has no servers", name)
		}
		if authFile != "" {
			if _, ok := seen["redis_auth"]; ok {
				lineErr(authNode, "pool %q: redis_auth and redis_auth_file are exclusive", name)
			} else if pw, err := readSecret(authFile); err != nil {
				lineErr(authNode, "pool %q: redis_auth_file: %v", name, err)
			} else {
				p.RedisAuth = container.Secret(pw)
			}
		}
		if p.RedisAuth != "" && p.Protocol != Redis {
			lineErr(authNode, "pool %q: redis_auth needs redis: true", name)
		}
		if p.FailClosed && p.AutoEjectHosts {
			lineErr(kn, "pool %q: fail_closed and auto_eject_hosts are exclusive (one keeps the ring, the other shrinks it)", name)
		}
		if p.ServerConnections == 0 {
			lineErr(kn, "pool %q: server_connections cannot be 0", name)
		}
		if err := checkServerNames(p); err != nil {
			lineErr(kn, "%v", err)
		}
		pools = append(pools, p)
	}
	if len(errs) == 0 && len(pools) == 0 {
		errs = append(errs, errors.New("no pools"))
	}
	if len(errs) == 0 {
		errs = append(errs, checkListens(pools)...)
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return pools, warns, nil
}

// syntaxError locates a YAML syntax error on the line where it is. The
// YAML library names the line where the enclosing block starts (line 1
// for a bad line anywhere in the first pool), so the document is parsed
// line by line until the same error appears: that last line is where it
// is.
func syntaxError(b []byte, err error) string {
	msg := yamlMessage(err)
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines) <= 10000 { // nutcracker.yml files are short; bound the work
		end := 0
		for i, l := range lines {
			end += len(l)
			var n yaml.Node
			if perr := yaml.Unmarshal(b[:end], &n); perr != nil && yamlMessage(perr) == msg {
				return fmt.Sprintf("line %d: YAML syntax error: %s", i+1, msg)
			}
		}
	}
	return "YAML syntax error: " + strings.TrimPrefix(err.Error(), "yaml: ")
}

// yamlMessage is a YAML error without its "yaml: line N: " prefix.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, aerr := strconv.Atoi(rest[:i]); aerr == nil {
				return rest[i+2:]
			}
		}
	}
	return msg
}

// set applies one scalar key as twemproxy's conf_set_* functions do.
func (p *Pool) set(key, val string) error {
	num := func() (int, error) {
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 || strings.HasPrefix(val, "+") {
			return 0, fmt.Errorf("%q is not a number", val)
		}
		return n, nil
	}
	boolean := func() (bool, error) {
		switch val {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, fmt.Errorf("%q is not \"true\" or \"false\"", val)
	}
	var err error
	switch key {
	case "listen":
		if err = checkListen(val); err == nil {
			p.Listen = val
		}
	case "hash":
		if _, err = ketama.Hash(val); err == nil {
			p.Hash = val
		}
	case "hash_tag":
		if len(val) != 2 {
			return fmt.Errorf("%q is not a hash tag of two characters, e.g. \"{}\"", val)
		}
		p.HashTag = val
	case "distribution":
		if !slices.Contains(ketama.Distributions(), val) {
			return fmt.Errorf("%q is not ketama, modula or random", val)
		}
		p.Distribution = val
	case "timeout", "server_retry_timeout":
		var n int
		if n, err = num(); err == nil {
			if key == "timeout" {
				p.Timeout = time.Duration(n) * time.Millisecond
			} else {
				p.ServerRetryTimeout = time.Duration(n) * time.Millisecond
			}
		}
	case "backlog":
		p.Backlog, err = num()
	case "client_connections":
		p.ClientConnections, err = num()
	case "redis_db":
		p.RedisDB, err = num()
	case "server_connections":
		p.ServerConnections, err = num()
	case "server_failure_limit":
		p.ServerFailureLimit, err = num()
	case "redis", "tcpkeepalive", "preconnect", "auto_eject_hosts", "fail_closed":
		var b bool
		if b, err = boolean(); err == nil {
			switch key {
			case "redis":
				p.Protocol = Memcache
				if b {
					p.Protocol = Redis
				}
			case "tcpkeepalive":
				p.TCPKeepalive = b
			case "preconnect":
				p.Preconnect = b
			case "auto_eject_hosts":
				p.AutoEjectHosts = b
			case "fail_closed":
				p.FailClosed = b
			}
		}
	case "redis_auth":
		if val == "" {
			return errors.New("is empty")
		}
		p.RedisAuth = container.Secret(val)
	case "redis_auth_file":
		if val == "" {
			return errors.New("is empty")
		}
	}
	return err
}

// checkListen validates "host:port" or "/path/to/socket [permissions]".
func checkListen(v string) error {
	if strings.HasPrefix(v, "/") {
		path, perm, ok := strings.Cut(v, " ")
		if ok {
			if n, err := strconv.ParseUint(perm, 8, 32); err != nil || n > 0o777 {
				return fmt.Errorf("%q has an invalid file permission in \"socket_path permission\"", v)
			}
		}
		if path == "" {
			return fmt.Errorf("%q: empty socket path", v)
		}
		return nil
	}
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return fmt.Errorf("%q is not \"hostname:port\"", v)
	}
	if n, err := strconv.Atoi(v[i+1:]); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", v)
	}
	return nil
}

// listenNetwork returns the network and address to listen on.
func listenNetwork(v string) (network, addr string, perm os.FileMode) {
	if strings.HasPrefix(v, "/") {
		path, p, ok := strings.Cut(v, " ")
		perm = 0o777
		if ok {
			n, _ := strconv.ParseUint(p, 8, 32)
			perm = os.FileMode(n)
		}
		return "unix", path, perm
	}
	i := strings.LastIndexByte(v, ':')
	host := v[:i]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return "tcp", net.JoinHostPort(host, v[i+1:]), 0
}

// ParseServer parses "host:port:weight [name]" or
// "/path/to/socket:weight [name]", from the end as twemproxy does.
func ParseServer(spec string) (Server, error) {
	s := Server{Spec: spec, Network: "tcp"}
	rest := spec
	name := ""
	if i := strings.LastIndexByte(rest, ' '); i >= 0 {
		name, rest = rest[i+1:], rest[:i]
		if name == "" {
			return s, errors.New("empty name after the space")
		}
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return s, errors.New("not \"hostname:port:weight [name]\" or \"/path/unix_socket:weight [name]\"")
	}
	weight, rest := rest[i+1:], rest[:i]
	w, err := strconv.Atoi(weight)
	switch {
	case err != nil || w < 0:
		return s, fmt.Errorf("invalid weight %q", weight)
	case w == 0:
		return s, errors.New("weight must be at least 1")
	}
	s.Weight = w
	if strings.HasPrefix(spec, "/") {
		s.Network, s.Addr = "unix", rest
		s.Name = ketama.ServerName(rest, "", name)
		return s, nil
	}
	j := strings.LastIndexByte(rest, ':')
	if j < 0 {
		return s, errors.New("not \"hostname:port:weight [name]\"")
	}
	host, port := rest[:j], rest[j+1:]
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return s, fmt.Errorf("invalid port %q", port)
	}
	if host == "" {
		return s, errors.New("empty host")
	}
	s.Name = ketama.ServerName(host, port, name)
	dialHost := host
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		dialHost = host[1 : len(host)-1]
	}
	s.Addr = net.JoinHostPort(dialHost, port)
	return s, nil
}

func checkServerNames(p Pool) error {
	seen := map[string]bool{}
	for _, s := range p.Servers {
		if seen[s.Name] {
			return fmt.Errorf("pool %q has servers with the same name %q", p.Name, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func checkListens(pools []Pool) []error {
	var errs []error
	seen := map[string]string{}
	for _, p := range pools {
		if strings.HasSuffix(p.Listen, ":0") {
			continue // port 0: each pool gets its own free port
		}
		if other, dup := seen[p.Listen]; dup {
			errs = append(errs, fmt.Errorf("line %d: pools %q and %q have the same listen address %q", p.line, other, p.Name, p.Listen))
		}
		seen[p.Listen] = p.Name
	}
	return errs
}

// readSecret reads a password file by the rule every component follows.
func readSecret(path string) (string, error) { return secretfile.Read(path) }

// Config configures the shard proxy: either a nutcracker.yml file
// (--config) or a single pool from flags.
type Config struct {
	// ConfigFile is a nutcracker.yml file; it is watched, and reread on
	// SIGHUP.
	ConfigFile string `json:"config_file,omitempty"`
	// WatchInterval is how often ConfigFile is checked for changes; on
	// Linux a change is also seen at once through inotify (0: neither,
	// only SIGHUP reloads it). See container.Reload.
	WatchInterval time.Duration `json:"watch_interval"`

	// The single pool of the flags-only form.
	Listen       string        `json:"listen,omitempty"`
	Protocol     string        `json:"protocol,omitempty"`
	Servers      []string      `json:"servers,omitempty"`
	Hash         string        `json:"hash,omitempty"`
	Distribution string        `json:"distribution,omitempty"`
	HashTag      string        `json:"hash_tag,omitempty"`
	Timeout      time.Duration `json:"timeout,omitempty"`
	AutoEject    bool          `json:"auto_eject_hosts,omitempty"`
	FailClosed   bool          `json:"fail_closed,omitempty"`
	FailureLimit int           `json:"server_failure_limit,omitempty"`
	RetryTimeout time.Duration `json:"server_retry_timeout,omitempty"`
	ServerConns  int           `json:"server_connections,omitempty"`
	PasswordFile string        `json:"password_file,omitempty"`

	// MaxBulk is the largest Redis bulk string or memcached value a
	// client may send (and a server may answer).
	MaxBulk int `json:"max_bulk"`

	// EventLoops is the number of event loops on Linux (0: one per
	// GOMAXPROCS). One loop, like twemproxy's one thread, serves more
	// than half a million pipelined operations a second; more loops
	// spread the proxy over CPUs when it is the bottleneck, at some cost
	// per operation (fewer requests per write, more wake-ups).
	EventLoops int `json:"event_loops"`

	// StatsPort and StatsAddr are twemproxy's stats listener (nutcracker's
	// -s and -a): a connection gets the stats as JSON and is closed. Port 0
	// picks a free port; StatsAddr "off" (DefaultConfig's) disables it;
	// `podkit shard` defaults to nutcracker's DefaultStatsAddr. With both
	// at nutcracker's defaults a port in use only logs a warning.
	StatsPort int    `json:"stats_port"`
	StatsAddr string `json:"stats_addr"`
	// StatsInterval (nutcracker's -i, ms) is accepted and has no effect:
	// podkit's stats are current at every read.
	StatsInterval int `json:"stats_interval_ms,omitempty"`
	// MbufSize (nutcracker's -m) is accepted and has no effect: podkit
	// sizes its buffers itself.
	MbufSize int `json:"mbuf_size,omitempty"`

	statsSet bool // a stats flag was given: failing to listen is an error
}

// statsExplicit reports whether the stats listener was asked for, not
// just defaulted.
func (c Config) statsExplicit() bool {
	return c.statsSet || c.StatsPort != DefaultStatsPort || c.StatsAddr != DefaultStatsAddr
}

// protocolName is the protocol --protocol names (memcached is memcache),
// or "" if it names none.
func protocolName(s string) string {
	switch strings.ToLower(s) {
	case Redis:
		return Redis
	case Memcache, "memcached":
		return Memcache
	}
	return ""
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		WatchInterval: 2 * time.Second,
		Protocol:      Redis,
		Hash:          ketama.DefaultHash,
		Distribution:  ketama.Ketama,
		Timeout:       time.Second,
		FailureLimit:  defaultFailureLimit,
		RetryTimeout:  defaultRetryTimeout,
		ServerConns:   1,
		MaxBulk:       64 << 20,
		EventLoops:    1,
		StatsPort:     DefaultStatsPort,
		StatsAddr:     "off", // the command's default is nutcracker's, DefaultStatsAddr
	}
}

// RegisterFlags adds the shard flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "twemproxy `nutcracker.yml` file with one or more pools (reloaded on SIGHUP and when it changes)")
	fs.DurationVar(&c.WatchInterval, "watch-interval", c.WatchInterval, "how often --config is checked for changes (0: SIGHUP only)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "single-pool form: `address` to listen on, e.g. 127.0.0.1:6379")
	fs.StringVar(&c.Protocol, "protocol", c.Protocol, "single-pool form: redis or memcache (memcached)")
	fs.Var((*cli.StringList)(&c.Servers), "server", "single-pool form: a server `host:port:weight [name]` (repeatable)")
	fs.StringVar(&c.Hash, "hash", c.Hash, "single-pool form: key hash ("+strings.Join(ketama.HashNames(), ", ")+")")
	fs.StringVar(&c.Distribution, "distribution", c.Distribution, "single-pool form: ketama, modula or random")
	fs.StringVar(&c.HashTag, "hash-tag", c.HashTag, "single-pool form: two characters around the hashed part of a key, e.g. {}")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "single-pool form: per-request server timeout (0: none)")
	fs.BoolVar(&c.AutoEject, "auto-eject-hosts", c.AutoEject, "single-pool form: take a failing server off the ring (its keys move)")
	fs.BoolVar(&c.FailClosed, "fail-closed", c.FailClosed, "single-pool form: mark a failing server down but keep the ring (its keys get errors, no key moves)")
	fs.IntVar(&c.FailureLimit, "server-failure-limit", c.FailureLimit, "single-pool form: consecutive failures before a server is ejected or marked down")
	fs.DurationVar(&c.RetryTimeout, "server-retry-timeout", c.RetryTimeout, "single-pool form: how long an ejected server stays out")
	fs.IntVar(&c.ServerConns, "server-connections", c.ServerConns, "single-pool form: connections to each server")
	fs.StringVar(&c.PasswordFile, "password-file", c.PasswordFile, "single-pool form (redis): `file` with the password clients must AUTH with and that is sent to the servers")
	fs.IntVar(&c.MaxBulk, "max-bulk", c.MaxBulk, "largest bulk string or value accepted, in bytes")
	statsPort := &setInt{p: &c.StatsPort, set: &c.statsSet}
	statsAddr := &setString{p: &c.StatsAddr, set: &c.statsSet}
	fs.Var(statsPort, "stats-port", "twemproxy stats `port`: a connection gets the stats as JSON (0: a free port)")
	fs.Var(statsPort, "s", "nutcracker's -s: --stats-port")
	fs.Var(statsAddr, "stats-addr", "twemproxy stats listener `address` (off: none)")
	fs.Var(statsAddr, "a", "nutcracker's -a: --stats-addr")
	fs.IntVar(&c.StatsInterval, "stats-interval", c.StatsInterval, "nutcracker's stats aggregation interval in `ms`: accepted, no effect (podkit's stats are current at every read)")
	fs.IntVar(&c.StatsInterval, "i", c.StatsInterval, "nutcracker's -i: --stats-interval")
	fs.IntVar(&c.MbufSize, "mbuf-size", c.MbufSize, "nutcracker's mbuf size in `bytes`: accepted, no effect (podkit sizes its buffers itself)")
	fs.IntVar(&c.MbufSize, "m", c.MbufSize, "nutcracker's -m: --mbuf-size")
	fs.StringVar(&c.ConfigFile, "conf-file", c.ConfigFile, "nutcracker's name for --config")
	fs.StringVar(&c.ConfigFile, "c", c.ConfigFile, "nutcracker's -c: --config")
	fs.IntVar(&c.EventLoops, "event-loops", c.EventLoops, "event loops serving clients, each with its own server connections (0: one per CPU); more than one pays off only when the proxy is the bottleneck")
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBulk < 1 {
		errs = append(errs, fmt.Errorf("--max-bulk: %d must be positive", c.MaxBulk))
	}
	if c.EventLoops < 0 {
		errs = append(errs, fmt.Errorf("--event-loops: %d must not be negative", c.EventLoops))
	}
	if c.StatsPort < 0 || c.StatsPort > 65535 {
		errs = append(errs, fmt.Errorf("--stats-port (-s): %d is not a port from 0 to 65535", c.StatsPort))
	}
	if c.StatsAddr == "" {
		errs = append(errs, errors.New("--stats-addr (-a): empty (an IP address or host name, or off)"))
	}
	if c.StatsInterval < 0 {
		errs = append(errs, fmt.Errorf("--stats-interval (-i): %d ms must not be negative", c.StatsInterval))
	}
	if c.MbufSize != 0 && (c.MbufSize < 512 || c.MbufSize > 16<<20) {
		errs = append(errs, fmt.Errorf("--mbuf-size (-m): %d is not from 512 to 16777216 bytes (nutcracker's bounds; podkit ignores it)", c.MbufSize))
	}
	if c.WatchInterval < 0 {
		errs = append(errs, fmt.Errorf("--watch-interval: %s must not be negative", c.WatchInterval))
	}
	if c.ConfigFile != "" {
		if c.Listen != "" || len(c.Servers) > 0 {
			errs = append(errs, errors.New("--config and --listen/--server are exclusive: put the pool in the file"))
		}
		return errors.Join(errs...)
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("--listen: required (or --config FILE)"))
	} else if err := checkListen(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen: %v", err))
	}
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("--server: at least one host:port:weight is required"))
	}
	for _, s := range c.Servers {
		if _, err := ParseServer(s); err != nil {
			errs = append(errs, fmt.Errorf("--server %q: %v", s, err))
		}
	}
	if protocolName(c.Protocol) == "" {
		errs = append(errs, fmt.Errorf("--protocol: %q is not redis or memcache (memcached)", c.Protocol))
	}
	if _, err := ketama.Hash(c.Hash); err != nil {
		errs = append(errs, fmt.Errorf("--hash: %v", err))
	}
	if !slices.Contains(ketama.Distributions(), c.Distribution) {
		errs = append(errs, fmt.Errorf("--distribution: %q is not ketama, modula or random", c.Distribution))
	}
	if c.HashTag != "" && len(c.HashTag) != 2 {
		errs = append(errs, fmt.Errorf("--hash-tag: %q is not two characters", c.HashTag))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("--timeout: %s must not be negative", c.Timeout))
	}
	if c.AutoEject && c.FailClosed {
		errs = append(errs, errors.New("--auto-eject-hosts and --fail-closed are exclusive"))
	}
	if c.FailureLimit < 1 {
		errs = append(errs, fmt.Errorf("--server-failure-limit: %d must be at least 1", c.FailureLimit))
	}
	if c.RetryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--server-retry-timeout: %s must be positive", c.RetryTimeout))
	}
	if c.ServerConns < 1 {
		errs = append(errs, fmt.Errorf("--server-connections: %d must be at least 1", c.ServerConns))
	}
	if c.PasswordFile != "" {
		if protocolName(c.Protocol) != Redis {
			errs = append(errs, errors.New("--password-file: only for --protocol redis"))
		} else if _, err := readSecret(c.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("--password-file: %v", err))
		}
	}
	return errors.Join(errs...)
}

// pools returns the configured pools: the file's, or the flags' one.
func (c Config) pools() ([]Pool, []Warning, error) {
	if c.ConfigFile != "" {
		return LoadFile(c.ConfigFile)
	}
	p := newPool("default")
	p.Listen, p.Protocol, p.Hash, p.Distribution, p.HashTag = c.Listen, protocolName(c.Protocol), c.Hash, c.Distribution, c.HashTag
	p.Timeout, p.AutoEjectHosts, p.FailClosed = c.Timeout, c.AutoEject, c.FailClosed
	p.ServerFailureLimit, p.ServerRetryTimeout, p.ServerConnections = c.FailureLimit, c.RetryTimeout, c.ServerConns
	p.TCPKeepalive = true
	for _, s := range c.Servers {
		srv, err := ParseServer(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--server %q: %w", s, err)
		}
		p.Servers = append(p.Servers, srv)
	}
	if err := checkServerNames(p); err != nil {
		return nil, nil, fmt.Errorf("--server: %w", err)
	}
	if c.PasswordFile != "" {
		pw, err := readSecret(c.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--password-file: %w", err)
		}
		p.RedisAuth = container.Secret(pw)
	}
	return []Pool{p}, nil, nil
}

// setInt and setString are flag values that record that they were set.
type setInt struct {
	p   *int
	set *bool
}

func (v *setInt) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v *setInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want an integer")
	}
	*v.p, *v.set = n, true
	return nil
}

func (v *setInt) Get() any { return *v.p }

type setString struct {
	p   *string
	set *bool
}

func (v *setString) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *setString) Set(s string) error {
	*v.p, *v.set = s, true
	return nil
}
