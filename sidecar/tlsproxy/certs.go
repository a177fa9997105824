package tlsproxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/httpproxy"
)

// ErrBadCertificate is returned when a certificate/key pair (or client CA
// bundle) cannot be used; a reload that fails with it keeps the old one.
var ErrBadCertificate = errors.New("bad certificate")

// ErrClientNotAllowed is the handshake error for a verified client
// certificate that matches none of the --allow-* lists.
var ErrClientNotAllowed = errors.New("client certificate not allowed")

// aeadSuites are the TLS 1.2 suites accepted: forward secret and AEAD only.
// TLS 1.3 suites are all AEAD and not configurable.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// material is one loaded generation of certificates.
type material struct {
	cert     *tls.Certificate
	leaf     *x509.Certificate
	clientCA *x509.CertPool
	config   *tls.Config // the per-handshake config built from the above
}

// certStore holds the current material and reloads it from files.
type certStore struct {
	cfg   *Config
	alpn  []string
	minV  uint16
	base  *tls.Config // what the listener uses; delegates to cur
	cur   atomic.Pointer[material]
	allow allowList
}

// newCertStore loads the initial material; an error here is fatal.
func newCertStore(cfg *Config, alpn []string) (*certStore, error) {
	minV, _ := parseMinVersion(cfg.MinVersion)
	s := &certStore{cfg: cfg, alpn: alpn, minV: minV, allow: newAllowList(cfg)}
	var m *material
	if cfg.SelfSigned {
		cert, err := SelfSigned(cfg.SelfSignedHosts...)
		if err != nil {
			return nil, err
		}
		m = &material{cert: cert, leaf: cert.Leaf}
		if cfg.ClientCA != "" {
			pool, err := loadCA(cfg.ClientCA)
			if err != nil {
				return nil, err
			}
			m.clientCA = pool
		}
	} else {
		var err error
		if m, err = s.load(); err != nil {
			return nil, err
		}
	}
	s.install(m)
	s.base = &tls.Config{
		MinVersion: minV,
		// The handshake uses cur's config; this one only carries the
		// session ticket keys, which therefore survive reloads.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().config, nil
		},
		// Fallbacks used before GetConfigForClient runs.
		CipherSuites: aeadSuites,
		NextProtos:   alpn,
	}
	return s, nil
}

// install builds the handshake config for m and makes it current.
func (s *certStore) install(m *material) {
	c := &tls.Config{
		MinVersion:                  s.minV,
		CipherSuites:                aeadSuites,
		NextProtos:                  s.alpn,
		Certificates:                []tls.Certificate{*m.cert},
		DynamicRecordSizingDisabled: true,
	}
	if m.clientCA != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = m.clientCA
		if !s.allow.empty() {
			allow := s.allow
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return ErrClientNotAllowed
				}
				if leaf := cs.PeerCertificates[0]; !allow.allows(leaf) {
					return fmt.Errorf("%w: %s", ErrClientNotAllowed, leaf.Subject)
				}
				return nil
			}
		}
	}
	m.config = c
	s.cur.Store(m)
}

// load reads the files named in the config and returns new material.
func (s *certStore) load() (*material, error) {
	certPEM, err := os.ReadFile(s.cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("%w: --cert: %v", ErrBadCertificate, err)
	}
	keyPEM, err := os.ReadFile(s.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: --key: %v", ErrBadCertificate, err)
	}
	cert, err := parsePair(certPEM, keyPEM, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: --cert %s / --key %s: %v", ErrBadCertificate, s.cfg.CertFile, s.cfg.KeyFile, err)
	}
	m := &material{cert: cert, leaf: cert.Leaf}
	if s.cfg.ClientCA != "" {
		pool, err := loadCA(s.cfg.ClientCA)
		if err != nil {
			return nil, err
		}
		m.clientCA = pool
	}
	return m, nil
}

