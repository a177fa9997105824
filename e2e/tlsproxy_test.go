//go:build container

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
)

// tlsTestCA issues certificates for the tls-proxy pod test.
type tlsTestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTLSTestCA(t *testing.T) *tlsTestCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlsTestCA{cert: cert, key: key, pool: pool}
}

// writeServerPair writes tls.crt and tls.key for localhost into dir,
// readable by the image's non-root user, and returns the serial.
func (ca *tlsTestCA) writeServerPair(t *testing.T, dir string, serial int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	for name, b := range map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// legacyNginx is a plain-HTTP nginx on 127.0.0.1:8080 inside the pod.
const legacyNginx = `pid /tmp/nginx.pid;
error_log stderr;
daemon off;
events {}
http {
  access_log off;
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fcgi; uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  server {
    listen 127.0.0.1:8080;
    location / { return 200 "legacy app: proto=$http_x_forwarded_proto for=$http_x_forwarded_for\n"; }
    location = /health { return 200 "ok\n"; }
  }
}
`

// TestPodTLSProxy: the seeds' "HTTPS for a legacy service" pod. A legacy
// nginx that speaks plain HTTP on the pod's loopback only, and podkit
// tls-proxy sharing its network namespace; the host reaches the app over
// HTTPS on a published port, the certificate is rotated with SIGHUP
// (docker kill --signal HUP), and docker stop drains and exits 0.
func TestPodTLSProxy(t *testing.T) {
	ca := newTLSTestCA(t)
	certs := t.TempDir()
	if err := os.Chmod(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	ca.writeServerPair(t, certs, 100)

	app := containertest.Run(t, containertest.Options{
		Name:       "legacy",
		Image:      containertest.PeerImage(),
		Entrypoint: "sh",
		Cmd:        []string{"-c", "printf '%s' \"$NGINX_CONF\" > /tmp/nginx.conf && exec nginx -c /tmp/nginx.conf"},
		Env:        []string{"NGINX_CONF=" + legacyNginx},
		Publish:    []string{"8443", "9901"},
	})
	proxy := containertest.Run(t, containertest.Options{
		Name:  "tls-proxy",
		Image: containertest.Image(),
		Cmd: []string{"tls-proxy", "--listen", "0.0.0.0:8443", "--target", "127.0.0.1:8080",
			"--cert", "/certs/tls.crt", "--key", "/certs/tls.key", "--watch-interval", "0",
			"--target-health", "http://127.0.0.1:8080/health", "--target-health-period", "500ms",
			"--admin-addr", "0.0.0.0:9901", "--drain-delay", "1s", "--drain-timeout", "5s"},
		Volumes:   []string{certs + ":/certs:ro"},
		NetworkOf: app,
	})
	if t.Skipped() {
		return
	}
	addr := app.Addr(t, "8443")
	admin := "http://" + app.Addr(t, "9901")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}, ForceAttemptHTTP2: true,
	}}
	tlsEventually(t, "tls-proxy ready", func() error {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})

	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "legacy app: proto=https for=") || resp.ProtoMajor != 2 {
		t.Fatalf("through the proxy: %s %q", resp.Proto, body)
	}
	if s := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); s != 100 {
		t.Fatalf("serial %d, want 100", s)
	}

	// Rotate: new files, then SIGHUP to the proxy container.
	ca.writeServerPair(t, certs, 101)
	proxy.Kill(t, "HUP")
	tlsEventually(t, "rotated certificate served", func() error {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
		if err != nil {
			return err
		}
		defer c.Close()
		if s := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); s != 101 {
			return fmt.Errorf("serial %d", s)
		}
		return nil
	})
	if !proxy.Running(t) {
		t.Fatal("proxy container stopped after SIGHUP")
	}

	if code := proxy.Stop(t, 20); code != 0 {
		t.Fatalf("tls-proxy exit code %d after docker stop, want 0", code)
	}
	if logs := proxy.Logs(t); !strings.Contains(logs, "certificate reloaded") {
		t.Errorf("logs do not mention the reload:\n%s", logs)
	}
}

func tlsEventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
