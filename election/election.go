// Package election is podkit elect: leader election as a container. Every
// replica of an application runs an elector next to it and asks it over
// HTTP who leads, instead of linking a language-specific library:
//
//   - GET /leader answers {"leader", "address", "self", "epoch", "expires"};
//     GET / adds "name" for the kubernetes/contrib election sidecar's
//     clients; GET /watch streams every change as Server-Sent Events;
//     POST /resign hands leadership over at once.
//   - --ready-only-when-leader makes /readyz 200 only on the leader, so a
//     Kubernetes Service routes to the leader alone.
//   - --proxy-listen is the leader proxy: every replica accepts requests and
//     forwards them to the current leader's --advertise address, adding the
//     X-Leader-Epoch header; with no leader it answers 503 and Retry-After.
//   - --notify POSTs every change to the application (over TLS, with a
//     client certificate and a bearer token: --notify-ca, --notify-cert,
//     --notify-key, --notify-token-file).
//
// The API is secured as every podkit API is (container.APISecurity: TLS,
// client certificates, bearer tokens, the listen rule), with two roles:
// reader (GET /leader, GET /, GET /watch) and admin (POST /resign too).
// The leader proxy carries the application's own traffic and is not
// secured by podkit.
//
// Every leader carries an epoch that is strictly greater than every earlier
// leader's on every backend (raft term, etcd leader-key creation revision,
// Lease transitions under compare-and-swap): a fencing token. Package
// election/fence lets a protected resource reject a deposed leader's
// writes.
//
// Backends: raft (embedded among the electors; the no-setup default, a
// single replica elects itself), etcd (concurrency.Election) and kubernetes
// (a coordination.k8s.io Lease). See election/backend for the interface.
// The program wires the backends it wants (Config.Backends, Command's
// arguments): raft is built in; etcd and kubernetes come from package
// election/backends, so that importing this package links neither client.
package election

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/election/backend"
	"github.com/podkit/podkit/election/raft"
)

// Backend, Candidate and Observation are election/backend's, for callers of
// this package.
type (
	Backend     = backend.Backend
	Candidate   = backend.Candidate
	Observation = backend.Observation
)

// ErrNotLeader is returned by Resign when this replica does not lead.
var ErrNotLeader = backend.ErrNotLeader

// Backend names.
const (
	BackendRaft       = "raft"
	BackendEtcd       = "etcd"
	BackendKubernetes = "kubernetes"
)

// DefaultListen is the API's default address.
const DefaultListen = "127.0.0.1:4040"

// Config configures an Elector.
type Config struct {
	Election  string `json:"election"`  // the election's name: a Lease name, an etcd key prefix
	ID        string `json:"id"`        // this replica's name (default: the hostname)
	Advertise string `json:"advertise"` // where other replicas reach this replica's application
	Backend   string `json:"backend"`   // raft, etcd or kubernetes

	Listen              string        `json:"listen"`       // the HTTP API
	ProxyListen         string        `json:"proxy_listen"` // the leader proxy; "" disables it
	ReadyOnlyWhenLeader bool          `json:"ready_only_when_leader"`
	Notify              []string      `json:"notify"` // POST every change here
	NotifyTimeout       time.Duration `json:"notify_timeout"`
	// NotifyClient are the credentials of the --notify POSTs: a CA to
	// verify https URLs, a client certificate, a bearer token
	// (--notify-ca, --notify-cert, --notify-key, --notify-token-file).
	NotifyClient container.APIClient `json:"notify_client"`

	// API secures the HTTP API (--listen): TLS, client certificates and
	// tokens granting the roles reader and admin (see Access).
	API container.APISecurity `json:"api"`

	Raft       raft.Config `json:"raft"`
	Etcd       EtcdConfig  `json:"etcd"`
	Kubernetes KubeConfig  `json:"kubernetes"`

	// Backends are the backends Backend may name besides raft, which is
	// built in (see package election/backends).
	Backends []BackendFactory `json:"-"`
	// Custom, if set, is used instead of the backend Backend names (for
	// programs that bring their own).
	Custom Backend `json:"-"`
	// Listener, if set, is the HTTP API's listener, used instead of
	// listening on Listen.
	Listener net.Listener `json:"-"`
}

