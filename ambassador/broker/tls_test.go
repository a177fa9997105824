package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/sidecar/tlsproxy"
)

// startTLSProxy runs podkit tls-proxy in tcp mode in front of target,
// requiring client certificates from ca with the URI SAN allowed.
func startTLSProxy(t *testing.T, pki *testdeps.PKI, dir, target, allowURI string) string {
	t.Helper()
	cert, key := pki.ServerFiles(dir)
	cfg := tlsproxy.DefaultConfig()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Listener = ln.Addr().String(), ln
	cfg.Target, cfg.Mode = target, tlsproxy.ModeTCP
	cfg.CertFile, cfg.KeyFile, cfg.ClientCA = cert, key, pki.CAFile(dir)
	cfg.AllowSANURI = []string{allowURI}
	px, err := tlsproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := container.DefaultOptions()
	o.AdminAddr = "off"
	o.DrainDelay = 0
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, px, o) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func echoOnce(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

// TestTLSOrigination: the application speaks plaintext to the broker,
// and the wire to podkit tls-proxy --client-ca carries mutual TLS: the
// broker verifies the server's certificate (against its CA and a SAN)
// and presents its own, which tls-proxy checks against its allow-list.
// A rotated client certificate is used by new connections after a
// reload, while established ones go on.
func TestTLSOrigination(t *testing.T) {
	dir := t.TempDir()
	pki := testdeps.NewPKI(t, "mesh")
	srv := echo(t)
	proxied := startTLSProxy(t, pki, dir, srv.Addr(), "spiffe://podkit/app")
	clientCert, clientKey := pki.Files(dir, "client", testdeps.Leaf{CN: "app", URIs: []string{"spiffe://podkit/app"}, Client: true})

	cfg := flagConfig(static(proxied), TCP)
	cfg.SetTLS(TLS{CA: pki.CAFile(dir), Cert: clientCert, Key: clientKey, SANs: []string{"localhost"}})
	r := start(t, cfg)
	testdeps.WaitFor(t, "tls-proxy healthy through TLS", func() bool {
		e, _ := r.endpoint("up", proxied)
		return e.Health == "healthy" && e.Usable
	})
	held, err := net.Dial("tcp", r.addr("up"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if got, err := echoOnce(held, "hello over mTLS"); err != nil || got != "hello over mTLS" {
		t.Fatalf("echo through broker and tls-proxy: %q, %v", got, err)
	}

	// Rotate to a certificate tls-proxy does not allow: new connections
	// are refused by tls-proxy; the held one goes on.
	other := testdeps.NewPKI(t, "other")
	cp, kp, _ := other.Issue(testdeps.Leaf{CN: "intruder", URIs: []string{"spiffe://podkit/intruder"}, Client: true})
	if err := os.WriteFile(clientCert, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clientKey, kp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.b.tlsReloader.Reload(context.Background()); err != nil {
		t.Fatalf("TLS reload: %v", err)
	}
	c, err := net.Dial("tcp", r.addr("up"))
	if err == nil {
		if got, err := echoOnce(c, "let me in"); err == nil {
			t.Errorf("a connection with a refused client certificate got %q through", got)
		}
		c.Close()
	}
	if got, err := echoOnce(held, "still here"); err != nil || got != "still here" {
		t.Errorf("the established connection after the reload: %q, %v", got, err)
	}

	// A broker that does not trust the server's CA never connects.
	cfg = flagConfig(static(proxied), TCP)
	cfg.Upstream.HealthCheck.Type = CheckNone
	cfg.SetTLS(TLS{CA: other.CAFile(t.TempDir())})
	r2 := start(t, cfg)
	c, err = net.Dial("tcp", r2.addr("up"))
	if err == nil {
		if got, err := echoOnce(c, "x"); err == nil {
			t.Errorf("got %q through a server the broker does not trust", got)
		}
		c.Close()
	}
	testdeps.WaitFor(t, "the failed handshake counted as a connect error", func() bool {
		return r2.counter("connect_errors", "up", proxied) >= 1
	})
}
