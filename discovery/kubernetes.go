package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	discoveryclient "k8s.io/client-go/kubernetes/typed/discovery/v1"
	"k8s.io/client-go/rest"

	"github.com/podkit/podkit/internal/kubeconfig"
	"github.com/podkit/podkit/internal/retry"
)

// kubernetes follows the EndpointSlices of one Service:
// kubernetes:NAMESPACE/SERVICE:PORTNAME.
//
// It lists the slices labelled kubernetes.io/service-name=SERVICE in
// NAMESPACE and watches them from the list's resourceVersion; a watch the
// server ends is resumed from the last version seen, one the server says
// is too old (410 Gone) is replaced by a new list. A list that fails (an
// unreachable apiserver, a refused permission) is reported with r.Failed,
// the last set stays, and the list is retried with backoff (100ms
// doubling to 10s, jittered).
//
// The set is the merge of every slice of the Service: for each endpoint
// the first address of its slice's port named PORTNAME. Slices of
// addressType FQDN are ignored (with a warning): the dialer wants IPs.
// An address listed by two slices (a pod moving between slices) is taken
// once, ready over not ready. Conditions follow the API: ready nil means
// true, terminating nil false; serving nil takes ready's value (the API
// says true, but a producer that wrote only ready: false predates the
// serving condition, and the EndpointSlice controller always writes
// serving). Zone is the endpoint's zone, Name its targetRef's name (the
// pod) or else its hostname; every weight is 1.
//
// PORTNAME is the Service's port name, which its slices carry. A numeric
// PORTNAME that no port is named matches the port number the slices list
// (the pods' target port, not the Service's port). An empty PORTNAME
// (kubernetes:NS/SVC or kubernetes:NS/SVC:) means the Service's only
// port: the unnamed one, or the single port of each slice.
//
// What the source reports:
//   - no slice at all: the Service does not exist (the EndpointSlice
//     controller keeps at least one slice for every Service with a
//     selector, even with no pods) — Failed, the last set stays;
//   - slices with endpoints, none of them with the port: Failed, naming
//     the port and the names that exist — a typo must not empty the set;
//   - slices that exist but list no endpoint (the Service scaled to
//     zero): an empty set. Kubernetes is the authority on what runs, and
//     pod IPs are reused, so keeping addresses the API no longer lists
//     would send traffic to whatever pod gets them next.
//
// Changes come in bursts (a rollout rewrites several slices in a row):
// they are coalesced for kubeDebounce before a set is delivered.
type kubernetes struct {
	name       string
	namespace  string
	service    string
	port       string
	kubeconfig string
	log        *slog.Logger
	// watchTimeout is kubeWatchTimeout (shorter in tests).
	watchTimeout time.Duration
}

var _ Source = (*kubernetes)(nil)

const (
	// serviceNameLabel is the label the EndpointSlice controller puts on
	// each slice with the name of its Service.
	serviceNameLabel = discoveryv1.LabelServiceName
	// kubeDebounce is how long a burst of slice changes is coalesced.
	kubeDebounce = 100 * time.Millisecond
	// kubeListTimeout bounds one list request.
	kubeListTimeout = 30 * time.Second
	// kubeWatchTimeout is the server-side lifetime of one watch (the
	// reflector's 5–10 minutes): each watch gets a random one in
	// [kubeWatchTimeout, 2·kubeWatchTimeout), so a fleet of pods does
	// not re-watch at once.
	kubeWatchTimeout = 5 * time.Minute
)

// kubeRetry spaces the lists after a failure.
var kubeRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}

func newKubernetes(name, spec string, o Options) (Source, error) {
	ns, svc, port, err := parseKubernetes(spec)
	if err != nil {
		return nil, err
	}
	return &kubernetes{
		name: name, namespace: ns, service: svc, port: port,
		kubeconfig:   o.Kubeconfig,
		log:          o.Logger.With("source", name),
		watchTimeout: kubeWatchTimeout,
	}, nil
}