// EtcdConfig is the etcd backend's part of Config.
type EtcdConfig struct {
	Endpoints []string      `json:"endpoints"`
	CAFile    string        `json:"ca_file"`
	CertFile  string        `json:"cert_file"`
	KeyFile   string        `json:"key_file"`
	TTL       time.Duration `json:"ttl"` // the session lease, whole seconds, at least 2s
}

// KubeConfig is the kubernetes backend's part of Config.
type KubeConfig struct {
	Kubeconfig string `json:"kubeconfig"` // "" means in-cluster
	Namespace  string `json:"namespace"`  // "" means the pod's namespace, else "default"
	// The Lease is named after Config.Election.
	LeaseDuration time.Duration `json:"lease_duration"`
	RenewDeadline time.Duration `json:"renew_deadline"`
	RetryPeriod   time.Duration `json:"retry_period"`
}

// DefaultConfig returns the defaults: the raft backend, a single replica
// named after the host, the API on 127.0.0.1:4040.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Election:      "podkit",
		ID:            host,
		Backend:       BackendRaft,
		Listen:        DefaultListen,
		NotifyTimeout: 5 * time.Second,
		Raft:          raft.DefaultConfig(),
		Etcd:          EtcdConfig{TTL: 2 * time.Second},
		Kubernetes: KubeConfig{
			LeaseDuration: 4 * time.Second,
			RenewDeadline: 3 * time.Second,
			RetryPeriod:   500 * time.Millisecond,
		},
	}
}

