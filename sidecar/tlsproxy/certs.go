package tlsproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/httpproxy"
	"github.com/podkit/podkit/internal/tlsconf"
)

// ErrBadCertificate is returned when a certificate/key pair (or client CA
// bundle) cannot be used; a reload that fails with it keeps the old one.
// It is tlsconf's, shared with every component's API.
var ErrBadCertificate = tlsconf.ErrBadCertificate

// ErrClientNotAllowed is the handshake error for a verified client
// certificate that matches none of the --allow-* lists.
var ErrClientNotAllowed = errors.New("client certificate not allowed")

// material is one loaded generation of certificates.
type material = tlsconf.Material

// certStore holds the current material and reloads it from files.
type certStore struct {
	cfg   *Config
	files tlsconf.Files
	store *tlsconf.Store
}

// newCertStore loads the initial material; an error here is fatal.
func newCertStore(cfg *Config, alpn []string) (*certStore, error) {
	minV, _ := tlsconf.ParseMinVersion(cfg.MinVersion)
	s := &certStore{cfg: cfg, files: certFileSet(cfg)}
	srv := tlsconf.Server{MinVersion: minV, NextProtos: alpn, ClientAuth: tls.RequireAndVerifyClientCert}
	if allow := newAllowList(cfg); !allow.Empty() {
		srv.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrClientNotAllowed
			}
			if leaf := cs.PeerCertificates[0]; !allow.Allows(leaf) {
				return fmt.Errorf("%w: %s", ErrClientNotAllowed, leaf.Subject)
			}
			return nil
		}
	}
	var m *material
	if cfg.SelfSigned {
		cert, err := SelfSigned(cfg.SelfSignedHosts...)
		if err != nil {
			return nil, err
		}
		if m, err = s.files.Load(); err != nil { // the client CA, if any
			return nil, err
		}
		m.Cert = cert
	} else {
		var err error
		if m, err = s.files.Load(); err != nil {
			return nil, err
		}
	}
	s.store = tlsconf.NewStore(srv, m)
	return s, nil
}

// certFileSet names tls-proxy's files by its own flags; with
// --self-signed only the client CA bundle is read.
func certFileSet(cfg *Config) tlsconf.Files {
	f := tlsconf.Files{CertFlag: "--cert", KeyFlag: "--key", CAFlag: "--client-ca", CAFile: cfg.ClientCA}
	if !cfg.SelfSigned {
		f.CertFile, f.KeyFile = cfg.CertFile, cfg.KeyFile
	}
	return f
}

// install builds the handshake config for m and makes it current.
func (s *certStore) install(m *material) { s.store.Install(m) }

// config is the listener's TLS config: every handshake takes the current
// generation, and session ticket keys survive reloads.
func (s *certStore) config() *tls.Config { return s.store.Config() }

// certFiles are the files a reload reads: with --self-signed only the
// client CA bundle (the certificate is generated), if any.
func certFiles(cfg *Config) []string { return certFileSet(cfg).List() }

// reload is a reload's load step: it reads the files again and returns
// the new material, validated, for install. With --self-signed only the
// client CA bundle is read, and without --client-ca there is nothing to
// reload.
func (s *certStore) reload(context.Context) (*material, error) {
	if s.cfg.SelfSigned && s.cfg.ClientCA == "" {
		return nil, fmt.Errorf("%w: the certificate is generated (--self-signed)", container.ErrUnchanged)
	}
	m, err := s.files.Load()
	if err != nil {
		return nil, err
	}
	if s.cfg.SelfSigned {
		m.Cert = s.current().Cert
	}
	return m, nil
}

// current returns the certificate being served.
func (s *certStore) current() *material { return s.store.Current() }

// SelfSigned returns an in-memory ECDSA P-256 certificate valid for a year
// for hosts (default: localhost, 127.0.0.1, ::1). It is for development and
// tests only: clients must be told to trust it.
func SelfSigned(hosts ...string) (*tls.Certificate, error) {
	return tlsconf.SelfSigned("podkit tls-proxy self-signed", hosts...)
}

// newAllowList is the OR of the --allow-* lists.
func newAllowList(c *Config) tlsconf.AllowList {
	return tlsconf.AllowList{CN: c.AllowCN, DNS: c.AllowSANDNS, URI: c.AllowSANURI}
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