// parseKubernetes reads NAMESPACE/SERVICE[:PORTNAME].
func parseKubernetes(spec string) (ns, svc, port string, err error) {
	ns, rest, ok := strings.Cut(spec, "/")
	if !ok {
		return "", "", "", fmt.Errorf("%q: want NAMESPACE/SERVICE:PORTNAME", spec)
	}
	svc, port, _ = strings.Cut(rest, ":")
	if err := kubeLabel("namespace", ns); err != nil {
		return "", "", "", err
	}
	if err := kubeLabel("service", svc); err != nil {
		return "", "", "", err
	}
	if port != "" {
		if err := kubeLabel("port name", port); err != nil {
			return "", "", "", err
		}
	}
	return ns, svc, port, nil
}

// kubeLabel checks that v is a DNS-1123 label, as Kubernetes names
// namespaces, Services and Service ports.
func kubeLabel(what, v string) error {
	if v == "" {
		return fmt.Errorf("the %s is empty", what)
	}
	if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
		return fmt.Errorf("%s %q is not a DNS-1123 label: %s", what, v, strings.Join(msgs, "; "))
	}
	return nil
}

func (k *kubernetes) String() string { return k.name }
func (k *kubernetes) Kind() string   { return "kubernetes" }

// restConfig is the client configuration: the kubeconfig file of
// Options.Kubeconfig; without one, the in-cluster configuration (the
// pod's service account), then $KUBECONFIG.
func (k *kubernetes) restConfig() (*rest.Config, error) {
	rc, _, err := kubeconfig.Load(k.kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "podkit-discovery"
	rc.WarningHandler = kubeWarnings{k.log}
	// No rc.Timeout: it would cut every watch; each list has its own.
	return rc, nil
}

// kubeWarnings logs the API server's warnings (a deprecated API, say).
type kubeWarnings struct{ log *slog.Logger }

func (w kubeWarnings) HandleWarningHeader(code int, agent, text string) {
	if code == 299 && text != "" {
		w.log.Warn("kubernetes API warning", "warning", text)
	}
}

// Run implements Source.
func (k *kubernetes) Run(ctx context.Context, r Receiver) error {
	rc, err := k.restConfig()
	if err != nil {
		return err
	}
	client, err := discoveryclient.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client for %s: %w", rc.Host, err)
	}
	st := &kubeState{k: k, r: r, api: client.EndpointSlices(k.namespace), warned: map[string]string{}}
	backoff := retry.NewBackoff(kubeRetry)
	for ctx.Err() == nil {
		listed := time.Now()
		rv, err := st.list(ctx)
		if err == nil {
			backoff.Reset()
			st.deliver()
			err = st.watch(ctx, rv)
		}
		if ctx.Err() != nil {
			return nil
		}
		d := time.Second - time.Since(listed) // at most one list a second
		if err != nil {
			st.failed(err)
			d, _ = backoff.Next()
		}
		if retry.Sleep(ctx, d) != nil {
			return nil
		}
	}
	return nil
}

// kubeState is one Run's view of the Service's slices.
type kubeState struct {
	k      *kubernetes
	r      Receiver
	api    discoveryclient.EndpointSliceInterface
	slices map[string]*discoveryv1.EndpointSlice // by name

	delivered bool   // an outcome has been delivered
	lastSet   Set    // the set last delivered, if lastErr is ""
	lastErr   string // the error last delivered ("" after an Update)
	dirty     bool   // slices changed since the last delivery

	warned map[string]string // slice name -> the warning given for it
}

func (st *kubeState) what() string { return st.k.namespace + "/" + st.k.service }

func (st *kubeState) listOptions() metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: serviceNameLabel + "=" + st.k.service}
}

// list replaces the known slices with a fresh list and returns its
// resourceVersion.
func (st *kubeState) list(ctx context.Context) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, kubeListTimeout)
	defer cancel()
	l, err := st.api.List(lctx, st.listOptions())
	if err != nil {
		return "", fmt.Errorf("listing the EndpointSlices of service %s: %w", st.what(), err)
	}
	st.slices = make(map[string]*discoveryv1.EndpointSlice, len(l.Items))
	for i := range l.Items {
		st.slices[l.Items[i].Name] = &l.Items[i]
	}
	st.dirty = true
	return l.ResourceVersion, nil
}

// errKubeRelist ends a watch whose resourceVersion the server no longer has.
var errKubeRelist = errors.New("relist")