// RegisterFlags adds elect's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Election, "election", c.Election, "the election's `name`: the Lease name (kubernetes) or key prefix (etcd)")
	fs.StringVar(&c.ID, "id", c.ID, "this replica's `id`, unique in the election (default: the hostname)")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "`host:port` (or URL) where the other replicas reach this replica's application; reported as the leader's address")
	fs.StringVar(&c.Backend, "backend", c.Backend, "raft, etcd or kubernetes")
	fs.StringVar(&c.Listen, "listen", c.Listen, "the HTTP API's `address` (GET /leader, GET /, GET /watch, POST /resign); another than loopback needs --tls-cert, --token-file or --insecure-listen")
	fs.StringVar(&c.ProxyListen, "proxy-listen", c.ProxyListen, "leader proxy `address`: forward every request to the leader's --advertise address (off when empty)")
	fs.BoolVar(&c.ReadyOnlyWhenLeader, "ready-only-when-leader", c.ReadyOnlyWhenLeader, "/readyz is 200 only while this replica leads")
	fs.Var((*cli.StringList)(&c.Notify), "notify", "POST every leadership change as JSON to this `URL` (repeatable)")
	fs.DurationVar(&c.NotifyTimeout, "notify-timeout", c.NotifyTimeout, "timeout of each --notify attempt")
	c.NotifyClient.RegisterFlags(fs, notifyPrefix, "the --notify URLs")
	c.API.RegisterFlags(fs)

	fs.Var((*peersFlag)(&c.Raft.Peers), "peers", "raft: every replica as `id=host:port,...` (raft transport addresses, this one included); empty: a single replica")
	fs.StringVar(&c.Raft.Listen, "raft-listen", c.Raft.Listen, "raft: the transport's listen `address` (default: this replica's --peers port)")
	fs.StringVar(&c.Raft.DataDir, "data-dir", c.Raft.DataDir, "raft: `dir` keeping term, vote and log (default: in memory)")
	fs.DurationVar(&c.Raft.HeartbeatTimeout, "raft-heartbeat-timeout", c.Raft.HeartbeatTimeout, "raft: follower's timeout without contact from the leader")
	fs.DurationVar(&c.Raft.ElectionTimeout, "raft-election-timeout", c.Raft.ElectionTimeout, "raft: candidate's timeout without winning")
	fs.DurationVar(&c.Raft.LeaderLeaseTimeout, "raft-lease-timeout", c.Raft.LeaderLeaseTimeout, "raft: leader steps down after this long without a quorum")

	fs.Var((*cli.StringList)(&c.Etcd.Endpoints), "etcd-endpoints", "etcd: client `URL`s, comma-separated or repeated")
	fs.StringVar(&c.Etcd.CAFile, "etcd-ca-file", c.Etcd.CAFile, "etcd: CA bundle `file` to verify the servers")
	fs.StringVar(&c.Etcd.CertFile, "etcd-cert-file", c.Etcd.CertFile, "etcd: client certificate `file`")
	fs.StringVar(&c.Etcd.KeyFile, "etcd-key-file", c.Etcd.KeyFile, "etcd: client key `file`")
	fs.DurationVar(&c.Etcd.TTL, "etcd-ttl", c.Etcd.TTL, "etcd: session lease TTL (whole seconds, at least 2s); a crashed leader is replaced after it")

	fs.StringVar(&c.Kubernetes.Kubeconfig, "kubeconfig", c.Kubernetes.Kubeconfig, "kubernetes: kubeconfig `file` (default: in-cluster config)")
	fs.StringVar(&c.Kubernetes.Namespace, "namespace", c.Kubernetes.Namespace, "kubernetes: the Lease's namespace (default: the pod's)")
	fs.DurationVar(&c.Kubernetes.LeaseDuration, "lease-duration", c.Kubernetes.LeaseDuration, "kubernetes: how long followers wait after the last renewal before taking over")
	fs.DurationVar(&c.Kubernetes.RenewDeadline, "renew-deadline", c.Kubernetes.RenewDeadline, "kubernetes: the leader stops leading if it cannot renew for this long")
	fs.DurationVar(&c.Kubernetes.RetryPeriod, "retry-period", c.Kubernetes.RetryPeriod, "kubernetes: interval between renewals and acquisition attempts")
}

// peersFlag parses --peers when it is set, so a bad list is a usage error
// naming the flag.
type peersFlag []raft.Peer

func (p *peersFlag) String() string {
	if p == nil {
		return ""
	}
	parts := make([]string, len(*p))
	for i, x := range *p {
		parts[i] = x.ID + "=" + x.Addr
	}
	return strings.Join(parts, ",")
}

func (p *peersFlag) Set(s string) error {
	peers, err := raft.ParsePeers(s)
	if err != nil {
		return err
	}
	*p = peers
	return nil
}

