package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/podkit/podkit/discovery/internal/dnsclient"
	"github.com/podkit/podkit/internal/retry"
)

// dnsSource is the dns: and srv: sources.
//
// dns:NAME:PORT asks for NAME's A and AAAA records; each address is an
// endpoint on PORT with weight 1, ready and serving.
//
// srv:_SERVICE._PROTO.NAME asks for NAME's SRV records; each target's
// addresses (from the answer's additional section when the server gives
// them, else looked up) are endpoints with the record's port, weight (0
// counts as 1) and priority, named after the target. A target of "."
// (RFC 2782: no service here) contributes nothing.
//
// Both ask the nameserver of Options.Resolver, or those of
// /etc/resolv.conf (re-read on every refresh, with its search list, ndots,
// timeout and attempts), and look again in the background when the
// shortest TTL of the answer has passed, never sooner than
// Options.MinRefresh nor later than Options.MaxRefresh. A failed refresh
// (NXDOMAIN, SERVFAIL, no answer, no records) is reported to the Receiver
// and keeps the last set; it is retried after MinRefresh, doubling up to
// MaxRefresh. A failure to get an answer for A or AAAA (or for an SRV
// target) fails the whole refresh rather than deliver half a set.
//
// Only DNS is asked: /etc/hosts and nsswitch are not consulted (names in
// Compose and Kubernetes come from their DNS servers). Options.Resolver
// may be an IP address alone, meaning port 53.
type dnsSource struct {
	str, kind string
	name      string // the name asked, as given
	port      int    // dns: only
	opts      Options

	resolvConf string        // the resolv.conf read when opts.Resolver is ""
	timeout    time.Duration // per query (0: resolv.conf's, or dnsclient's default)
	attempts   int           // 0: resolv.conf's, or dnsclient's default

	lastMissing string // the SRV targets last logged as missing (Run's goroutine only)
}

var _ Source = (*dnsSource)(nil)

func newDNS(str, spec string, o Options) (Source, error) {
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return nil, fmt.Errorf("%q: want NAME:PORT (the port is not in A records)", spec)
	}
	name, ps := spec[:i], spec[i+1:]
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("%q: port %q is not a number in 1..65535", spec, ps)
	}
	if err := checkDNSName(name); err != nil {
		return nil, err
	}
	if err := resolverOption(&o); err != nil {
		return nil, err
	}
	return &dnsSource{str: str, kind: "dns", name: name, port: port, opts: o, resolvConf: dnsclient.ResolvConfPath}, nil
}

func newSRV(str, spec string, o Options) (Source, error) {
	if strings.Contains(spec, ":") {
		return nil, fmt.Errorf("%q: srv: takes a name only (_SERVICE._PROTO.NAME); the ports come from the SRV records", spec)
	}
	if err := checkDNSName(spec); err != nil {
		return nil, err
	}
	if err := resolverOption(&o); err != nil {
		return nil, err
	}
	return &dnsSource{str: str, kind: "srv", name: spec, opts: o, resolvConf: dnsclient.ResolvConfPath}, nil
}

// resolverOption checks Options.Resolver: HOST:PORT, or an IP address
// alone, which means port 53.
func resolverOption(o *Options) error {
	if o.Resolver == "" {
		return nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(o.Resolver, "[]")); err == nil {
		o.Resolver = netip.AddrPortFrom(ip, 53).String()
		return nil
	}
	if _, _, err := splitHostPort(o.Resolver); err != nil {
		return fmt.Errorf("DNS resolver %w", err)
	}
	return nil
}

func checkDNSName(name string) error {
	if name == "" {
		return errors.New("the name is empty")
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return fmt.Errorf("%q is an IP address, not a name to look up (use static:)", name)
	}
	if !validName(name) {
		return fmt.Errorf("%q is not a valid DNS name", name)
	}
	return nil
}

func (s *dnsSource) String() string { return s.str }
func (s *dnsSource) Kind() string   { return s.kind }

