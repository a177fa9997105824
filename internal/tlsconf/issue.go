package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// ErrNotCA is wrapped by ParseAuthority's error for a certificate that
// cannot sign certificates.
var ErrNotCA = errors.New("not a CA certificate (it cannot sign certificates)")

// Request describes a certificate to make: a CA's (NewAuthority) or a
// leaf's (Authority.Issue).
type Request struct {
	CN   string
	Org  []string
	DNS  []string
	IPs  []net.IP
	URIs []*url.URL
	// Client and Server are the extended key usages: client and server
	// authentication. A leaf needs one or both; a CA usually has
	// neither (it then issues for any usage).
	Client, Server bool
	// NotBefore is when validity starts (zero: an hour before now, for
	// clocks that lag); NotAfter when it ends (required).
	NotBefore, NotAfter time.Time
}

// Pair is a certificate and its key, parsed and PEM-encoded.
type Pair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // "CERTIFICATE"
	KeyPEM  []byte // "PRIVATE KEY" (PKCS #8)
}

// TLS returns the pair as a tls.Certificate (with its Leaf).
func (p *Pair) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key, Leaf: p.Cert}
}

// Authority is a certificate authority that issues ECDSA P-256
// certificates. It is for development and tests (podkit certs, the test
// CAs): it keeps no record of what it issued and cannot revoke.
type Authority struct {
	Pair
}

// NewAuthority returns a new self-signed CA for r, with an ECDSA P-256
// key. It may sign leaves only (a path length of zero).
func NewAuthority(r Request) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(r)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	tmpl.MaxPathLenZero = true
	p, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return nil, err
	}
	return &Authority{*p}, nil
}

// ParseAuthority parses a PEM CA certificate and its key and checks that
// they match, that the certificate is valid at now and that it may sign
// certificates. A bad pair's error wraps ErrBadCertificate; a certificate
// that is not a CA's wraps ErrNotCA. KeyPEM is kept as given.
func ParseAuthority(certPEM, keyPEM []byte, now time.Time) (*Authority, error) {
	c, err := ParsePair(certPEM, keyPEM, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok || !c.Leaf.IsCA || c.Leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, ErrNotCA
	}
	return &Authority{Pair{Cert: c.Leaf, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}}, nil
}

// Pool returns a pool holding the CA's certificate alone.
func (a *Authority) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.Cert)
	return p
}

// Issue returns a new leaf certificate for r, signed by the CA, with a
// new ECDSA P-256 key.
func (a *Authority) Issue(r Request) (*Pair, error) {
	if !r.Client && !r.Server {
		return nil, errors.New("tlsconf: issue: no usage: want Client, Server or both")
	}
	tmpl, err := template(r)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return sign(tmpl, a.Cert, key, a.Key)
}

// SplitHosts sorts host names and IP addresses (as given to a server
// certificate) into DNS names and IPs.
func SplitHosts(hosts []string) (dns []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// template is the part of a certificate r says, with a random serial.
func template(r Request) (*x509.Certificate, error) {
	if r.NotAfter.IsZero() {
		return nil, errors.New("tlsconf: issue: no NotAfter")
	}
	if r.NotBefore.IsZero() {
		r.NotBefore = time.Now().Add(-time.Hour)
	}
	if !r.NotAfter.After(r.NotBefore) {
		return nil, fmt.Errorf("tlsconf: issue: NotAfter %s is not after NotBefore %s", r.NotAfter.UTC().Format(time.RFC3339), r.NotBefore.UTC().Format(time.RFC3339))
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: r.CN, Organization: r.Org},
		NotBefore:    r.NotBefore,
		NotAfter:     r.NotAfter,
		DNSNames:     r.DNS,
		IPAddresses:  r.IPs,
		URIs:         r.URIs,
	}
	if r.Server {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if r.Client {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	return t, nil
}

// sign makes the certificate tmpl for key, signed by parent's signer.
func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) (*Pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}
