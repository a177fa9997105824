package testdeps

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/tlsconf"
)

// PKI is a test certificate authority that issues server and client
// certificates (ECDSA P-256), a tlsconf.Authority that fails the test on
// errors.
type PKI struct {
	t    testing.TB
	ca   *tlsconf.Authority
	Cert *x509.Certificate
	Pool *x509.CertPool // holds Cert alone
	PEM  []byte         // Cert, PEM-encoded
}

// NewPKI returns a new CA whose subject CN is name, valid for a day.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	ca, err := tlsconf.NewAuthority(tlsconf.Request{CN: name, NotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{t: t, ca: ca, Cert: ca.Cert, Pool: ca.Pool(), PEM: ca.CertPEM}
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CN       string
	DNS      []string
	IPs      []net.IP
	URIs     []string
	Client   bool      // client authentication (else server)
	NotAfter time.Time // zero: 12 hours from now
}

// Issue returns a PEM certificate and key for o, and the tls.Certificate.
func (p *PKI) Issue(o Leaf) (certPEM, keyPEM []byte, cert tls.Certificate) {
	p.t.Helper()
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(12 * time.Hour)
	}
	notBefore := time.Now().Add(-time.Hour)
	if !o.NotAfter.After(notBefore) {
		notBefore = o.NotAfter.Add(-time.Hour)
	}
	r := tlsconf.Request{CN: o.CN, DNS: o.DNS, IPs: o.IPs, Client: o.Client, Server: !o.Client, NotBefore: notBefore, NotAfter: o.NotAfter}
	for _, u := range o.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			p.t.Fatal(err)
		}
		r.URIs = append(r.URIs, pu)
	}
	pair, err := p.ca.Issue(r)
	if err != nil {
		p.t.Fatal(err)
	}
	return pair.CertPEM, pair.KeyPEM, pair.TLS()
}

// Files issues o and writes it to dir as NAME.crt and NAME.key, returning
// the paths.
func (p *PKI) Files(dir, name string, o Leaf) (certFile, keyFile string) {
	p.t.Helper()
	c, k, _ := p.Issue(o)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	ReplaceFile(p.t, certFile, string(c))
	ReplaceFile(p.t, keyFile, string(k))
	return certFile, keyFile
}

// ServerFiles issues a server certificate for localhost and 127.0.0.1
// into dir (server.crt, server.key).
func (p *PKI) ServerFiles(dir string) (certFile, keyFile string) {
	p.t.Helper()
	return p.Files(dir, "server", Leaf{CN: "localhost", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

// CAFile writes the CA's certificate to dir/ca.crt and returns the path.
func (p *PKI) CAFile(dir string) string {
	p.t.Helper()
	f := filepath.Join(dir, "ca.crt")
	ReplaceFile(p.t, f, string(p.PEM))
	return f
}