// watch follows changes from resourceVersion rv until ctx ends (nil), the
// server says rv is too old (nil: list again), or the watch fails (the
// error). Changes are delivered kubeDebounce after the first of a burst.
func (st *kubeState) watch(ctx context.Context, rv string) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	defer func() {
		timer.Stop()
		if st.dirty && ctx.Err() == nil {
			st.deliver() // what was seen before the watch ended is true
		}
	}()
	for {
		opts := st.listOptions()
		opts.ResourceVersion = rv
		opts.AllowWatchBookmarks = true
		secs := int64((st.k.watchTimeout + rand.N(st.k.watchTimeout)) / time.Second)
		opts.TimeoutSeconds = &secs
		started, events := time.Now(), 0
		w, err := st.api.Watch(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if kubeGone(err) {
				return nil
			}
			return fmt.Errorf("watching the EndpointSlices of service %s: %w", st.what(), err)
		}
		err = func() error {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
					armed = false
					st.deliver()
				case ev, ok := <-w.ResultChan():
					if !ok {
						return nil // the server ended it: resume from rv
					}
					events++
					switch ev.Type {
					case watch.Added, watch.Modified, watch.Deleted:
						s, ok := ev.Object.(*discoveryv1.EndpointSlice)
						if !ok {
							continue
						}
						rv = s.ResourceVersion
						if ev.Type == watch.Deleted {
							delete(st.slices, s.Name)
						} else {
							st.slices[s.Name] = s
						}
						st.dirty = true
						if !armed {
							timer.Reset(kubeDebounce)
							armed = true
						}
					case watch.Bookmark:
						if s, ok := ev.Object.(*discoveryv1.EndpointSlice); ok && s.ResourceVersion != "" {
							rv = s.ResourceVersion
						}
					case watch.Error:
						err := apierrors.FromObject(ev.Object)
						if kubeGone(err) {
							return errKubeRelist
						}
						return fmt.Errorf("watching the EndpointSlices of service %s: %w", st.what(), err)
					}
				}
			}
		}()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errKubeRelist):
			return nil
		case err != nil:
			return err
		}
		// A server that ends every watch at once is not hammered.
		if events == 0 && time.Since(started) < time.Second {
			if retry.Sleep(ctx, time.Second) != nil {
				return nil
			}
		}
	}
}