// Run implements Source.
func (s *dnsSource) Run(ctx context.Context, r Receiver) error {
	back := retry.NewBackoff(retry.Policy{Initial: s.opts.MinRefresh, Max: s.opts.MaxRefresh, Jitter: 0.1})
	for {
		set, ttl, err := s.resolve(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		if err != nil {
			r.Failed(err)
			wait, _ = back.Next()
		} else {
			back.Reset()
			r.Update(set)
			wait = refreshAfter(ttl, s.opts)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// refreshAfter is the wait before the next lookup after an answer whose
// shortest TTL is ttl.
func refreshAfter(ttl time.Duration, o Options) time.Duration {
	return min(max(ttl, o.MinRefresh), o.MaxRefresh)
}

// client builds the resolver for one refresh.
func (s *dnsSource) client() (*dnsclient.Client, error) {
	var cfg dnsclient.Config
	if s.opts.Resolver != "" {
		cfg.Servers = []string{s.opts.Resolver}
		cfg.Ndots = dnsclient.DefaultNdots
	} else {
		c, err := dnsclient.ReadResolvConf(s.resolvConf)
		if err != nil {
			return nil, fmt.Errorf("reading the system's DNS configuration (or set a resolver): %w", err)
		}
		cfg = c
	}
	if s.timeout > 0 {
		cfg.Timeout = s.timeout
	}
	if s.attempts > 0 {
		cfg.Attempts = s.attempts
	}
	return dnsclient.New(cfg), nil
}

// resolve looks the records up once and returns the set and the time
// until it should be looked up again.
func (s *dnsSource) resolve(ctx context.Context) (Set, time.Duration, error) {
	c, err := s.client()
	if err != nil {
		return Set{}, 0, err
	}
	if s.kind == "srv" {
		return s.resolveSRV(ctx, c)
	}
	addrs, ttl, err := lookupHost(ctx, c, s.name)
	if err != nil {
		return Set{}, 0, err
	}
	eps := make([]Endpoint, 0, len(addrs))
	for _, a := range addrs {
		eps = append(eps, Endpoint{Host: a.String(), Port: s.port, Weight: 1, Ready: true, Serving: true})
	}
	return Set{Endpoints: eps}, ttl, nil
}

// lookupHost asks for A and AAAA at once. Either may be missing (NODATA);
// both missing is an error, and so is any failure to get an answer, since
// half an answer would drop endpoints that still exist.
func lookupHost(ctx context.Context, c *dnsclient.Client, name string) ([]netip.Addr, time.Duration, error) {
	var (
		wg   sync.WaitGroup
		res  [2]*dnsclient.Response
		errs [2]error
	)
	for i, t := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		wg.Go(func() { res[i], errs[i] = c.Lookup(ctx, name, t) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !dnsclient.IsNotFound(err) {
			return nil, 0, err
		}
	}
	if errs[0] != nil && errs[1] != nil {
		if errors.Is(errs[0], dnsclient.ErrNoRecords) && errors.Is(errs[1], dnsclient.ErrNoRecords) {
			return nil, 0, fmt.Errorf("%s has neither A nor AAAA records: %w", name, errs[0])
		}
		if errors.Is(errs[0], dnsclient.ErrNotFound) {
			return nil, 0, errs[0]
		}
		return nil, 0, errs[1]
	}
	var (
		addrs []netip.Addr
		ttl   = uint32(1<<32 - 1)
	)
	for _, r := range res {
		if r != nil {
			addrs = append(addrs, r.Addrs...)
			ttl = min(ttl, r.TTL)
		}
	}
	return addrs, ttlDuration(ttl), nil
}

func ttlDuration(ttl uint32) time.Duration { return time.Duration(ttl) * time.Second }

func (s *dnsSource) resolveSRV(ctx context.Context, c *dnsclient.Client) (Set, time.Duration, error) {
	r, err := c.Lookup(ctx, s.name, dnsmessage.TypeSRV)
	if err != nil {
		return Set{}, 0, err
	}
	ttl := r.TTL
	var (
		eps      []Endpoint
		missing  []string
		resolved = map[string][]netip.Addr{} // targets looked up in this refresh
	)
	for _, rec := range r.SRV {
		if rec.Target == "." {
			continue
		}
		key := strings.ToLower(rec.Target)
		addrs, ok := resolved[key]
		if !ok {
			if h, ok := r.Additional[key]; ok && len(h.Addrs) > 0 {
				addrs = h.Addrs
				ttl = min(ttl, h.TTL)
			} else {
				var t time.Duration
				addrs, t, err = lookupHost(ctx, c, rec.Target)
				switch {
				case err == nil:
					ttl = min(ttl, uint32(t/time.Second))
				case dnsclient.IsNotFound(err):
					missing = append(missing, err.Error())
				default:
					return Set{}, 0, fmt.Errorf("SRV target of %s: %w", s.name, err)
				}
			}
			resolved[key] = addrs
		}
		for _, a := range addrs {
			eps = append(eps, Endpoint{
				Host: a.String(), Port: int(rec.Port), Weight: max(int(rec.Weight), 1),
				Priority: int(rec.Priority), Name: strings.TrimSuffix(rec.Target, "."),
				Ready: true, Serving: true,
			})
		}
	}
	if m := strings.Join(missing, "; "); m != s.lastMissing && len(eps) > 0 {
		s.lastMissing = m
		if m != "" {
			s.opts.Logger.Warn("SRV targets without addresses are left out", "source", s.str, "targets", missing)
		}
	}
	if len(eps) == 0 {
		if len(missing) > 0 {
			return Set{}, 0, fmt.Errorf("no SRV target of %s has an address: %s", r.Name, strings.Join(missing, "; "))
		}
		return Set{}, 0, fmt.Errorf("the SRV records of %s say the service is not available (target \".\")", r.Name)
	}
	return Set{Endpoints: eps}, ttlDuration(ttl), nil
}
