package kubetest

import (
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/podkit/podkit/internal/tlsconf"
)

// writeTestPKI writes a CA, a server certificate for 127.0.0.1 and
// localhost, and a client certificate, all valid for a day.
func writeTestPKI(dir string) (client, server TLSFiles, err error) {
	notAfter := time.Now().Add(24 * time.Hour)
	ca, err := tlsconf.NewAuthority(tlsconf.Request{CN: "kubetest CA", NotAfter: notAfter})
	if err != nil {
		return client, server, err
	}
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, ca.CertPEM, 0o600); err != nil {
		return client, server, err
	}
	issue := func(name string, r tlsconf.Request) (TLSFiles, error) {
		r.CN, r.NotAfter = name, notAfter
		r.IPs, r.DNS = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}
		p, err := ca.Issue(r)
		if err != nil {
			return TLSFiles{}, err
		}
		f := TLSFiles{CA: caPath, Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
		if err := os.WriteFile(f.Cert, p.CertPEM, 0o600); err != nil {
			return TLSFiles{}, err
		}
		return f, os.WriteFile(f.Key, p.KeyPEM, 0o600)
	}
	if server, err = issue("server", tlsconf.Request{Server: true}); err != nil {
		return client, server, err
	}
	client, err = issue("client", tlsconf.Request{Client: true})
	return client, server, err
}
