package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	discoveryclient "k8s.io/client-go/kubernetes/typed/discovery/v1"

	"github.com/podkit/podkit/internal/kubetest"
	"github.com/podkit/podkit/internal/testdeps"
)

// namedServer answers every line it reads with its own name, so a client
// of the broker sees which endpoint took its connection.
func namedServer(t *testing.T, addr, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := fmt.Fprintln(c, name); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

// whoAnswers opens a connection through the broker and returns the name of
// the endpoint behind it ("" when the broker closed it).
func whoAnswers(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, "who")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return line[:len(line)-1]
}

// namedPair listens on 127.0.0.2 and 127.0.0.3 at one port (a dns: source
// has one port for every address), retrying until such a port is free.
func namedPair(t *testing.T) (port int) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		a, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.3", strconv.Itoa(port)))
		if err != nil {
			a.Close()
			continue
		}
		a.Close()
		b.Close()
		namedServer(t, a.Addr().String(), "two")
		namedServer(t, b.Addr().String(), "three")
		return port
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	return 0
}

// TestDNSChangeReachesTheBalancer: a broker on a dns: source, served by a
// real dnsmasq; when the record changes, new connections go to the new
// address within the record's TTL (1s here; the refresh ceiling is an
// hour, so only the TTL can have brought the change).
func TestDNSChangeReachesTheBalancer(t *testing.T) {
	t.Parallel()
	port := namedPair(t)
	dns := testdeps.StartDnsmasq(t, "127.0.0.2 svc."+testdeps.DnsmasqDomain+"\n", "", 1)
	cfg := flagConfig(fmt.Sprintf("dns:svc.%s:%d", testdeps.DnsmasqDomain, port), "tcp")
	cfg.DNSResolver = dns.Addr()
	cfg.DNSMinRefresh, cfg.DNSMaxRefresh = 100*time.Millisecond, time.Hour
	r := start(t, cfg)
	addr := r.addr("up")
	if got := whoAnswers(t, addr); got != "two" {
		t.Fatalf("first connection answered by %q, want two (127.0.0.2)", got)
	}
	dns.SetHosts("127.0.0.3 svc." + testdeps.DnsmasqDomain + "\n")
	testdeps.WaitFor(t, "connections to go to 127.0.0.3", func() bool { return whoAnswers(t, addr) == "three" })
	for range 10 {
		if got := whoAnswers(t, addr); got != "three" {
			t.Fatalf("after the change a connection went to %q", got)
		}
	}

	// The name disappears: the last good address stays in use, and the
	// failure shows on /endpoints.
	dns.SetHosts("")
	testdeps.WaitFor(t, "the failed refresh on /endpoints", func() bool {
		for _, u := range r.endpointsJSON() {
			if u.Name == "up" && u.DiscoveryError != "" {
				return true
			}
		}
		return false
	})
	if got := whoAnswers(t, addr); got != "three" {
		t.Fatalf("with the name gone, a connection went to %q, want the last good endpoint", got)
	}
}

// TestEndpointSliceTerminatingDrains: a broker on a kubernetes: source
// against a real kube-apiserver. There is no kubelet here: the test writes
// the EndpointSlice itself, as the EndpointSlice controller would. An
// endpoint marked terminating (still serving) gets no new connections
// while a ready one is left; its established connection keeps working.
func TestEndpointSliceTerminatingDrains(t *testing.T) {
	t.Parallel()
	// EndpointSlices refuse loopback addresses: the two endpoints are
	// this machine's own non-loopback address at two ports, one slice
	// each (a Service's slices are merged).
	ip := localIP(t)
	two := namedServer(t, net.JoinHostPort(ip, "0"), "two").Addr().(*net.TCPAddr).Port
	three := namedServer(t, net.JoinHostPort(ip, "0"), "three").Addr().(*net.TCPAddr).Port
	api := kubetest.Start(t)
	dc, err := discoveryclient.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	yes, no := true, false
	mkSlice := func(name string, port int) *discoveryv1.EndpointSlice {
		portName, portNum := "redis", int32(port)
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "cache"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &portNum}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no}},
			},
		}
		s, err := dc.EndpointSlices("default").Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sliceTwo, sliceThree := mkSlice("cache-two", two), mkSlice("cache-three", three)
	cfg := flagConfig("kubernetes:default/cache:redis", "tcp")
	cfg.Kubeconfig = api.Kubeconfig
	r := start(t, cfg)
	addr := r.addr("up")
	seen := map[string]bool{}
	testdeps.WaitFor(t, "both endpoints used", func() bool { seen[whoAnswers(t, addr)] = true; return seen["two"] && seen["three"] })

	// An established connection to three, held across the change.
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldR := bufio.NewReader(held)
	for {
		fmt.Fprintln(held, "who")
		line, err := heldR.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "three\n" {
			break
		}
		held.Close()
		if held, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		heldR = bufio.NewReader(held)
	}

	sliceThree.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: &no, Serving: &yes, Terminating: &yes}
	if _, err := dc.EndpointSlices("default").Update(ctx, sliceThree, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testdeps.WaitFor(t, "the terminating endpoint shown as not routable", func() bool {
		e, ok := r.endpoint("up", net.JoinHostPort(ip, strconv.Itoa(three)))
		return ok && e.Terminating && !e.Routable
	})
	for i := range 20 {
		if got := whoAnswers(t, addr); got != "two" {
			t.Fatalf("new connection %d went to %q while three is terminating", i, got)
		}
	}
	fmt.Fprintln(held, "who")
	if line, err := heldR.ReadString('\n'); err != nil || line != "three\n" {
		t.Fatalf("the established connection to the terminating endpoint: %q, %v", line, err)
	}

	// The ready endpoint goes too: the one still serving takes new
	// connections rather than none.
	sliceTwo.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: &no, Serving: &no, Terminating: &yes}
	if _, err := dc.EndpointSlices("default").Update(ctx, sliceTwo, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testdeps.WaitFor(t, "the serving endpoint used when nothing is ready", func() bool { return whoAnswers(t, addr) == "three" })
}

// localIP is one of this machine's non-loopback IPv4 addresses.
func localIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to put in an EndpointSlice")
	return ""
}
