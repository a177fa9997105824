// Package discovery finds the endpoints of a service wherever a pod runs
// and tells its user when they change: a static list on a laptop, a file,
// DNS (A/AAAA or SRV) in Compose, EndpointSlices in Kubernetes. broker,
// split and scatter take their upstreams from it.
//
// # Naming a source
//
// A source is named by one string everywhere (flags, YAML files):
//
//	static:HOST:PORT[;weight=N][;zone=Z],HOST:PORT...   a fixed list
//	file:PATH                                           a YAML or JSON file, watched
//	dns:NAME:PORT                                       A and AAAA records of NAME
//	srv:_SERVICE._PROTO.NAME                            SRV records (port and weight from DNS)
//	kubernetes:NAMESPACE/SERVICE:PORTNAME               the Service's EndpointSlices
//
// Parse turns such a string into a Source.
//
// # What a source guarantees
//
// A Source's Run delivers complete endpoint sets, each replacing the one
// before, and never does I/O on its user's request path: lookups happen in
// the background on their own schedule (DNS on the records' TTL, bounded by
// Options.MinRefresh and MaxRefresh; Kubernetes by a watch; a file on
// change). When a refresh fails — NXDOMAIN, a server that does not answer,
// an unreachable apiserver, a malformed file, a port name the Service does
// not have — the last good set stays and the failure is reported to the
// Receiver (Watch logs it and counts it); an empty set is delivered only
// when the source really says there is nothing.
//
// Watch runs a Source for a component, keeps the current set, and exports
// the metrics and log lines every user of discovery shares.
package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Endpoint is one address of a service, with what the source knows of it.
type Endpoint struct {
	// Host is an IP address, or a host name for static and file entries
	// (resolved by the dialer when it connects).
	Host string `json:"host"`
	// Port is the TCP port.
	Port int `json:"port"`
	// Weight is the endpoint's share relative to the others (at least 1).
	Weight int `json:"weight"`
	// Priority orders groups of endpoints (SRV priority): the lowest value
	// that has a usable endpoint takes the traffic; higher values are
	// backups. 0 for sources without priorities.
	Priority int `json:"priority,omitempty"`
	// Zone is the topology zone the endpoint runs in ("" if unknown).
	Zone string `json:"zone,omitempty"`
	// Name is what the source calls the endpoint, when that is not Host:
	// an SRV target, a Kubernetes pod or hostname. Informational.
	Name string `json:"name,omitempty"`
	// Ready, Serving and Terminating are Kubernetes' endpoint conditions.
	// Sources without them report Ready and Serving. An endpoint that is
	// Terminating but still Serving takes no new connections unless no
	// Ready endpoint is left (see Set.Routable).
	Ready       bool `json:"ready"`
	Serving     bool `json:"serving"`
	Terminating bool `json:"terminating"`
}

// Addr is the endpoint's HOST:PORT, for dialing.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// String is the endpoint's address.
func (e Endpoint) String() string { return e.Addr() }

// Set is a complete answer of a source: every endpoint it knows of, in
// the order Normalize gives them (by address), each address once.
type Set struct {
	Endpoints []Endpoint `json:"endpoints"`
}

// Normalize sorts the endpoints by address and drops repeated addresses
// (the first one wins), gives a weight below 1 the weight 1, and returns s.
func (s Set) Normalize() Set {
	eps := slices.Clone(s.Endpoints)
	for i := range eps {
		if eps[i].Weight < 1 {
			eps[i].Weight = 1
		}
	}
	slices.SortStableFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port))
	})
	eps = slices.CompactFunc(eps, func(a, b Endpoint) bool { return a.Host == b.Host && a.Port == b.Port })
	return Set{Endpoints: eps}
}

// Equal reports whether two normalized sets hold the same endpoints with
// the same attributes.
func (s Set) Equal(o Set) bool { return slices.Equal(s.Endpoints, o.Endpoints) }

