package testdeps

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a test certificate authority that issues server and client
// certificates (ECDSA P-256).
type PKI struct {
	t    testing.TB
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool // holds Cert alone
	PEM  []byte         // Cert, PEM-encoded
}

var pkiSerial atomic.Int64

// NewPKI returns a new CA whose subject CN is name, valid for a day.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(pkiSerial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &PKI{t: t, Cert: cert, key: key, Pool: pool, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(12 * time.Hour)
	}
	notBefore := time.Now().Add(-time.Hour)
	if !o.NotAfter.After(notBefore) {
		notBefore = o.NotAfter.Add(-time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(pkiSerial.Add(1)),
		Subject:      pkix.Name{CommonName: o.CN},
		NotBefore:    notBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     o.DNS,
		IPAddresses:  o.IPs,
	}
	if o.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, u := range o.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			p.t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.Cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		p.t.Fatal(err)
	}
	return certPEM, keyPEM, cert
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