// parsePair parses a PEM certificate chain and key and checks that they
// match and that the leaf is valid at now.
func parsePair(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("certificate expired at %s", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.Leaf.NotBefore) {
		return nil, fmt.Errorf("certificate not valid before %s", cert.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --client-ca: %v", ErrBadCertificate, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: --client-ca %s: no PEM certificates found", ErrBadCertificate, path)
	}
	return pool, nil
}

// certFiles are the files a reload reads: with --self-signed only the
// client CA bundle (the certificate is generated), if any.
func certFiles(cfg *Config) []string {
	var out []string
	if !cfg.SelfSigned {
		out = append(out, cfg.CertFile, cfg.KeyFile)
	}
	if cfg.ClientCA != "" {
		out = append(out, cfg.ClientCA)
	}
	return out
}

// reload is a reload's load step: it reads the files again and returns
// the new material, validated, for install. With --self-signed only the
// client CA bundle is read, and without --client-ca there is nothing to
// reload.
func (s *certStore) reload(context.Context) (*material, error) {
	if !s.cfg.SelfSigned {
		return s.load()
	}
	if s.cfg.ClientCA == "" {
		return nil, fmt.Errorf("%w: the certificate is generated (--self-signed)", container.ErrUnchanged)
	}
	pool, err := loadCA(s.cfg.ClientCA)
	if err != nil {
		return nil, err
	}
	old := s.cur.Load()
	return &material{cert: old.cert, leaf: old.leaf, clientCA: pool}, nil
}

// current returns the certificate being served.
func (s *certStore) current() *material { return s.cur.Load() }

// SelfSigned returns an in-memory ECDSA P-256 certificate valid for a year
// for hosts (default: localhost, 127.0.0.1, ::1). It is for development and
// tests only: clients must be told to trust it.
func SelfSigned(hosts ...string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"podkit tls-proxy self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// allowList is the OR of the --allow-* lists.
type allowList struct {
	cn, dns, uri []string
}

func newAllowList(c *Config) allowList {
	return allowList{cn: c.AllowCN, dns: c.AllowSANDNS, uri: c.AllowSANURI}
}

func (a allowList) empty() bool { return len(a.cn)+len(a.dns)+len(a.uri) == 0 }

func (a allowList) allows(leaf *x509.Certificate) bool {
	if a.empty() {
		return true
	}
	if leaf.Subject.CommonName != "" && slices.Contains(a.cn, leaf.Subject.CommonName) {
		return true
	}
	for _, d := range leaf.DNSNames {
		for _, want := range a.dns {
			if strings.EqualFold(d, want) {
				return true
			}
		}
	}
	for _, u := range leaf.URIs {
		if slices.Contains(a.uri, u.String()) {
			return true
		}
	}
	return false
}

// clientIdentity formats a verified client certificate for the
// X-Forwarded-Client-Cert header, in Envoy's element syntax:
// Hash=<sha256 of the DER>;Subject="...";URI=...;DNS=...
func clientIdentity(leaf *x509.Certificate) string {
	var b bytes.Buffer
	sum := sha256.Sum256(leaf.Raw)
	fmt.Fprintf(&b, "Hash=%x", sum)
	b.WriteString(`;Subject="`)
	b.WriteString(quoteXFCC(leaf.Subject.String()))
	b.WriteByte('"')
	for _, u := range leaf.URIs {
		b.WriteString(";URI=")
		b.WriteString(xfccValue(u.String()))
	}
	for _, d := range leaf.DNSNames {
		b.WriteString(";DNS=")
		b.WriteString(xfccValue(d))
	}
	return b.String()
}

// quoteXFCC escapes a value placed inside double quotes.
func quoteXFCC(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return httpproxy.HeaderSafe(s)
}

// xfccValue quotes a value that contains separators.
func xfccValue(s string) string {
	if strings.ContainsAny(s, `,;="`) {
		return `"` + quoteXFCC(s) + `"`
	}
	return httpproxy.HeaderSafe(s)
}

// sanURIs is a helper for logs.
func sanURIs(us []*url.URL) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}
