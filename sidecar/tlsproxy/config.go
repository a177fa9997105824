package tlsproxy

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/gctune"
	"github.com/podkit/podkit/internal/httpproxy"
	"github.com/podkit/podkit/internal/tlsconf"
)

// Modes of operation.
const (
	ModeHTTP = "http" // HTTP/1.1 and HTTP/2 to clients, HTTP/1.1 to the target
	ModeTCP  = "tcp"  // TLS in, bytes out
)

// DefaultClientCertHeader is the header that carries the verified client
// certificate's identity to the target in http mode.
const DefaultClientCertHeader = "X-Forwarded-Client-Cert"

// Config configures a Proxy.
type Config struct {
	// Listen is the TLS listen address (host:port).
	Listen string `json:"listen"`
	// Listener, if set, is served instead of listening on Listen
	// (embedding, tests); Addr reports its address.
	Listener net.Listener `json:"-"`
	// Target is where decrypted traffic goes: host:port (loopback unless
	// UnsafeTarget) or unix:/path/to/socket.
	Target       string `json:"target"`
	UnsafeTarget bool   `json:"unsafe_target"`
	// Mode is ModeHTTP (default) or ModeTCP.
	Mode string `json:"mode"`

	// CertFile and KeyFile are a PEM certificate chain and its private
	// key, reloaded on SIGHUP and when the files change. SelfSigned
	// generates an in-memory development certificate instead, valid for
	// SelfSignedHosts.
	CertFile        string   `json:"cert"`
	KeyFile         string   `json:"key"`
	SelfSigned      bool     `json:"self_signed"`
	SelfSignedHosts []string `json:"self_signed_hosts,omitempty"`
	// WatchInterval is how often the certificate files (and the client
	// CA) are checked for changes; 0 reloads on SIGHUP only.
	WatchInterval time.Duration `json:"watch_interval"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `json:"min_tls_version"`

	// ClientCA turns on mutual TLS: clients must present a certificate
	// issued by one of these PEM CAs. The allow-lists, if any, are OR'ed:
	// a client passes if its subject CN, one of its DNS SANs, or one of
	// its URI SANs is listed.
	ClientCA    string   `json:"client_ca,omitempty"`
	AllowCN     []string `json:"allow_cn,omitempty"`
	AllowSANDNS []string `json:"allow_san_dns,omitempty"`
	AllowSANURI []string `json:"allow_san_uri,omitempty"`
	// ClientCertHeader carries the verified client identity in http mode.
	ClientCertHeader string `json:"client_cert_header"`

	// RedirectHTTP, if set, is a plain-HTTP listen address that answers
	// every request with a 301 to the https URL (http mode).
	RedirectHTTP string `json:"redirect_http,omitempty"`
	// ProxyProtocol sends a PROXY protocol v2 header to the target before
	// the client's bytes (tcp mode).
	ProxyProtocol bool `json:"proxy_protocol"`

	HandshakeTimeout time.Duration `json:"handshake_timeout"`
	IdleTimeout      time.Duration `json:"idle_timeout"`
	HeaderTimeout    time.Duration `json:"header_timeout"`
	DialTimeout      time.Duration `json:"dial_timeout"`
	// MaxConns bounds concurrent client connections (0: unlimited); at
	// the limit the proxy stops accepting until one closes.
	MaxConns int `json:"max_conns"`
	// TargetHealth is an http(s) URL whose 2xx/3xx makes the proxy ready;
	// empty means a TCP (or unix) dial of Target.
	TargetHealth       string        `json:"target_health,omitempty"`
	TargetHealthPeriod time.Duration `json:"target_health_period"`

	// GCPercent is the Go garbage collector's percent (GOGC), with a
	// soft memory limit of 90% of the cgroup's memory limit if there is
	// one and GOMEMLIMIT is unset. These are process-wide: the tls-proxy
	// command applies them before the proxy runs (New and Run leave an
	// embedding program's runtime alone). gctune interprets it: 0 means
	// GOGC if set, else DefaultGCPercent; gctune.Off turns the collector
	// off. Default DefaultGCPercent, or 0 when GOGC is set.
	GCPercent int `json:"gc_percent"`

	// Logger is used when the proxy runs outside container.Run (nil:
	// slog.Default()); under container.Run the host's logger is used.
	Logger *slog.Logger `json:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:             ":8443",
		Mode:               ModeHTTP,
		WatchInterval:      time.Second,
		MinVersion:         "1.2",
		ClientCertHeader:   DefaultClientCertHeader,
		HandshakeTimeout:   10 * time.Second,
		IdleTimeout:        2 * time.Minute,
		HeaderTimeout:      10 * time.Second,
		DialTimeout:        5 * time.Second,
		MaxConns:           10000,
		TargetHealthPeriod: 5 * time.Second,
		GCPercent:          defaultGCPercent(),
	}
}

