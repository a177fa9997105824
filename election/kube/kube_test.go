package kube

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podkit/podkit/election/backend"
	"github.com/podkit/podkit/election/electiontest"
	"github.com/podkit/podkit/internal/kubetest"
)

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

func leaseName(t *testing.T) string {
	return strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
}

func testConfig(rc *rest.Config, name string) Config {
	return Config{Name: name, Namespace: "default", RestConfig: rc, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}
}

// TestAPIServer runs everything against one real kube-apiserver.
func TestAPIServer(t *testing.T) {
	api := kubetest.Start(t)
	if api == nil {
		return
	}
	t.Run("Conformance", func(t *testing.T) {
		electiontest.Run(t, func(t *testing.T, ids []string) []backend.Backend {
			var bs []backend.Backend
			for range ids {
				b, err := New(testConfig(api.Config, leaseName(t)))
				if err != nil {
					t.Fatal(err)
				}
				bs = append(bs, b)
			}
			return bs
		})
	})

	t.Run("EpochIsLeaseTransitions", func(t *testing.T) {
		name := leaseName(t)
		b, err := New(testConfig(api.Config, name))
		if err != nil {
			t.Fatal(err)
		}
		hist := &electiontest.History{}
		n := electiontest.Start(t, hist, "solo", b)
		_, epoch := electiontest.Agree(t, []*electiontest.Node{n}, 0)
		cs := kubernetes.NewForConfigOrDie(api.Config)
		l, err := cs.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := uint64(*l.Spec.LeaseTransitions); got != epoch || *l.Spec.HolderIdentity != "solo" || l.Annotations[AddressAnnotation] != n.Address {
			t.Errorf("Lease %+v %v; want holder solo, transitions %d, address %s", l.Spec, l.Annotations, epoch, n.Address)
		}
		// Stopping releases: the holder is cleared, the count kept.
		n.Stop(t)
		l, err = cs.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *l.Spec.HolderIdentity != "" || uint64(*l.Spec.LeaseTransitions) != epoch {
			t.Errorf("after a graceful stop: holder %q, transitions %d; want released at %d", *l.Spec.HolderIdentity, *l.Spec.LeaseTransitions, epoch)
		}
	})

	// The shipped manifests are valid against the real schema, and the
	// RBAC they grant is enough for an elector running as their service
	// account.
	t.Run("Manifests", func(t *testing.T) {
		ctx := context.Background()
		dir := filepath.Join("..", "..", "deploy", "kubernetes", "elect")
		rbac, err := os.ReadFile(filepath.Join(dir, "rbac.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.Apply(ctx, "default", rbac, false); err != nil {
			t.Fatalf("rbac.yaml: %v", err)
		}
		for _, f := range []string{"deployment.yaml", "statefulset-raft.yaml"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := api.Apply(ctx, "default", b, true); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		sa, err := api.ServiceAccountConfig(ctx, "default", "elect")
		if err != nil {
			t.Fatal(err)
		}
		var bs []backend.Backend
		for range 2 {
			b, err := New(testConfig(sa, "rbac-test"))
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, b)
		}
		hist := &electiontest.History{}
		a := electiontest.Start(t, hist, "a", bs[0])
		b := electiontest.Start(t, hist, "b", bs[1])
		leader, _ := electiontest.Agree(t, []*electiontest.Node{a, b}, 0)
		ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := leader.Backend.Resign(ctx2); err != nil {
			t.Fatalf("resign as the service account: %v", err)
		}
		if err := hist.Check(); err != nil {
			t.Error(err)
		}
	})

	t.Run("UnreachableAtStart", func(t *testing.T) {
		rc := rest.CopyConfig(api.Config)
		rc.Host = "https://" + kubetest.FreeAddr(t)
		b, err := New(testConfig(rc, leaseName(t)))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		errs, claimed := 0, false
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- b.Campaign(ctx, backend.Candidate{ID: "a"}, func(o backend.Observation) {
				mu.Lock()
				defer mu.Unlock()
				if o.Err != nil {
					errs++
				}
				claimed = claimed || o.Leader != ""
			})
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := errs
			mu.Unlock()
			if n > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Campaign: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if claimed || errs == 0 {
			t.Errorf("with the API server unreachable: claimed %v, %d errors; want no claim and errors reported", claimed, errs)
		}
	})
}

func TestValidate(t *testing.T) {
	ok := Config{Name: "x", LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second, RestConfig: &rest.Config{Host: "https://127.0.0.1:1"}}
	tests := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Name = "" }, "empty Lease name"},
		{func(c *Config) { c.LeaseDuration = 500 * time.Millisecond }, "lease duration 500ms is below 1s"},
		{func(c *Config) { c.RenewDeadline = 5 * time.Second }, "renew deadline 5s must be positive and below"},
		{func(c *Config) { c.RetryPeriod = 3 * time.Second }, "retry period 3s"},
		{func(c *Config) { c.RestConfig = nil; c.Kubeconfig = "/nonexistent/kubeconfig" }, "kubeconfig /nonexistent/kubeconfig"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(valid) = %v", err)
	}
}
