package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryclient "k8s.io/client-go/kubernetes/typed/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/podkit/podkit/internal/kubetest"
	"github.com/podkit/podkit/internal/retry"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestParseKubernetes(t *testing.T) {
	tests := []struct {
		in            string
		ns, svc, port string
	}{
		{"kubernetes:default/redis:redis", "default", "redis", "redis"},
		{"k8s:prod-1/web:http", "prod-1", "web", "http"},
		{"kubernetes:ns/svc:8080", "ns", "svc", "8080"},
		{"kubernetes:ns/svc:", "ns", "svc", ""},
		{"kubernetes:ns/svc", "ns", "svc", ""},
		{"kubernetes:0ns/1svc:a-b", "0ns", "1svc", "a-b"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			src, err := Parse(tc.in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			k, ok := src.(*kubernetes)
			if !ok {
				t.Fatalf("Parse gave a %T", src)
			}
			if k.namespace != tc.ns || k.service != tc.svc || k.port != tc.port {
				t.Errorf("got %s/%s:%s, want %s/%s:%s", k.namespace, k.service, k.port, tc.ns, tc.svc, tc.port)
			}
			if src.Kind() != "kubernetes" || src.String() != tc.in {
				t.Errorf("Kind %q String %q", src.Kind(), src.String())
			}
		})
	}
}

func TestParseKubernetesErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"kubernetes:", "want KIND:SPEC"},
		{"kubernetes:redis:6379", "want NAMESPACE/SERVICE:PORTNAME"},
		{"kubernetes:/redis:redis", "the namespace is empty"},
		{"kubernetes:default/:redis", "the service is empty"},
		{"kubernetes:Default/redis:redis", `namespace "Default" is not a DNS-1123 label`},
		{"kubernetes:default/redis.x:redis", `service "redis.x" is not a DNS-1123 label`},
		{"kubernetes:default/redis_x:redis", `service "redis_x" is not a DNS-1123 label`},
		{"kubernetes:default/-redis:redis", `service "-redis" is not a DNS-1123 label`},
		{"kubernetes:default/redis:Redis", `port name "Redis" is not a DNS-1123 label`},
		{"kubernetes:default/redis:a:b", `port name "a:b" is not a DNS-1123 label`},
		{"kubernetes:a/b/c:http", `service "b/c" is not a DNS-1123 label`},
		{"kubernetes:" + strings.Repeat("a", 64) + "/redis:redis", "must be no more than 63 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBadSource mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzParseKubernetes: a kubernetes: string that parses names a
// namespace and a Service that are DNS-1123 labels.
func FuzzParseKubernetes(f *testing.F) {
	for _, s := range []string{"default/redis:redis", "ns/svc:", "ns/svc", "a/b/c", "/:", "ns/svc:80", "NS/x:y", "a/" + strings.Repeat("b", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ns, svc, port, err := parseKubernetes(spec)
		if err != nil {
			return
		}
		if kubeLabel("namespace", ns) != nil || kubeLabel("service", svc) != nil || (port != "" && kubeLabel("port", port) != nil) {
			t.Fatalf("parseKubernetes(%q) = %q, %q, %q", spec, ns, svc, port)
		}
	})
}

// Helpers to write EndpointSlices as the EndpointSlice controller would.

func kubePort(name string, n int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: &name, Port: &n}
}

type kubeCond struct{ ready, serving, terminating *bool }

var (
	kubeReady       = kubeCond{ptrTo(true), ptrTo(true), ptrTo(false)}
	kubeUnready     = kubeCond{ptrTo(false), ptrTo(false), ptrTo(false)}
	kubeTerminating = kubeCond{ptrTo(false), ptrTo(true), ptrTo(true)} // still serving
)

func ptrTo[T any](v T) *T { return &v }

// kubeEP is an endpoint for pod (or, with a "host:" prefix, hostname).
func kubeEP(addr, zone, pod string, c kubeCond) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: c.ready, Serving: c.serving, Terminating: c.terminating},
	}
	if zone != "" {
		e.Zone = &zone
	}
	if h, ok := strings.CutPrefix(pod, "host:"); ok {
		e.Hostname = &h
	} else if pod != "" {
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
	}
	return e
}