// kubeGone reports a resourceVersion the server no longer keeps.
func kubeGone(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

// deliver gives the receiver the outcome of the current slices, unless it
// is the one given last.
func (st *kubeState) deliver() {
	st.dirty = false
	set, warns, err := kubeSet(st.k.namespace, st.k.service, st.k.port, st.sortedSlices())
	st.warn(warns)
	if err != nil {
		if !st.delivered || st.lastErr != err.Error() {
			st.delivered, st.lastErr = true, err.Error()
			st.r.Failed(err)
		}
		return
	}
	if !st.delivered || st.lastErr != "" || !set.Equal(st.lastSet) {
		st.delivered, st.lastErr, st.lastSet = true, "", set
		st.r.Update(set)
	}
}

// failed reports a list or watch error. The next outcome is delivered
// even when the slices did not change: only an Update clears the
// receiver's error.
func (st *kubeState) failed(err error) {
	st.delivered, st.lastErr = true, err.Error()
	st.r.Failed(err)
}

func (st *kubeState) sortedSlices() []*discoveryv1.EndpointSlice {
	out := make([]*discoveryv1.EndpointSlice, 0, len(st.slices))
	for _, s := range st.slices {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// warn logs each slice's warning once (again when it changes).
func (st *kubeState) warn(warns map[string]string) {
	for name, msg := range warns {
		if st.warned[name] != msg {
			st.k.log.Warn(msg, "endpointslice", st.k.namespace+"/"+name)
		}
	}
	st.warned = warns
}

// kubeSet computes the endpoint set of a Service's slices (sorted by
// name) for port (see the kubernetes type for the rules). warns holds, by
// slice name, why a slice was skipped.
func kubeSet(ns, svc, port string, sl []*discoveryv1.EndpointSlice) (Set, map[string]string, error) {
	warns := map[string]string{}
	if len(sl) == 0 {
		return Set{}, warns, fmt.Errorf("service %s/%s has no EndpointSlices (does the Service exist?)", ns, svc)
	}
	var (
		eps      []Endpoint
		index    = map[string]int{} // address -> position in eps
		withEps  int                // slices (of IP addresses) that list endpoints
		matched  int                // of those, slices with the port
		names    []string           // port names seen, for the error
		notTCP   string
		noNumber bool
	)
	for _, s := range sl {
		switch s.AddressType {
		case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		default:
			if len(s.Endpoints) > 0 {
				warns[s.Name] = fmt.Sprintf("EndpointSlice of addressType %s ignored: only IPv4 and IPv6 addresses are used", s.AddressType)
			}
			continue
		}
		if len(s.Endpoints) == 0 {
			continue
		}
		withEps++
		for _, p := range s.Ports {
			if n := kubeDeref(p.Name); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		p, ok := slicePort(s.Ports, port)
		if !ok {
			continue
		}
		if p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
			noNumber = true
			warns[s.Name] = fmt.Sprintf("EndpointSlice ignored: its port %s has no usable number", kubePortLabel(port))
			continue
		}
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			notTCP = string(*p.Protocol)
			continue
		}
		matched++
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(e.Addresses[0])
			if err != nil {
				warns[s.Name] = fmt.Sprintf("EndpointSlice: address %q skipped: not an IP address", e.Addresses[0])
				continue
			}
			ep := kubeEndpoint(a.Unmap().String(), int(*p.Port), e)
			key := ep.Addr()
			if i, dup := index[key]; dup {
				if ep.Ready && !eps[i].Ready {
					eps[i] = ep
				}
				continue
			}
			index[key] = len(eps)
			eps = append(eps, ep)
		}
	}
	if withEps > 0 && matched == 0 {
		switch {
		case notTCP != "":
			return Set{}, warns, fmt.Errorf("port %s of service %s/%s is %s, not TCP", kubePortLabel(port), ns, svc, notTCP)
		case noNumber:
			return Set{}, warns, fmt.Errorf("port %s of service %s/%s has no port number in its EndpointSlices", kubePortLabel(port), ns, svc)
		default:
			return Set{}, warns, fmt.Errorf("service %s/%s has no port %s in its EndpointSlices (ports: %s)", ns, svc, kubePortLabel(port), kubePortList(names))
		}
	}
	return Set{Endpoints: eps}.Normalize(), warns, nil
}

// slicePort finds port in a slice's ports: by name; a number that no port
// is named by port number; "" the unnamed port, or the only one.
func slicePort(ps []discoveryv1.EndpointPort, port string) (discoveryv1.EndpointPort, bool) {
	for _, p := range ps {
		if kubeDeref(p.Name) == port {
			return p, true
		}
	}
	if port == "" {
		if len(ps) == 1 {
			return ps[0], true
		}
		return discoveryv1.EndpointPort{}, false
	}
	if n, err := strconv.Atoi(port); err == nil {
		for _, p := range ps {
			if p.Port != nil && int(*p.Port) == n {
				return p, true
			}
		}
	}
	return discoveryv1.EndpointPort{}, false
}

func kubePortLabel(port string) string {
	if port == "" {
		return "(unnamed)"
	}
	return strconv.Quote(port)
}

func kubePortList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	out := make([]string, len(names))
	for i, n := range names {
		if n == "" {
			n = "(unnamed)"
		}
		out[i] = n
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// kubeEndpoint turns one slice endpoint into an Endpoint.
func kubeEndpoint(host string, port int, e discoveryv1.Endpoint) Endpoint {
	c := e.Conditions
	ready := c.Ready == nil || *c.Ready
	serving := ready
	if c.Serving != nil {
		serving = *c.Serving
	}
	ep := Endpoint{
		Host: host, Port: port, Weight: 1,
		Zone:        kubeDeref(e.Zone),
		Ready:       ready,
		Serving:     serving,
		Terminating: c.Terminating != nil && *c.Terminating,
	}
	switch {
	case e.TargetRef != nil && e.TargetRef.Name != "":
		ep.Name = e.TargetRef.Name
	case e.Hostname != nil:
		ep.Name = *e.Hostname
	}
	return ep
}

func kubeDeref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