// Validate reports every invalid field, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.Election == "" {
		errs = append(errs, errors.New("--election: empty"))
	} else if strings.ContainsAny(c.Election, " /\t\n") {
		errs = append(errs, fmt.Errorf("--election: %q has a space or slash", c.Election))
	}
	if c.ID == "" {
		errs = append(errs, errors.New("--id: empty (and the hostname is unknown)"))
	} else if strings.ContainsAny(c.ID, " \t\n\"") {
		errs = append(errs, fmt.Errorf("--id: %q has a space or quote", c.ID))
	}
	if c.Advertise != "" {
		if _, err := targetURL(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("--advertise: %w", err))
		}
	}
	addr := "" // the listen rule applies to --listen, not to a given Listener
	if c.Listener == nil {
		if c.Listen == "" {
			errs = append(errs, errors.New("--listen: empty"))
		} else if err := container.ValidateListenAddr(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen: %w", err))
		} else {
			addr = c.Listen
		}
	}
	if err := c.API.Validate("--listen", addr, Access()); err != nil {
		errs = append(errs, err)
	}
	if c.ProxyListen != "" {
		if err := container.ValidateListenAddr(c.ProxyListen); err != nil {
			errs = append(errs, fmt.Errorf("--proxy-listen: %w", err))
		}
	}
	for _, n := range c.Notify {
		if err := cli.CheckHTTPURL("notify", n); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NotifyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--notify-timeout: %s must be positive", c.NotifyTimeout))
	}
	if c.NotifyClient.Set() {
		if len(c.Notify) == 0 {
			errs = append(errs, errors.New("--notify-ca, --notify-cert, --notify-key, --notify-token-file: need --notify"))
		} else if err := c.NotifyClient.Validate(notifyPrefix); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Custom == nil {
		switch c.Backend {
		case BackendRaft:
			if err := c.Raft.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("raft (--raft-*): %w", err))
			}
			if len(c.Raft.Peers) > 0 && c.ID != "" {
				found := false
				for _, p := range c.Raft.Peers {
					found = found || p.ID == c.ID
				}
				if !found {
					errs = append(errs, fmt.Errorf("--peers: this replica's --id %q is not in the list", c.ID))
				}
			}
		case BackendEtcd:
			errs = append(errs, c.Etcd.validate()...)
		case BackendKubernetes:
			errs = append(errs, c.Kubernetes.validate()...)
		default:
			if !slices.ContainsFunc(c.Backends, func(f BackendFactory) bool { return f.Name == c.Backend }) {
				errs = append(errs, fmt.Errorf("--backend: unknown backend %q (want raft, etcd or kubernetes)", c.Backend))
			}
		}
	}
	return errors.Join(errs...)
}

// EndpointList splits comma-separated --etcd-endpoints values.
func (e EtcdConfig) EndpointList() []string {
	var out []string
	for _, v := range e.Endpoints {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (e EtcdConfig) validate() []error {
	var errs []error
	if len(e.EndpointList()) == 0 {
		errs = append(errs, errors.New("--etcd-endpoints: required with --backend etcd"))
	}
	for _, ep := range e.EndpointList() {
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--etcd-endpoints: %q is not an http(s)://host:port URL", ep))
		}
	}
	if e.TTL < 2*time.Second {
		errs = append(errs, fmt.Errorf("--etcd-ttl: %s is below etcd's minimum of 2s", e.TTL))
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		errs = append(errs, errors.New("--etcd-cert-file and --etcd-key-file go together"))
	}
	return errs
}

func (k KubeConfig) validate() []error {
	var errs []error
	if k.LeaseDuration < time.Second {
		errs = append(errs, fmt.Errorf("--lease-duration: %s is below 1s (a Lease counts whole seconds)", k.LeaseDuration))
	}
	if k.RenewDeadline <= 0 || k.RenewDeadline >= k.LeaseDuration {
		errs = append(errs, fmt.Errorf("--renew-deadline: %s must be positive and below --lease-duration %s", k.RenewDeadline, k.LeaseDuration))
	}
	if k.RetryPeriod <= 0 || k.RetryPeriod >= k.RenewDeadline {
		errs = append(errs, fmt.Errorf("--retry-period: %s must be positive and below --renew-deadline %s", k.RetryPeriod, k.RenewDeadline))
	}
	return errs
}

// targetURL turns an advertised address (host:port or an http(s) URL) into
// the URL the leader proxy forwards to.
func targetURL(addr string) (*url.URL, error) {
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("%q: unknown scheme %q (want http or https)", addr, u.Scheme)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("%q: missing host", addr)
		}
		return u, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("%q is not host:port or an http(s) URL", addr)
	}
	return &url.URL{Scheme: "http", Host: addr}, nil
}

