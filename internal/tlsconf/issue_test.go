package tlsconf_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/tlsconf"
)

func newCA(t *testing.T, cn string) *tlsconf.Authority {
	t.Helper()
	ca, err := tlsconf.NewAuthority(tlsconf.Request{CN: cn, Org: []string{"podkit test"}, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *tlsconf.Authority, r tlsconf.Request) *tlsconf.Pair {
	t.Helper()
	if r.NotAfter.IsZero() {
		r.NotAfter = time.Now().Add(time.Hour)
	}
	p, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuthorityMutualTLS: a server and a client certificate from one
// authority complete a mutual TLS handshake; the server sees the client's
// CN and URI SAN; a client certificate from another authority is refused.
func TestAuthorityMutualTLS(t *testing.T) {
	ca := newCA(t, "test CA")
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.Subject.CommonName != "test CA" || ca.Cert.Subject.Organization[0] != "podkit test" {
		t.Errorf("CA: IsCA %v, MaxPathLenZero %v, subject %v", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.Subject)
	}
	dns, ips := tlsconf.SplitHosts([]string{"localhost", "127.0.0.1"})
	server := issue(t, ca, tlsconf.Request{CN: "localhost", DNS: dns, IPs: ips, Server: true})
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/q/sa/worker")
	client := issue(t, ca, tlsconf.Request{CN: "worker-1", URIs: []*url.URL{spiffe}, Client: true})

	// The PEM files are what a component loads.
	serverTLS, err := tlsconf.ParsePair(server.CertPEM, server.KeyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.TLS.PeerCertificates[0]
		io.WriteString(w, c.Subject.CommonName+" "+c.URIs[0].String())
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*serverTLS}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	get := func(cert tls.Certificate) (string, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	got, err := get(client.TLS())
	if want := "worker-1 " + spiffe.String(); err != nil || got != want {
		t.Errorf("with the client certificate: %q %v, want %q", got, err, want)
	}
	other := issue(t, newCA(t, "other CA"), tlsconf.Request{CN: "worker-1", Client: true})
	if _, err := get(other.TLS()); err == nil {
		t.Errorf("a client certificate from another CA was accepted")
	}

	// Each leaf has the usage asked for, and only that.
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Errorf("the client certificate verifies for server authentication")
	}
	if _, err := server.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Errorf("the server certificate verifies for client authentication")
	}
	both := issue(t, ca, tlsconf.Request{CN: "both", Client: true, Server: true})
	if !slices.Contains(both.Cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || !slices.Contains(both.Cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("Client and Server: ext key usage %v", both.Cert.ExtKeyUsage)
	}
	if server.Cert.IsCA || server.Cert.SerialNumber.Cmp(client.Cert.SerialNumber) == 0 {
		t.Errorf("server.crt: IsCA %v, serial %v (client's %v)", server.Cert.IsCA, server.Cert.SerialNumber, client.Cert.SerialNumber)
	}
}

// TestIssuePEM: the key is PKCS #8 ECDSA P-256, the certificate PEM holds
// the certificate, and the validity is the one asked for.
func TestIssuePEM(t *testing.T) {
	ca := newCA(t, "CA")
	nb, na := time.Now().Add(-time.Minute).Truncate(time.Second), time.Now().Add(48*time.Hour).Truncate(time.Second)
	p := issue(t, ca, tlsconf.Request{CN: "x", Server: true, NotBefore: nb, NotAfter: na})
	kb, _ := pem.Decode(p.KeyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM: %q", p.KeyPEM)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if ek, ok := k.(*ecdsa.PrivateKey); !ok || ek.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", k)
	}
	cb, _ := pem.Decode(p.CertPEM)
	if cb == nil || cb.Type != "CERTIFICATE" || string(cb.Bytes) != string(p.Cert.Raw) {
		t.Errorf("certificate PEM does not hold Cert")
	}
	if !p.Cert.NotBefore.Equal(nb) || !p.Cert.NotAfter.Equal(na) {
		t.Errorf("validity %s to %s, want %s to %s", p.Cert.NotBefore, p.Cert.NotAfter, nb, na)
	}
	if c := p.TLS(); c.Leaf != p.Cert || c.PrivateKey != p.Key {
		t.Errorf("TLS() does not carry the leaf and key")
	}
}

// TestParseAuthority: a CA read back from its PEM issues certificates
// that verify against the original; what cannot sign is refused.
func TestParseAuthority(t *testing.T) {
	ca := newCA(t, "CA")
	loaded, err := tlsconf.ParseAuthority(ca.CertPEM, ca.KeyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := issue(t, loaded, tlsconf.Request{CN: "w", Client: true})
	if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("a certificate from the loaded CA does not verify: %v", err)
	}
	leaf := issue(t, ca, tlsconf.Request{CN: "leaf", Server: true})
	other := newCA(t, "other")
	tests := []struct {
		name        string
		cert, key   []byte
		now         time.Time
		is          error
		wantMessage string
	}{
		{"a leaf", leaf.CertPEM, leaf.KeyPEM, time.Now(), tlsconf.ErrNotCA, "not a CA"},
		{"garbage", []byte("x"), []byte("y"), time.Now(), tlsconf.ErrBadCertificate, "bad certificate"},
		{"another CA's key", ca.CertPEM, other.KeyPEM, time.Now(), tlsconf.ErrBadCertificate, "private key does not match"},
		{"expired", ca.CertPEM, ca.KeyPEM, time.Now().Add(2 * time.Hour), tlsconf.ErrBadCertificate, "expired"},
	}
	for _, tt := range tests {
		_, err := tlsconf.ParseAuthority(tt.cert, tt.key, tt.now)
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.wantMessage) {
			t.Errorf("%s: %v, want %v containing %q", tt.name, err, tt.is, tt.wantMessage)
		}
	}
}

// TestIssueErrors: a request without a usage or a validity is refused.
func TestIssueErrors(t *testing.T) {
	ca := newCA(t, "CA")
	now := time.Now()
	tests := []struct {
		name string
		r    tlsconf.Request
		want string
	}{
		{"no usage", tlsconf.Request{CN: "x", NotAfter: now.Add(time.Hour)}, "no usage"},
		{"no NotAfter", tlsconf.Request{CN: "x", Server: true}, "no NotAfter"},
		{"ends before it starts", tlsconf.Request{CN: "x", Server: true, NotBefore: now, NotAfter: now.Add(-time.Second)}, "not after NotBefore"},
	}
	for _, tt := range tests {
		if _, err := ca.Issue(tt.r); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := tlsconf.NewAuthority(tlsconf.Request{CN: "CA"}); err == nil {
		t.Errorf("NewAuthority without NotAfter: no error")
	}
}

func TestSplitHosts(t *testing.T) {
	dns, ips := tlsconf.SplitHosts([]string{"queue", "10.0.0.1", "a.example", "::1"})
	if !slices.Equal(dns, []string{"queue", "a.example"}) || len(ips) != 2 || !ips[0].Equal(net.ParseIP("10.0.0.1")) || !ips[1].Equal(net.IPv6loopback) {
		t.Errorf("SplitHosts: %v %v", dns, ips)
	}
}
