// Package tlsconf is podkit's one way of serving TLS from files: a
// certificate and key (checked to match and to be valid now), an optional
// client CA bundle for mutual TLS, allow-lists of client identities
// (subject CN, DNS SANs, URI SANs such as SPIFFE IDs), and a Store that
// holds the current generation so that a reload swaps it in under live
// listeners. tls-proxy serves its traffic with it and the container
// contract serves every component's API with it (container.APISecurity),
// so both read, check and reload certificates the same way.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// ErrBadCertificate is wrapped by every error for a certificate, key or CA
// bundle that cannot be used; a reload that fails with it keeps the
// running generation.
var ErrBadCertificate = errors.New("bad certificate")

// AEADSuites are the TLS 1.2 suites accepted: forward secret and AEAD
// only. TLS 1.3 suites are all AEAD and not configurable.
var AEADSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ParseMinVersion parses "1.2" or "1.3" ("" is 1.2).
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not 1.2 or 1.3", s)
}

// ParsePair parses a PEM certificate chain and key and checks that they
// match and that the leaf is valid at now.
func ParsePair(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
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

// LoadPair reads a certificate chain and its key from files and checks
// them as ParsePair does. Errors wrap ErrBadCertificate and name the
// files by their flags (certFlag, keyFlag: "--cert", "--tls-cert", ...).
func LoadPair(certFlag, certFile, keyFlag, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCertificate, certFlag, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCertificate, keyFlag, err)
	}
	cert, err := ParsePair(certPEM, keyPEM, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s / %s %s: %v", ErrBadCertificate, certFlag, certFile, keyFlag, keyFile, err)
	}
	return cert, nil
}

// LoadCA reads a PEM CA bundle; flag names the setting in errors.
func LoadCA(flag, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCertificate, flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: %s %s: no PEM certificates found", ErrBadCertificate, flag, path)
	}
	return pool, nil
}

// SelfSigned returns an in-memory ECDSA P-256 certificate valid for a year
// for hosts (default: localhost, 127.0.0.1, ::1), with org in its subject.
// It is for development and tests only: clients must be told to trust it.
func SelfSigned(org string, hosts ...string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	dns, ips := SplitHosts(hosts)
	now := time.Now()
	// A CA that serves: clients trust it as a root.
	ca, err := NewAuthority(Request{
		CN: hosts[0], Org: []string{org}, DNS: dns, IPs: ips, Server: true,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
	})
	if err != nil {
		return nil, err
	}
	c := ca.TLS()
	return &c, nil
}

// AllowList is the OR of the --allow-cn, --allow-san-dns and
// --allow-san-uri lists: a client certificate passes if its subject CN,
// one of its DNS SANs (case-insensitively) or one of its URI SANs is
// listed. An empty list allows every certificate.
type AllowList struct {
	CN, DNS, URI []string
}

// Empty reports whether nothing is listed.
func (a AllowList) Empty() bool { return len(a.CN)+len(a.DNS)+len(a.URI) == 0 }

// Allows reports whether leaf passes.
func (a AllowList) Allows(leaf *x509.Certificate) bool {
	if a.Empty() {
		return true
	}
	_, ok := a.Match(leaf)
	return ok
}

// Match returns the first entry that leaf matches, as "cn:NAME",
// "dns:NAME" or "uri:URI", and whether there is one.
func (a AllowList) Match(leaf *x509.Certificate) (string, bool) {
	if cn := leaf.Subject.CommonName; cn != "" && slices.Contains(a.CN, cn) {
		return "cn:" + cn, true
	}
	for _, d := range leaf.DNSNames {
		for _, want := range a.DNS {
			if strings.EqualFold(d, want) {
				return "dns:" + want, true
			}
		}
	}
	for _, u := range leaf.URIs {
		if s := u.String(); slices.Contains(a.URI, s) {
			return "uri:" + s, true
		}
	}
	return "", false
}

