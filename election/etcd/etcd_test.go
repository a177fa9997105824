package etcd

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/election/backend"
	"github.com/podkit/podkit/election/electiontest"
	"github.com/podkit/podkit/internal/kubetest"
)

func TestConformance(t *testing.T) {
	srv := kubetest.StartEtcd(t)
	electiontest.Run(t, func(t *testing.T, ids []string) []backend.Backend {
		var bs []backend.Backend
		for range ids {
			b, err := New(Config{Endpoints: []string{srv.Endpoint}, Prefix: "/podkit/elect/" + t.Name(), TTL: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, b)
		}
		return bs
	})
}

// TestUnreachableAtStart: with etcd down the replica reports errors, keeps
// retrying and never claims leadership; once etcd answers it leads.
func TestUnreachableAtStart(t *testing.T) {
	addr := freeAddr(t)
	b, err := New(Config{Endpoints: []string{"http://" + addr}, Prefix: "/podkit/elect/unreachable", TTL: 2 * time.Second, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs int
	var claimed bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	leading := make(chan struct{})
	var once sync.Once
	go func() {
		done <- b.Campaign(ctx, backend.Candidate{ID: "a"}, func(o backend.Observation) {
			mu.Lock()
			defer mu.Unlock()
			if o.Err != nil {
				errs++
			}
			if o.Leader == "a" {
				claimed = true
				once.Do(func() { close(leading) })
			}
		})
	}()
	// Wait for the failure to be reported (bounded), then check nothing
	// was claimed meanwhile.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := errs
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no error observation with etcd down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if claimed {
		t.Fatal("claimed leadership with etcd down")
	}
	mu.Unlock()

	kubetest.StartEtcdAt(t, addr)
	select {
	case <-leading:
	case <-time.After(30 * time.Second):
		t.Fatal("did not lead after etcd came up")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Campaign: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Prefix: "/p", TTL: 2 * time.Second}, "no endpoints"},
		{Config{Endpoints: []string{"http://h:1"}, TTL: 2 * time.Second}, "empty key prefix"},
		{Config{Endpoints: []string{"http://h:1"}, Prefix: "/p", TTL: time.Second}, "below etcd's minimum"},
		{Config{Endpoints: []string{"http://h:1"}, Prefix: "/p", TTL: 2 * time.Second, CertFile: "c"}, "both a cert and a key"},
		{Config{Endpoints: []string{"http://h:1"}, Prefix: "/p", TTL: 2 * time.Second, CAFile: "/nonexistent/ca.pem"}, "CA file"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	e := kubetest.FreeAddr(t)
	return e
}

// TestTLS: an etcd that serves TLS only and requires client certificates.
func TestTLS(t *testing.T) {
	srv, files := kubetest.StartEtcdTLS(t)
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("endpoint %s", srv.Endpoint)
	}
	newB := func(cert, key string) *Backend {
		b, err := New(Config{Endpoints: []string{srv.Endpoint}, Prefix: "/podkit/elect/tls", TTL: 2 * time.Second,
			CAFile: files.CA, CertFile: cert, KeyFile: key, DialTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hist := &electiontest.History{}
	n := electiontest.Start(t, hist, "a", newB(files.Cert, files.Key))
	electiontest.Agree(t, []*electiontest.Node{n}, 0)

	// Without a client certificate the server refuses: errors, no claim.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	errs, claimed := 0, false
	go func() {
		// Stop once the refusal has been reported (or give up after 30s).
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := errs
			mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	newB("", "").Campaign(ctx, backend.Candidate{ID: "b"}, func(o backend.Observation) {
		mu.Lock()
		defer mu.Unlock()
		if o.Err != nil {
			errs++
		}
		claimed = claimed || o.Leader == "b"
	})
	if claimed || errs == 0 {
		t.Errorf("without a client certificate: claimed %v, %d errors", claimed, errs)
	}
}