func kubeSlice(name, svc string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc,
			discoveryv1.LabelManagedBy:   "podkit-test",
		}},
		AddressType: at,
		Ports:       ports,
		Endpoints:   eps,
	}
}

// TestKubeSet checks how slices become a set, without a server.
func TestKubeSet(t *testing.T) {
	http := []discoveryv1.EndpointPort{kubePort("http", 8080), kubePort("metrics", 9090)}
	tests := []struct {
		name   string
		port   string
		slices []*discoveryv1.EndpointSlice
		want   []Endpoint
		err    string
	}{
		{name: "none", port: "http", err: "service ns/svc has no EndpointSlices (does the Service exist?)"},
		{
			name: "nil conditions", port: "http",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, http,
				kubeEP("10.0.0.1", "", "", kubeCond{}),
				kubeEP("10.0.0.2", "", "", kubeCond{ready: ptrTo(false)}),
				kubeEP("10.0.0.3", "", "", kubeCond{ready: ptrTo(false), serving: ptrTo(true)}),
			)},
			want: []Endpoint{
				{Host: "10.0.0.1", Port: 8080, Weight: 1, Ready: true, Serving: true},
				{Host: "10.0.0.2", Port: 8080, Weight: 1},
				{Host: "10.0.0.3", Port: 8080, Weight: 1, Serving: true},
			},
		},
		{
			name: "by number", port: "9090",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, http, kubeEP("10.0.0.1", "z", "p", kubeReady))},
			want:   []Endpoint{{Host: "10.0.0.1", Port: 9090, Weight: 1, Zone: "z", Name: "p", Ready: true, Serving: true}},
		},
		{
			name: "unnamed", port: "",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{kubePort("", 6379)}, kubeEP("10.0.0.1", "", "host:r-0", kubeReady))},
			want:   []Endpoint{{Host: "10.0.0.1", Port: 6379, Weight: 1, Name: "r-0", Ready: true, Serving: true}},
		},
		{
			name: "empty name, several ports", port: "",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, http, kubeEP("10.0.0.1", "", "", kubeReady))},
			err:    "service ns/svc has no port (unnamed) in its EndpointSlices (ports: http, metrics)",
		},
		{
			name: "missing port", port: "grpc",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, http, kubeEP("10.0.0.1", "", "", kubeReady))},
			err:    `service ns/svc has no port "grpc" in its EndpointSlices (ports: http, metrics)`,
		},
		{
			name: "udp", port: "dns",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptrTo("dns"), Port: ptrTo(int32(53)), Protocol: ptrTo(corev1.ProtocolUDP)}}, kubeEP("10.0.0.1", "", "", kubeReady))},
			err:    `port "dns" of service ns/svc is UDP, not TCP`,
		},
		{
			name: "no number", port: "any",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptrTo("any")}}, kubeEP("10.0.0.1", "", "", kubeReady))},
			err:    `port "any" of service ns/svc has no port number in its EndpointSlices`,
		},
		{
			// The controller's placeholder for a Service without pods:
			// no ports, no endpoints.
			name: "scaled to zero", port: "grpc",
			slices: []*discoveryv1.EndpointSlice{kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, nil)},
			want:   nil,
		},
		{
			name: "merged, deduplicated, FQDN ignored", port: "http",
			slices: []*discoveryv1.EndpointSlice{
				kubeSlice("a", "svc", discoveryv1.AddressTypeIPv4, http, kubeEP("10.0.0.1", "", "old", kubeUnready)),
				kubeSlice("b", "svc", discoveryv1.AddressTypeIPv4, http, kubeEP("10.0.0.1", "", "new", kubeReady), kubeEP("10.0.0.1", "", "again", kubeUnready)),
				kubeSlice("c", "svc", discoveryv1.AddressTypeIPv6, http, kubeEP("fd00::1", "", "", kubeReady)),
				kubeSlice("d", "svc", discoveryv1.AddressTypeFQDN, http, kubeEP("db.example.com", "", "", kubeReady)),
				kubeSlice("e", "svc", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{kubePort("grpc", 1)}, kubeEP("10.0.0.9", "", "", kubeReady)),
			},
			want: []Endpoint{
				{Host: "10.0.0.1", Port: 8080, Weight: 1, Name: "new", Ready: true, Serving: true},
				{Host: "fd00::1", Port: 8080, Weight: 1, Ready: true, Serving: true},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, _, err := kubeSet("ns", "svc", tc.port, tc.slices)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(set.Endpoints, tc.want) {
				t.Errorf("got  %+v\nwant %+v", set.Endpoints, tc.want)
			}
		})
	}
	_, warns, _ := kubeSet("ns", "svc", "http", []*discoveryv1.EndpointSlice{kubeSlice("d", "svc", discoveryv1.AddressTypeFQDN, nil, kubeEP("db.example.com", "", "", kubeReady))})
	if !strings.Contains(warns["d"], "FQDN ignored") {
		t.Errorf("FQDN slice: warnings %v", warns)
	}
}