// RegisterFlags adds tls-proxy's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "TLS listen `address`")
	fs.StringVar(&c.Target, "target", c.Target, "where decrypted traffic goes: `host:port` on loopback, or unix:/path")
	fs.BoolVar(&c.UnsafeTarget, "unsafe-target", c.UnsafeTarget, "allow a --target that is not on loopback (plaintext leaves the pod)")
	fs.StringVar(&c.Mode, "mode", c.Mode, "http (HTTP/1.1 and HTTP/2 to clients, X-Forwarded-* headers) or tcp (TLS in, bytes out)")
	fs.StringVar(&c.CertFile, "cert", c.CertFile, "PEM certificate chain `file` (reloaded on SIGHUP and on change)")
	fs.StringVar(&c.KeyFile, "key", c.KeyFile, "PEM private key `file` for --cert")
	fs.BoolVar(&c.SelfSigned, "self-signed", c.SelfSigned, "generate an in-memory self-signed certificate (development only)")
	fs.Var((*cli.StringList)(&c.SelfSignedHosts), "self-signed-host", "DNS name or IP for the --self-signed certificate (repeatable; default localhost, 127.0.0.1, ::1)")
	fs.DurationVar(&c.WatchInterval, "watch-interval", c.WatchInterval, "how often to check --cert, --key and --client-ca for changes (0: SIGHUP only)")
	fs.StringVar(&c.MinVersion, "min-tls-version", c.MinVersion, "lowest TLS version accepted: 1.2 or 1.3")
	fs.StringVar(&c.ClientCA, "client-ca", c.ClientCA, "PEM CA bundle `file`: require client certificates issued by it (mutual TLS)")
	fs.Var((*cli.StringList)(&c.AllowCN), "allow-cn", "allow clients whose certificate subject CN is `name` (repeatable; OR'ed with the other --allow-*)")
	fs.Var((*cli.StringList)(&c.AllowSANDNS), "allow-san-dns", "allow clients whose certificate has this DNS `name` SAN (repeatable)")
	fs.Var((*cli.StringList)(&c.AllowSANURI), "allow-san-uri", "allow clients whose certificate has this `URI` SAN, e.g. spiffe://cluster/ns/app (repeatable)")
	fs.StringVar(&c.ClientCertHeader, "client-cert-header", c.ClientCertHeader, "request `header` that carries the verified client identity to the target (http mode)")
	fs.StringVar(&c.RedirectHTTP, "redirect-http", c.RedirectHTTP, "also listen for plain HTTP on this `address` and redirect (301) to https")
	fs.BoolVar(&c.ProxyProtocol, "proxy-protocol", c.ProxyProtocol, "send a PROXY protocol v2 header to the target (tcp mode)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", c.HandshakeTimeout, "time a client has to complete the TLS handshake")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "close a connection with no traffic for this long")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", c.HeaderTimeout, "time a client has to send a request's headers once it starts (http mode)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", c.DialTimeout, "timeout for connecting to --target")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "maximum concurrent client connections (0: unlimited)")
	fs.StringVar(&c.TargetHealth, "target-health", c.TargetHealth, "http(s) `URL` whose 2xx/3xx makes the proxy ready (default: a TCP dial of --target)")
	fs.DurationVar(&c.TargetHealthPeriod, "target-health-period", c.TargetHealthPeriod, "how often the target health check runs")
	fs.Var(gctune.PercentFlag(&c.GCPercent), "gc-percent", gctune.PercentUsage(DefaultGCPercent)+"; with a soft memory limit of 90% of the cgroup's unless GOMEMLIMIT is set")
}

// target is a parsed --target.
type target struct {
	network, addr string
}

func (t target) String() string {
	if t.network == "unix" {
		return "unix:" + t.addr
	}
	return t.addr
}

