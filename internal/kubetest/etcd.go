package kubetest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Etcd is an etcd server embedded in the test process.
type Etcd struct {
	// Endpoint is its client URL, e.g. http://127.0.0.1:41234.
	Endpoint string
	e        *embed.Etcd
}

// StartEtcd starts a single-member etcd (go.etcd.io/etcd/server/v3/embed)
// on free loopback ports with its data in a temporary directory, and stops
// it when the test ends. It is the Kubernetes API server's store here, and
// a real etcd for etcd clients' tests.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	return StartEtcdAt(t, "")
}

// TLSFiles are PEM files for a TLS etcd: the CA that signed both
// certificates, the client's certificate and key.
type TLSFiles struct {
	CA, Cert, Key string
}

// StartEtcdTLS is StartEtcd serving clients over TLS and requiring a client
// certificate signed by its own CA; it returns the files a client needs.
func StartEtcdTLS(t testing.TB) (*Etcd, TLSFiles) {
	t.Helper()
	dir := t.TempDir()
	files, server, err := writeTestPKI(dir)
	if err != nil {
		t.Fatalf("kubetest: certificates: %v", err)
	}
	e := startEtcd(t, freeAddr(t), func(cfg *embed.Config) {
		cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = server.Cert, server.Key
		cfg.ClientTLSInfo.TrustedCAFile = files.CA
		cfg.ClientTLSInfo.ClientCertAuth = true
	})
	return e, files
}

// StartEtcdAt is StartEtcd serving clients on addr (host:port; "" picks a
// free port), for tests that start etcd after a client began trying it.
func StartEtcdAt(t testing.TB, addr string) *Etcd {
	t.Helper()
	return startEtcd(t, addr, nil)
}

func startEtcd(t testing.TB, addr string, tune func(*embed.Config)) *Etcd {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	peer := freeAddr(t)
	for peer == addr { // a closed port can be handed out again at once
		peer = freeAddr(t)
	}
	cfg := embed.NewConfig()
	cfg.Name = "kubetest"
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"stderr"}
	scheme := "http"
	if tune != nil {
		tune(cfg)
		if cfg.ClientTLSInfo.CertFile != "" {
			scheme = "https"
		}
	}
	cu := url.URL{Scheme: scheme, Host: addr}
	pu := url.URL{Scheme: "http", Host: peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, pu.String())
	cfg.UnsafeNoFsync = true // a test's data need not survive a power cut
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("kubetest: starting embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("kubetest: embedded etcd not ready after 60s")
	}
	return &Etcd{Endpoint: cu.String(), e: e}
}

// Close stops the server before the test ends (to test a lost store).
func (e *Etcd) Close() { e.e.Close() }

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string { return freeAddr(t) }

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