// TestKubernetes runs the kubernetes: source against a real
// kube-apiserver (internal/kubetest). There is no kubelet and no
// EndpointSlice controller there: no Pod runs, so the test writes the
// EndpointSlices itself, as the controller would for a Service's pods.
func TestKubernetes(t *testing.T) {
	api := kubetest.Start(t)
	if api == nil {
		return
	}
	dc, err := discoveryclient.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	slicesIn := func(ns string) discoveryclient.EndpointSliceInterface { return dc.EndpointSlices(ns) }
	create := func(t *testing.T, s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
		t.Helper()
		got, err := slicesIn("default").Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating EndpointSlice %s: %v", s.Name, err)
		}
		return got
	}
	update := func(t *testing.T, s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
		t.Helper()
		got, err := slicesIn("default").Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("updating EndpointSlice %s: %v", s.Name, err)
		}
		return got
	}
	ports := []discoveryv1.EndpointPort{kubePort("http", 8080), kubePort("metrics", 9090)}

	t.Run("PortByNameAndZones", func(t *testing.T) {
		create(t, kubeSlice("web-abc", "web", discoveryv1.AddressTypeIPv4, ports,
			kubeEP("10.1.0.1", "zone-a", "web-0", kubeReady),
			kubeEP("10.1.0.2", "zone-b", "host:web-1", kubeReady)))
		for _, tc := range []struct {
			port string
			want int
		}{{"http", 8080}, {"metrics", 9090}, {"9090", 9090}} {
			w := startKube(t, "kubernetes:default/web:"+tc.port, api.Kubeconfig)
			waitSynced(t, w)
			want := []Endpoint{
				{Host: "10.1.0.1", Port: tc.want, Weight: 1, Zone: "zone-a", Name: "web-0", Ready: true, Serving: true},
				{Host: "10.1.0.2", Port: tc.want, Weight: 1, Zone: "zone-b", Name: "web-1", Ready: true, Serving: true},
			}
			if got := w.Current().Endpoints; !slices.Equal(got, want) {
				t.Errorf("port %s: got %+v, want %+v", tc.port, got, want)
			}
		}
	})

	t.Run("TerminatingDrains", func(t *testing.T) {
		s := create(t, kubeSlice("drain-abc", "drain", discoveryv1.AddressTypeIPv4, ports,
			kubeEP("10.2.0.1", "", "drain-0", kubeReady),
			kubeEP("10.2.0.2", "", "drain-1", kubeReady)))
		w := startKube(t, "kubernetes:default/drain:http", api.Kubeconfig)
		waitSynced(t, w)
		if got := routableAddrs(w.Current()); !slices.Equal(got, []string{"10.2.0.1:8080", "10.2.0.2:8080"}) {
			t.Fatalf("routable %v", got)
		}
		// drain-0 is being deleted: terminating, still serving.
		s.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: kubeTerminating.ready, Serving: kubeTerminating.serving, Terminating: kubeTerminating.terminating}
		s = update(t, s)
		testdeps.WaitFor(t, "drain-0 terminating", func() bool { return hasTerminating(w.Current(), "10.2.0.1") })
		if got := routableAddrs(w.Current()); !slices.Equal(got, []string{"10.2.0.2:8080"}) {
			t.Errorf("with drain-0 terminating and drain-1 ready: routable %v, want only drain-1", got)
		}
		// drain-1 fails its readiness: the terminating one is all that serves.
		s.Endpoints[1].Conditions = discoveryv1.EndpointConditions{Ready: kubeUnready.ready, Serving: kubeUnready.serving, Terminating: kubeUnready.terminating}
		update(t, s)
		testdeps.WaitFor(t, "drain-1 not ready", func() bool {
			cur := w.Current()
			return len(cur.Endpoints) == 2 && !cur.Endpoints[1].Ready
		})
		if got := routableAddrs(w.Current()); !slices.Equal(got, []string{"10.2.0.1:8080"}) {
			t.Errorf("with only drain-0 serving (terminating): routable %v, want drain-0", got)
		}
	})

	t.Run("ScaleToZero", func(t *testing.T) {
		s := create(t, kubeSlice("zero-abc", "zero", discoveryv1.AddressTypeIPv4, ports,
			kubeEP("10.3.0.1", "", "zero-0", kubeReady),
			kubeEP("10.3.0.2", "", "zero-1", kubeReady)))
		w := startKube(t, "kubernetes:default/zero:http", api.Kubeconfig)
		waitSynced(t, w)
		// What the controller leaves for a Service without pods.
		s.Endpoints, s.Ports = nil, nil
		update(t, s)
		testdeps.WaitFor(t, "the empty set", func() bool { return len(w.Current().Endpoints) == 0 })
		if synced, err := w.Status(); !synced || err != nil {
			t.Errorf("scaled to zero: synced %v, err %v; want an empty set delivered without error", synced, err)
		}
	})

	t.Run("SlicesMerged", func(t *testing.T) {
		create(t, kubeSlice("multi-1", "multi", discoveryv1.AddressTypeIPv4, ports,
			kubeEP("10.4.0.1", "zone-a", "multi-0", kubeReady)))
		create(t, kubeSlice("multi-2", "multi", discoveryv1.AddressTypeIPv4, ports,
			kubeEP("10.4.0.2", "zone-b", "multi-1", kubeReady),
			kubeEP("10.4.0.1", "zone-a", "multi-0", kubeUnready))) // the same pod, being moved
		create(t, kubeSlice("multi-3", "multi", discoveryv1.AddressTypeIPv6, ports,
			kubeEP("fd00::4", "zone-c", "multi-2", kubeReady)))
		create(t, kubeSlice("multi-4", "multi", discoveryv1.AddressTypeFQDN, ports,
			kubeEP("db.example.com", "", "", kubeReady)))
		create(t, kubeSlice("other-1", "other", discoveryv1.AddressTypeIPv4, ports,
			kubeEP("10.4.9.9", "", "", kubeReady)))
		w := startKube(t, "kubernetes:default/multi:http", api.Kubeconfig)
		waitSynced(t, w)
		want := []string{"10.4.0.1:8080", "10.4.0.2:8080", "[fd00::4]:8080"}
		if got := routableAddrs(w.Current()); !slices.Equal(got, want) {
			t.Errorf("routable %v, want %v (the ready copy of 10.4.0.1, no FQDN, nothing of other)", got, want)
		}
		if err := slicesIn("default").Delete(ctx, "multi-2", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		testdeps.WaitFor(t, "multi-2's endpoints gone", func() bool {
			return slices.Equal(addrs(w.Current()), []string{"10.4.0.1:8080", "[fd00::4]:8080"})
		})
	})

	t.Run("UnknownPort", func(t *testing.T) {
		create(t, kubeSlice("typo-abc", "typo", discoveryv1.AddressTypeIPv4, ports, kubeEP("10.5.0.1", "", "", kubeReady)))
		w := startKube(t, "kubernetes:default/typo:grpc", api.Kubeconfig)
		err := waitErr(t, w)
		if want := `service default/typo has no port "grpc" in its EndpointSlices (ports: http, metrics)`; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
		if synced, _ := w.Status(); synced {
			t.Error("synced with a port that does not exist")
		}
	})

	t.Run("NoSlices", func(t *testing.T) {
		w := startKube(t, "kubernetes:default/absent:http", api.Kubeconfig)
		err := waitErr(t, w)
		if want := "service default/absent has no EndpointSlices (does the Service exist?)"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
		if synced, _ := w.Status(); synced {
			t.Error("synced without a Service")
		}
		// The Service appears: found.
		create(t, kubeSlice("absent-abc", "absent", discoveryv1.AddressTypeIPv4, ports, kubeEP("10.6.0.1", "", "", kubeReady)))
		waitSynced(t, w)
		testdeps.WaitFor(t, "no error", func() bool { _, err := w.Status(); return err == nil })
		// It goes away again: failed, the last set kept.
		if err := slicesIn("default").Delete(ctx, "absent-abc", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitErr(t, w)
		if got := addrs(w.Current()); !slices.Equal(got, []string{"10.6.0.1:8080"}) {
			t.Errorf("after the Service's slices went: %v, want the last set kept", got)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		kc := writeKubeconfig(t, api.Config, "https://"+kubetest.FreeAddr(t))
		w := startKube(t, "kubernetes:default/web:http", kc)
		err := waitErr(t, w)
		if !strings.Contains(err.Error(), "listing the EndpointSlices of service default/web") {
			t.Errorf("err = %v", err)
		}
		if synced, _ := w.Status(); synced {
			t.Error("synced without an apiserver")
		}
		select {
		case <-w.Done():
			t.Error("the source gave up; it must keep retrying")
		default:
		}
	})

	t.Run("BadKubeconfig", func(t *testing.T) {
		kc := filepath.Join(t.TempDir(), "missing")
		w := startKube(t, "kubernetes:default/web:http", kc)
		<-w.Done()
		if _, err := w.Status(); err == nil || !strings.Contains(err.Error(), "kubeconfig "+kc) {
			t.Errorf("err = %v, want one naming the kubeconfig", err)
		}
	})

	// The apiserver goes away (a proxy in front of it is cut) and comes
	// back: the set stays while it is gone, and what changed meanwhile
	// arrives when it is back.
	t.Run("APIServerDown", func(t *testing.T) {
		s := create(t, kubeSlice("down-abc", "down", discoveryv1.AddressTypeIPv4, ports, kubeEP("10.7.0.1", "", "", kubeReady)))
		u, err := url.Parse(api.URL)
		if err != nil {
			t.Fatal(err)
		}
		p := startKubeProxy(t, u.Host)
		w := startKube(t, "kubernetes:default/down:http", writeKubeconfig(t, api.Config, "https://"+p.addr))
		waitSynced(t, w)
		p.down()
		err = waitErr(t, w)
		t.Logf("apiserver unreachable: %v", err)
		if got := addrs(w.Current()); !slices.Equal(got, []string{"10.7.0.1:8080"}) {
			t.Errorf("while the apiserver is away: %v, want the last set kept", got)
		}
		s.Endpoints = append(s.Endpoints, kubeEP("10.7.0.2", "", "", kubeReady))
		update(t, s)
		p.up(t)
		testdeps.WaitFor(t, "the change made while away", func() bool {
			_, err := w.Status()
			return err == nil && slices.Equal(addrs(w.Current()), []string{"10.7.0.1:8080", "10.7.0.2:8080"})
		})
		// Away and back with nothing changed: the error clears all the same.
		p.down()
		waitErr(t, w)
		p.up(t)
		testdeps.WaitFor(t, "recovery with the same set", func() bool { _, err := w.Status(); return err == nil })
		if got := addrs(w.Current()); !slices.Equal(got, []string{"10.7.0.1:8080", "10.7.0.2:8080"}) {
			t.Errorf("after recovering: %v", got)
		}
	})

	// Watches the server ends (here after 1–2s instead of 5–10 min) are
	// resumed, and what changes after each is seen, with no failure.
	t.Run("WatchExpiry", func(t *testing.T) {
		s := create(t, kubeSlice("expiry-abc", "expiry", discoveryv1.AddressTypeIPv4, ports, kubeEP("10.9.0.1", "", "", kubeReady)))
		w := startKubeWith(t, "kubernetes:default/expiry:http", api.Kubeconfig, func(k *kubernetes) { k.watchTimeout = time.Second })
		waitSynced(t, w)
		for i := 2; i <= 4; i++ {
			retry.Sleep(ctx, 2500*time.Millisecond) // past the watch's end
			s.Endpoints = append(s.Endpoints, kubeEP(fmt.Sprintf("10.9.0.%d", i), "", "", kubeReady))
			s = update(t, s)
			testdeps.WaitFor(t, fmt.Sprintf("%d endpoints", i), func() bool { return len(w.Current().Endpoints) == i })
		}
		if _, err := w.Status(); err != nil {
			t.Errorf("a watch that ended was reported: %v", err)
		}
	})

	// deploy/kubernetes/broker/rbac.yaml is all the source needs, and only
	// in its own namespace.
	t.Run("RBAC", func(t *testing.T) {
		cc, err := coreclient.NewForConfig(api.Config)
		if err != nil {
			t.Fatal(err)
		}
		ns := "broker-rbac"
		if _, err := cc.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rbac, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", "broker", "rbac.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.Apply(ctx, ns, rbac, false); err != nil {
			t.Fatalf("rbac.yaml: %v", err)
		}
		if _, err := slicesIn(ns).Create(ctx, kubeSlice("redis-abc", "redis", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{kubePort("redis", 6379)}, kubeEP("10.8.0.1", "", "", kubeReady)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		sa, err := api.ServiceAccountConfig(ctx, ns, "broker")
		if err != nil {
			t.Fatal(err)
		}
		kc := writeKubeconfig(t, sa, sa.Host)
		w := startKube(t, "kubernetes:"+ns+"/redis:redis", kc)
		waitSynced(t, w)
		if got := addrs(w.Current()); !slices.Equal(got, []string{"10.8.0.1:6379"}) {
			t.Errorf("as the broker service account: %v", got)
		}
		other := startKube(t, "kubernetes:default/web:http", kc)
		if err := waitErr(t, other); !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("another namespace: err = %v, want forbidden", err)
		}
	})
}

// startKube parses and runs a kubernetes: source until the test ends.
func startKube(t *testing.T, spec, kubeconfig string) *Watch {
	t.Helper()
	return startKubeWith(t, spec, kubeconfig, nil)
}

// startKubeWith is startKube with the source changed by tune first.
func startKubeWith(t *testing.T, spec, kubeconfig string, tune func(*kubernetes)) *Watch {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	src, err := Parse(spec, Options{Kubeconfig: kubeconfig, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(src.(*kubernetes))
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := StartWatch(ctx, src, WatchOptions{Logger: log})
	t.Cleanup(func() { cancel(); <-w.Done() })
	return w
}

func waitSynced(t *testing.T, w *Watch) {
	t.Helper()
	testdeps.WaitFor(t, w.Name()+" synced", func() bool { ok, _ := w.Status(); return ok })
}

func waitErr(t *testing.T, w *Watch) error {
	t.Helper()
	var err error
	testdeps.WaitFor(t, w.Name()+" failing", func() bool { _, err = w.Status(); return err != nil })
	return err
}

func routableAddrs(s Set) []string { return addrs(Set{Endpoints: s.Routable()}) }

func hasTerminating(s Set, host string) bool {
	for _, e := range s.Endpoints {
		if e.Host == host {
			return e.Terminating
		}
	}
	return false
}

// writeKubeconfig writes a kubeconfig with rc's credentials for server.
func writeKubeconfig(t *testing.T, rc *rest.Config, server string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: rc.CAData}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: rc.BearerToken}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubeProxy forwards TCP connections to the apiserver; down closes the
// listener and every connection, up listens again on the same address.
type kubeProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
	wg           sync.WaitGroup
}

func startKubeProxy(t *testing.T, target string) *kubeProxy {
	p := &kubeProxy{addr: kubetest.FreeAddr(t), target: target, conns: map[net.Conn]struct{}{}}
	p.up(t)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *kubeProxy) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	testdeps.WaitFor(t, "the proxy listening on "+p.addr, func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
}

func (p *kubeProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *kubeProxy) forward(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	if !p.track(c, s) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); s.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, s); c.Close(); done <- struct{}{} }()
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

func (p *kubeProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}