// Routable returns the endpoints that may take new connections: the ready
// ones; when none is ready, the ones still serving (terminating pods
// finishing their work), so that a service whose every pod is rolling is
// not cut off. Endpoints neither ready nor serving are never routable.
func (s Set) Routable() []Endpoint {
	var ready, serving []Endpoint
	for _, e := range s.Endpoints {
		switch {
		case e.Ready && !e.Terminating:
			ready = append(ready, e)
		case e.Serving:
			serving = append(serving, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return serving
}

// Counts returns how many endpoints are ready, serving-but-not-ready and
// terminating, for logs and metrics.
func (s Set) Counts() (ready, serving, terminating int) {
	for _, e := range s.Endpoints {
		if e.Ready && !e.Terminating {
			ready++
		} else if e.Serving {
			serving++
		}
		if e.Terminating {
			terminating++
		}
	}
	return ready, serving, terminating
}

// Source delivers the endpoint sets of one service as they change.
type Source interface {
	// Run watches the source until ctx ends, then returns nil. It gives r
	// each new complete set (r.Update) and each failed refresh (r.Failed;
	// the last set stays in force). The first Update comes once the source
	// has its first answer. Run returns an error before ctx ends only when
	// it can never work (a kubeconfig that cannot be read, say); Parse
	// catches what it can before that.
	Run(ctx context.Context, r Receiver) error
	// String is the source string, as Parse was given it.
	String() string
	// Kind is the scheme: static, file, dns, srv or kubernetes.
	Kind() string
}

// Receiver is told what a Source finds. Its methods are never called
// concurrently by one Source.
type Receiver interface {
	Update(Set)
	Failed(err error)
}

// Kinds are the source schemes Parse knows, in the order docs list them.
var Kinds = []string{"static", "file", "dns", "srv", "kubernetes"}

// ErrBadSource is wrapped by every error Parse returns.
var ErrBadSource = errors.New("bad discovery source")

// Options tunes the sources Parse builds. The zero value is usable.
type Options struct {
	// Resolver is the DNS server (HOST:PORT) dns: and srv: sources ask;
	// "" means the nameservers of /etc/resolv.conf.
	Resolver string
	// MinRefresh and MaxRefresh bound how often DNS answers are
	// re-resolved: on the records' TTL, but never more often than
	// MinRefresh nor less often than MaxRefresh. Defaults 1s and 30s.
	MinRefresh, MaxRefresh time.Duration
	// Kubeconfig is the kubeconfig file kubernetes: sources use; ""
	// means the in-cluster configuration, then $KUBECONFIG.
	Kubeconfig string
	// FilePoll is how often a file: source re-reads its file besides
	// watching it (default 2s; inotify on Linux sees changes at once).
	FilePoll time.Duration
	// Logger is given to sources for warnings (nil: slog.Default()).
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultMinRefresh = time.Second
	DefaultMaxRefresh = 30 * time.Second
	DefaultFilePoll   = 2 * time.Second
)

func (o Options) withDefaults() Options {
	if o.MinRefresh <= 0 {
		o.MinRefresh = DefaultMinRefresh
	}
	if o.MaxRefresh <= 0 {
		o.MaxRefresh = DefaultMaxRefresh
	}
	if o.MaxRefresh < o.MinRefresh {
		o.MaxRefresh = o.MinRefresh
	}
	if o.FilePoll <= 0 {
		o.FilePoll = DefaultFilePoll
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Parse builds the Source a source string names (see the package doc).
// Errors wrap ErrBadSource and say what is wrong with the string.
func Parse(s string, o Options) (Source, error) {
	o = o.withDefaults()
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return nil, fmt.Errorf("%w %q: want KIND:SPEC with KIND one of %s", ErrBadSource, s, strings.Join(Kinds, ", "))
	}
	var (
		src Source
		err error
	)
	switch kind {
	case "static":
		src, err = newStatic(s, rest)
	case "file":
		src, err = newFile(s, rest, o)
	case "dns":
		src, err = newDNS(s, rest, o)
	case "srv":
		src, err = newSRV(s, rest, o)
	case "kubernetes", "k8s":
		src, err = newKubernetes(s, rest, o)
	default:
		return nil, fmt.Errorf("%w %q: unknown kind %q, want one of %s", ErrBadSource, s, kind, strings.Join(Kinds, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSource, s, err)
	}
	return src, nil
}

// splitHostPort splits HOST:PORT (IPv6 in brackets) and checks both
// halves: a port in 1..65535, a host that is an IP address or a valid DNS
// name.
func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("%q: want HOST:PORT", hp)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not a number in 1..65535", hp, ps)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: the host is empty", hp)
	}
	if _, err := netip.ParseAddr(host); err != nil && !validName(host) {
		return "", 0, fmt.Errorf("%q: %q is neither an IP address nor a host name", hp, host)
	}
	return host, port, nil
}

// validName reports whether s is a DNS name (letters, digits, '-', '_'
// in dot-separated labels of at most 63 bytes, 253 in all; a trailing dot
// allowed).
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