// Elector is the component.
type Elector struct {
	cfg     Config
	backend Backend
	m       *metrics

	mu         sync.Mutex
	state      State
	seq        uint64
	subs       map[chan State]struct{}
	changed    chan struct{} // closed and replaced on every change
	noLeader   time.Time     // since when no leader is known (zero: one is)
	leaderless float64       // seconds without a leader, closed intervals
	lastErr    string
	h          *container.Host
	log        *slog.Logger
	notifier   *notifier

	apiAddr   container.BoundAddr // once Run listens
	proxyAddr container.BoundAddr // once Run listens, if the proxy is on
}

var (
	_ container.Component  = (*Elector)(nil)
	_ container.Configured = (*Elector)(nil)
)

// State is what GET /leader answers.
type State struct {
	Leader  string    `json:"leader"`
	Address string    `json:"address"`
	Self    bool      `json:"self"`
	Epoch   uint64    `json:"epoch"`
	Expires time.Time `json:"-"`
}

// New validates cfg and returns an Elector with its backend.
func New(cfg Config) (*Elector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := cfg.Custom
	if b == nil {
		var err error
		if b, err = newBackend(cfg); err != nil {
			return nil, err
		}
	}
	return &Elector{
		cfg:      cfg,
		backend:  b,
		m:        newMetrics(),
		subs:     map[chan State]struct{}{},
		changed:  make(chan struct{}),
		noLeader: time.Now(),
		log:      slog.Default(),
	}, nil
}

// Command is the `podkit elect` subcommand, with the backends --backend
// may name besides raft, which is built in. cmd/podkit wires raft, etcd
// and kubernetes (election/backends.All).
func Command(backends ...BackendFactory) cli.Command {
	return container.InvocationCommand("elect",
		"leader election as a container: who leads over HTTP, a leader proxy, fencing epochs; raft, etcd or kubernetes",
		"--id ID [--backend raft|etcd|kubernetes] [--peers id=host:port,...] [--advertise ADDR] [--proxy-listen ADDR] [flags]",
		func(fs *flag.FlagSet) func(*container.Invocation) (container.Component, error) {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			if len(backends) > 0 {
				cfg.Backends = backends
			}
			return func(in *container.Invocation) (container.Component, error) {
				if err := container.NoArgs(in.Args); err != nil {
					return nil, err
				}
				e, err := New(cfg)
				if err != nil {
					return nil, err
				}
				// Every line names the replica, the contract's own included.
				in.Opts.LogAttrs = []any{"id", e.cfg.ID}
				return e, nil
			}
		})
}

// Name implements container.Component.
func (e *Elector) Name() string { return "elect" }

// EffectiveConfig implements container.Configured.
func (e *Elector) EffectiveConfig() any { return e.cfg }

// Backend returns the elector's backend.
func (e *Elector) Backend() Backend { return e.backend }

// Addr returns the HTTP API's bound address, or nil before Run listens.
func (e *Elector) Addr() net.Addr { return e.apiAddr.Addr() }

// ProxyAddr returns the leader proxy's bound address, or nil before Run
// listens or when the proxy is off (ProxyListen empty).
func (e *Elector) ProxyAddr() net.Addr { return e.proxyAddr.Addr() }

// Leader returns what this replica currently knows of the leadership. A
// claim of its own that has expired without renewal is never returned,
// even in the moment before the elector notices.
func (e *Elector) Leader() State {
	e.mu.Lock()
	st := e.state
	e.mu.Unlock()
	if st.Self && !st.Expires.IsZero() && !time.Now().Before(st.Expires) {
		return State{}
	}
	return st
}

// Changed returns a channel closed at the next change of Leader().
func (e *Elector) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// Resign hands leadership over to another replica, if this one leads.
func (e *Elector) Resign(ctx context.Context) error { return e.backend.Resign(ctx) }

