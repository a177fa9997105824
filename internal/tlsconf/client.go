package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
)

// ClientFiles names what a Client reads and how it checks servers.
type ClientFiles struct {
	// CA is a PEM bundle of the roots server certificates must chain to;
	// "" trusts the system's roots.
	CA string
	// Cert and Key are the client certificate chain and key presented to
	// servers that ask (mutual TLS); both or neither.
	Cert, Key string
	// ServerName is sent as SNI and, without SANs, is the name the server
	// certificate must carry; "" is the host being dialed.
	ServerName string
	// SANs, if any, are the names of which the server certificate must
	// carry at least one (it must also chain to CA): DNS names (wildcard
	// certificates match), IP addresses, or URIs such as SPIFFE IDs
	// (spiffe://trust-domain/path, compared exactly). ServerName is then
	// only sent as SNI.
	SANs []string
}

// clientGen is one loaded generation of a Client's files.
type clientGen struct {
	cert  *tls.Certificate // nil: no client certificate
	roots *x509.CertPool   // nil: the system's roots
}

// Client originates TLS: it dials servers, checks their certificates
// against its CA and names, and presents its own certificate when it has
// one. It holds the current generation of its files; Reload swaps in a
// new one, which the next handshake uses, including handshakes through a
// *tls.Config that Config returned earlier.
type Client struct {
	files ClientFiles
	sans  []san
	cur   atomic.Pointer[clientGen]
}

// san is one name a server certificate may carry.
type san struct {
	text string
	uri  bool
}

// NewClient checks f and loads its files.
func NewClient(f ClientFiles) (*Client, error) {
	if (f.Cert == "") != (f.Key == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both a certificate and a key file (cert %q, key %q)", ErrBadCertificate, f.Cert, f.Key)
	}
	c := &Client{files: f}
	c.files.SANs = append([]string(nil), f.SANs...)
	for _, s := range f.SANs {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, errors.New("empty server SAN")
		}
		if strings.Contains(s, "://") {
			c.sans = append(c.sans, san{text: s, uri: true})
			continue
		}
		if strings.ContainsAny(s, "/ ") {
			return nil, fmt.Errorf("server SAN %q is neither a DNS name, an IP address nor a URI", s)
		}
		c.sans = append(c.sans, san{text: s})
	}
	g, err := f.load()
	if err != nil {
		return nil, err
	}
	c.cur.Store(g)
	return c, nil
}

func (f ClientFiles) load() (*clientGen, error) {
	g := &clientGen{}
	if f.Cert != "" {
		cert, err := LoadPair("client certificate", f.Cert, "client key", f.Key)
		if err != nil {
			return nil, err
		}
		g.cert = cert
	}
	if f.CA != "" {
		pool, err := LoadCA("server CA", f.CA)
		if err != nil {
			return nil, err
		}
		g.roots = pool
	}
	return g, nil
}

// Reload re-reads the files. On an error the current generation stays
// and the error (wrapping ErrBadCertificate) is returned.
func (c *Client) Reload() error {
	g, err := c.files.load()
	if err != nil {
		return err
	}
	c.cur.Store(g)
	return nil
}

// Files returns the paths Reload reads, for watching.
func (c *Client) Files() []string {
	var out []string
	for _, p := range []string{c.files.CA, c.files.Cert, c.files.Key} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Leaf returns the current client certificate's leaf, or nil when the
// Client has none.
func (c *Client) Leaf() *x509.Certificate {
	if g := c.cur.Load(); g.cert != nil {
		return g.cert.Leaf
	}
	return nil
}

// Config returns the handshake config for a connection to dialHost (a
// host name or IP, with or without a port): TLS 1.2 or later, AEAD
// suites, SNI ServerName or dialHost. The server certificate is verified
// against the CA current at each handshake and must carry ServerName (or
// dialHost), or one of SANs when they are set; the client certificate
// presented is also the current one.
func (c *Client) Config(dialHost string) *tls.Config {
	name := c.files.ServerName
	if name == "" {
		name = dialHost
		if h, _, err := net.SplitHostPort(dialHost); err == nil {
			name = h
		}
		name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: AEADSuites,
		ServerName:   name,
		// The chain and the names are verified in VerifyConnection, with
		// the generation current at the handshake (a reloaded CA applies
		// to configs handed out before the reload), and against SANs that
		// need not include the name dialed.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verify(cs, name)
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if g := c.cur.Load(); g.cert != nil {
				return g.cert, nil
			}
			return &tls.Certificate{}, nil
		},
	}
}

// verify checks the server's chain against the current roots and its
// leaf against the SANs, or against name.
func (c *Client) verify(cs tls.ConnectionState, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{
		Roots:         c.cur.Load().roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("server certificate (%s): %w", Identity(leaf), err)
	}
	if len(c.sans) == 0 {
		if name == "" {
			return fmt.Errorf("server certificate (%s): no server name to verify it against", Identity(leaf))
		}
		if err := leaf.VerifyHostname(name); err != nil {
			return fmt.Errorf("server certificate (%s): %w", Identity(leaf), err)
		}
		return nil
	}
	if matchSAN(leaf, c.sans) {
		return nil
	}
	want := make([]string, len(c.sans))
	for i, s := range c.sans {
		want[i] = s.text
	}
	return fmt.Errorf("server certificate (%s) carries none of the wanted SANs %s", Identity(leaf), strings.Join(want, ", "))
}

// matchSAN reports whether leaf carries one of sans.
func matchSAN(leaf *x509.Certificate, sans []san) bool {
	for _, s := range sans {
		if s.uri {
			for _, u := range leaf.URIs {
				if u.String() == s.text {
					return true
				}
			}
			continue
		}
		if ip, err := netip.ParseAddr(s.text); err == nil {
			for _, have := range leaf.IPAddresses {
				if a, ok := netip.AddrFromSlice(have); ok && a.Unmap() == ip.Unmap() {
					return true
				}
			}
			continue
		}
		if leaf.VerifyHostname(s.text) == nil {
			return true
		}
	}
	return false
}

// Dial connects to addr and completes the TLS handshake within ctx.
func (c *Client) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, c.Config(addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}