// Identity describes a client certificate for logs and errors: its
// subject, and its URI and DNS SANs.
func Identity(leaf *x509.Certificate) string {
	var b strings.Builder
	b.WriteString(leaf.Subject.String())
	for _, u := range leaf.URIs {
		b.WriteString(" uri:")
		b.WriteString(u.String())
	}
	for _, d := range leaf.DNSNames {
		b.WriteString(" dns:")
		b.WriteString(d)
	}
	return b.String()
}

// Material is one loaded generation: a certificate, and the client CA
// pool when mutual TLS is on.
type Material struct {
	Cert     *tls.Certificate
	ClientCA *x509.CertPool
	config   *tls.Config // the per-handshake config built from the above
}

// Leaf returns the certificate's parsed leaf.
func (m *Material) Leaf() *x509.Certificate { return m.Cert.Leaf }

// Files names what a Store reads: the flags (for errors) and the paths.
type Files struct {
	CertFlag, CertFile string
	KeyFlag, KeyFile   string
	CAFlag, CAFile     string // "" CAFile: no client certificates
}

// List returns the paths a reload reads (for watching).
func (f Files) List() []string {
	var out []string
	if f.CertFile != "" {
		out = append(out, f.CertFile, f.KeyFile)
	}
	if f.CAFile != "" {
		out = append(out, f.CAFile)
	}
	return out
}

// Load reads the files: the pair (unless CertFile is empty) and the CA.
func (f Files) Load() (*Material, error) {
	m := &Material{}
	if f.CertFile != "" {
		cert, err := LoadPair(f.CertFlag, f.CertFile, f.KeyFlag, f.KeyFile)
		if err != nil {
			return nil, err
		}
		m.Cert = cert
	}
	if f.CAFile != "" {
		pool, err := LoadCA(f.CAFlag, f.CAFile)
		if err != nil {
			return nil, err
		}
		m.ClientCA = pool
	}
	return m, nil
}

// Server is how a Store builds each generation's handshake config.
type Server struct {
	MinVersion uint16
	NextProtos []string
	// ClientAuth applies when a generation has a client CA:
	// tls.RequireAndVerifyClientCert (tls-proxy) or
	// tls.VerifyClientCertIfGiven (an API that also takes tokens and
	// answers a missing credential with 401).
	ClientAuth tls.ClientAuthType
	// VerifyConnection, if set, runs after the chain is verified (when a
	// generation has a client CA): tls-proxy's allow-list.
	VerifyConnection func(tls.ConnectionState) error
}

// Store holds the current generation. Its Config is what a listener
// uses: every handshake takes the generation current at that moment, and
// session ticket keys survive reloads.
type Store struct {
	srv  Server
	cur  atomic.Pointer[Material]
	base *tls.Config
}

// NewStore returns a Store serving m.
func NewStore(srv Server, m *Material) *Store {
	s := &Store{srv: srv}
	s.Install(m)
	s.base = &tls.Config{
		MinVersion: srv.MinVersion,
		// The handshake uses cur's config; this one only carries the
		// session ticket keys, which therefore survive reloads.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().config, nil
		},
		// Fallbacks used before GetConfigForClient runs.
		CipherSuites: AEADSuites,
		NextProtos:   srv.NextProtos,
	}
	return s
}

// Install builds the handshake config for m and makes it current.
func (s *Store) Install(m *Material) {
	c := &tls.Config{
		MinVersion:                  s.srv.MinVersion,
		CipherSuites:                AEADSuites,
		NextProtos:                  s.srv.NextProtos,
		Certificates:                []tls.Certificate{*m.Cert},
		DynamicRecordSizingDisabled: true,
	}
	if m.ClientCA != nil {
		c.ClientAuth = s.srv.ClientAuth
		c.ClientCAs = m.ClientCA
		c.VerifyConnection = s.srv.VerifyConnection
	}
	m.config = c
	s.cur.Store(m)
}

// Current returns the generation being served.
func (s *Store) Current() *Material { return s.cur.Load() }

// Config returns the listener's config.
func (s *Store) Config() *tls.Config { return s.base }