// Run implements container.Component.
func (e *Elector) Run(ctx context.Context, h *container.Host) error {
	// Every line names this replica: several electors often share one log
	// stream (the demo, tests, a node's journal).
	log := h.Logger()
	if !h.HasLogAttr("id") {
		log = log.With("id", e.cfg.ID)
	}
	e.mu.Lock()
	e.h, e.log = h, log
	e.mu.Unlock()
	if ls, ok := e.backend.(interface{ SetLogger(*slog.Logger) }); ok {
		ls.SetLogger(log)
	}
	e.m.register(h.Registerer(), e)
	n, err := newNotifier(e.cfg.Notify, e.cfg.NotifyTimeout, e.cfg.NotifyClient, e.log, e.m)
	if err != nil {
		return err
	}
	e.notifier = n

	// The API listens, with its TLS, client certificates, tokens and the
	// listen rule, through the container's API security. It is served
	// here (api.Handler on api.Listener, api.ErrorLog) rather than by
	// api.Serve: the elector's readiness follows the leadership, not the
	// API, and the API keeps serving until leadership is released.
	api, err := container.OpenAPI(ctx, h, container.APIConfig{
		Flag: "--listen", Addr: e.cfg.Listen, Listener: e.cfg.Listener,
		Security: e.cfg.API, Access: Access(),
	})
	if err != nil {
		e.notifier.close()
		return err
	}
	apiLn := api.Listener()
	var proxyLn net.Listener
	if e.cfg.ProxyListen != "" {
		if proxyLn, err = container.Listen("--proxy-listen", e.cfg.ProxyListen, nil); err != nil {
			apiLn.Close()
			e.notifier.close()
			return err
		}
	}
	e.apiAddr.Set(apiLn)
	if proxyLn != nil {
		e.proxyAddr.Set(proxyLn)
	}
	e.log.Info("electing", "election", e.cfg.Election, "backend", e.backendName(),
		"listen", apiLn.Addr().String(), "tls", e.cfg.API.TLS(), "advertise", e.cfg.Advertise)

	// A failed TLS handshake (a certificate from another CA, none where
	// one is needed) is a refusal, counted and logged as one.
	servers := []*http.Server{{Handler: api.Handler(e.Handler()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: api.ErrorLog()}}
	lns := []net.Listener{apiLn}
	if proxyLn != nil {
		servers = append(servers, &http.Server{Handler: e.Proxy(), ReadHeaderTimeout: 10 * time.Second})
		lns = append(lns, proxyLn)
		e.log.Info("leader proxy listening", "addr", proxyLn.Addr().String())
	}
	serveErr := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			if err := s.Serve(lns[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}

	campCtx, stopCampaign := context.WithCancel(context.Background())
	defer stopCampaign()
	campDone := make(chan error, 1)
	go func() {
		campDone <- e.backend.Campaign(campCtx, Candidate{ID: e.cfg.ID, Address: e.cfg.Advertise}, e.observe)
	}()
	go e.watchExpiry(campCtx)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = err
	case err := <-campDone:
		campDone <- err
		if err == nil {
			err = errors.New("backend stopped")
		}
		runErr = fmt.Errorf("backend %s: %w", e.backendName(), err)
	}
	// Release leadership first, so another replica takes over at once;
	// then stop serving.
	stopCampaign()
	select {
	case <-campDone:
	case <-h.DrainContext().Done():
		e.log.Warn("backend did not stop by the drain deadline")
	}
	e.observe(Observation{})
	h.SetReady(false)
	for _, s := range servers {
		if err := s.Shutdown(h.DrainContext()); err != nil {
			s.Close()
		}
	}
	e.closeSubs()
	e.notifier.close()
	return runErr
}

func (e *Elector) backendName() string {
	if e.cfg.Custom != nil {
		return fmt.Sprintf("%T", e.cfg.Custom)
	}
	return e.cfg.Backend
}

// watchExpiry re-evaluates the state when this replica's own claim
// expires without a renewal, so a leader cut off from its backend stops
// claiming even if the backend says nothing.
func (e *Elector) watchExpiry(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		st, ch := e.state, e.changed
		e.mu.Unlock()
		wait := time.Hour
		if st.Self && !st.Expires.IsZero() {
			wait = time.Until(st.Expires)
			if wait <= 0 {
				e.expire(st)
				continue
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if !t.Stop() {
				<-t.C
			}
		case <-t.C:
		}
	}
}

// expire drops this replica's own claim if it is still st.
func (e *Elector) expire(st State) {
	e.mu.Lock()
	same := e.state == st
	e.mu.Unlock()
	if same {
		e.log.Warn("leadership expired without renewal; no longer leading", "epoch", st.Epoch)
		e.set(State{}, time.Now())
	}
}

// observe is the backend's callback.
func (e *Elector) observe(o Observation) {
	now := time.Now()
	if o.Err != nil {
		e.m.backendErrors.Inc()
		msg := o.Err.Error()
		e.mu.Lock()
		repeat := e.lastErr == msg
		e.lastErr = msg
		e.mu.Unlock()
		if !repeat {
			e.log.Warn("backend error; leader unknown, retrying", "error", msg)
		}
		o = Observation{}
	} else {
		e.mu.Lock()
		hadErr := e.lastErr != ""
		e.lastErr = ""
		e.mu.Unlock()
		if hadErr {
			e.log.Info("backend reachable again")
		}
	}
	st := State{Leader: o.Leader, Address: o.Address, Epoch: o.Epoch, Expires: o.Expires}
	st.Self = o.Leader != "" && o.Leader == e.cfg.ID
	if st.Self && !o.Expires.IsZero() && !now.Before(o.Expires) {
		st = State{} // our own claim has lapsed
	}
	if st.Leader == "" {
		st = State{}
	}
	e.set(st, now)
}

func (e *Elector) set(st State, now time.Time) {
	e.mu.Lock()
	prev := e.state
	same := prev.Leader == st.Leader && prev.Address == st.Address && prev.Epoch == st.Epoch && prev.Self == st.Self
	e.state = st
	if same {
		e.mu.Unlock()
		return
	}
	e.seq++
	close(e.changed)
	e.changed = make(chan struct{})
	if st.Leader == "" && prev.Leader != "" {
		e.noLeader = now
	} else if st.Leader != "" && prev.Leader == "" && !e.noLeader.IsZero() {
		e.leaderless += now.Sub(e.noLeader).Seconds()
		e.noLeader = time.Time{}
	}
	for ch := range e.subs {
		select {
		case <-ch: // drop a stale state the subscriber has not read
		default:
		}
		ch <- st
	}
	// The metrics change with the state, before anyone can see it.
	if (st.Leader != prev.Leader || st.Epoch != prev.Epoch) && st.Leader != "" {
		e.m.transitions.Inc()
	}
	e.m.isLeader.Set(b2f(st.Self))
	e.m.epoch.Set(float64(st.Epoch))
	h := e.h
	e.mu.Unlock()

	switch {
	case st.Self:
		e.log.Info("leading", "epoch", st.Epoch)
	case st.Leader != "":
		e.log.Info("following", "leader", st.Leader, "address", st.Address, "epoch", st.Epoch)
	default:
		e.log.Info("no leader known")
	}
	if h != nil {
		if e.cfg.ReadyOnlyWhenLeader {
			h.SetReady(st.Self)
		} else {
			h.SetReady(st.Leader != "")
		}
	}
	if e.notifier != nil {
		e.notifier.send(st)
	}
}

// subscribe returns a channel that receives the current state and then
// every change (only the latest, if the reader is slow); cancel stops it.
func (e *Elector) subscribe() (<-chan State, func()) {
	ch := make(chan State, 1)
	e.mu.Lock()
	ch <- e.state
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		if _, ok := e.subs[ch]; ok {
			delete(e.subs, ch)
			close(ch)
		}
		e.mu.Unlock()
	}
}

func (e *Elector) closeSubs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		delete(e.subs, ch)
		close(ch)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