// parseTarget parses host:port or unix:/path. loopback reports whether
// the address is certainly on this host.
func parseTarget(s string) (t target, loopback bool, err error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return t, false, errors.New("unix: needs a socket path")
		}
		return target{"unix", p}, true, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return t, false, fmt.Errorf("%q is not host:port or unix:/path", s)
	}
	if port == "" {
		return t, false, fmt.Errorf("%q: missing port", s)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return t, false, fmt.Errorf("%q: bad port %q", s, port)
	}
	switch {
	case host == "" || strings.EqualFold(host, "localhost"):
		loopback = true
	default:
		if ip := net.ParseIP(host); ip != nil {
			loopback = ip.IsLoopback()
		}
	}
	return target{"tcp", s}, loopback, nil
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := container.ValidateListenAddr(c.Listen); err != nil {
		add("--listen: %v", err)
	}
	if c.Target == "" {
		add("--target: required (host:port on loopback, or unix:/path)")
	} else if _, loop, err := parseTarget(c.Target); err != nil {
		add("--target: %v", err)
	} else if !loop && !c.UnsafeTarget {
		add("--target: %q is not on loopback; plaintext would leave the pod (pass --unsafe-target if that is intended)", c.Target)
	}
	switch c.Mode {
	case ModeHTTP, ModeTCP:
	default:
		add("--mode: %q is not http or tcp", c.Mode)
	}
	switch {
	case c.SelfSigned && (c.CertFile != "" || c.KeyFile != ""):
		add("--self-signed: cannot be combined with --cert/--key")
	case !c.SelfSigned && c.CertFile == "" && c.KeyFile == "":
		add("--cert: required (with --key), or pass --self-signed for a development certificate")
	case !c.SelfSigned && c.CertFile == "":
		add("--cert: required with --key")
	case !c.SelfSigned && c.KeyFile == "":
		add("--key: required with --cert")
	}
	if len(c.SelfSignedHosts) > 0 && !c.SelfSigned {
		add("--self-signed-host: only meaningful with --self-signed")
	}
	if c.WatchInterval < 0 {
		add("--watch-interval: %s is negative", c.WatchInterval)
	}
	if _, err := tlsconf.ParseMinVersion(c.MinVersion); err != nil {
		add("--min-tls-version: %v", err)
	}
	if c.ClientCA == "" && (len(c.AllowCN)+len(c.AllowSANDNS)+len(c.AllowSANURI)) > 0 {
		add("--allow-cn/--allow-san-dns/--allow-san-uri: need --client-ca (client certificates are only verified with mutual TLS)")
	}
	for _, u := range c.AllowSANURI {
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" {
			add("--allow-san-uri: %q is not an absolute URI", u)
		}
	}
	if c.ClientCertHeader == "" || !httpproxy.ValidHeaderName(c.ClientCertHeader) {
		add("--client-cert-header: %q is not a valid header name", c.ClientCertHeader)
	}
	if c.RedirectHTTP != "" {
		if c.Mode == ModeTCP {
			add("--redirect-http: only in --mode http")
		}
		if err := container.ValidateListenAddr(c.RedirectHTTP); err != nil {
			add("--redirect-http: %v", err)
		}
	}
	if c.ProxyProtocol && c.Mode != ModeTCP {
		add("--proxy-protocol: only in --mode tcp (http mode sends X-Forwarded-For)")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--handshake-timeout", c.HandshakeTimeout},
		{"--idle-timeout", c.IdleTimeout},
		{"--header-timeout", c.HeaderTimeout},
		{"--dial-timeout", c.DialTimeout},
		{"--target-health-period", c.TargetHealthPeriod},
	} {
		if d.v <= 0 {
			add("%s: %s must be positive", d.name, d.v)
		}
	}
	if c.MaxConns < 0 {
		add("--max-conns: %d is negative", c.MaxConns)
	}
	if err := gctune.CheckPercent(c.GCPercent); err != nil {
		add("--gc-percent: %v", err)
	}
	if c.TargetHealth != "" {
		u, err := url.Parse(c.TargetHealth)
		switch {
		case err != nil:
			add("--target-health: %v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			add("--target-health: %q: want an http:// or https:// URL", c.TargetHealth)
		case u.Host == "":
			add("--target-health: %q: missing host", c.TargetHealth)
		}
	}
	return errors.Join(errs...)
}
