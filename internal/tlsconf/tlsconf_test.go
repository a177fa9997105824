package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/internal/tlsconf"
)

func TestLoadPair(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	cert, key := ca.Files(dir, "a", testdeps.Leaf{CN: "localhost"})
	_, otherKey := ca.Files(dir, "b", testdeps.Leaf{CN: "localhost"})
	oldCert, oldKey := ca.Files(dir, "old", testdeps.Leaf{CN: "localhost", NotAfter: time.Now().Add(-time.Minute)})
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	missing := filepath.Join(dir, "missing.pem")

	c, err := tlsconf.LoadPair("--cert", cert, "--key", key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil || c.Leaf.Subject.CommonName != "localhost" {
		t.Errorf("leaf %v", c.Leaf)
	}
	for _, tt := range []struct {
		name, cert, key string
		want            []string
	}{
		{"mismatched", cert, otherKey, []string{"--cert " + cert + " / --key " + otherKey, "does not match"}},
		{"expired", oldCert, oldKey, []string{"--cert " + oldCert, "certificate expired at"}},
		{"garbage", garbage, key, []string{"--cert " + garbage}},
		{"missing cert", missing, key, []string{"--cert:", "no such file"}},
		{"missing key", cert, missing, []string{"--key:", "no such file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsconf.LoadPair("--cert", tt.cert, "--key", tt.key)
			if !errors.Is(err, tlsconf.ErrBadCertificate) {
				t.Fatalf("err %v does not wrap ErrBadCertificate", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestParsePairNotYetValid(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	c, k, _ := ca.Issue(testdeps.Leaf{CN: "x"})
	if _, err := tlsconf.ParsePair(c, k, time.Now().Add(-48*time.Hour)); err == nil || !strings.Contains(err.Error(), "not valid before") {
		t.Errorf("err %v", err)
	}
	if _, err := tlsconf.ParsePair(c, k, time.Now()); err != nil {
		t.Error(err)
	}
}

func TestLoadCA(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	pool, err := tlsconf.LoadCA("--client-ca", ca.CAFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !pool.Equal(ca.Pool) {
		t.Error("pool differs from the CA's")
	}
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("nothing"), 0o600)
	for path, want := range map[string]string{garbage: "--client-ca " + garbage + ": no PEM certificates found", filepath.Join(dir, "none"): "--client-ca: open"} {
		_, err := tlsconf.LoadCA("--client-ca", path)
		if !errors.Is(err, tlsconf.ErrBadCertificate) || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadCA(%s) = %v, want %q", path, err, want)
		}
	}
}

func TestParseMinVersion(t *testing.T) {
	for in, want := range map[string]uint16{"": tls.VersionTLS12, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		if got, err := tlsconf.ParseMinVersion(in); err != nil || got != want {
			t.Errorf("ParseMinVersion(%q) = %x, %v", in, got, err)
		}
	}
	for _, in := range []string{"1.1", "1.0", "tls1.3", "13"} {
		if _, err := tlsconf.ParseMinVersion(in); err == nil {
			t.Errorf("ParseMinVersion(%q) accepted", in)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	c, err := tlsconf.SelfSigned("podkit test", "svc.example", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Leaf
	if l.Subject.CommonName != "svc.example" || l.Subject.Organization[0] != "podkit test" {
		t.Errorf("subject %v", l.Subject)
	}
	if len(l.DNSNames) != 1 || len(l.IPAddresses) != 1 || !l.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("SANs %v %v", l.DNSNames, l.IPAddresses)
	}
	pool := x509.NewCertPool()
	pool.AddCert(l)
	if _, err := l.Verify(x509.VerifyOptions{Roots: pool, DNSName: "svc.example"}); err != nil {
		t.Errorf("does not verify against itself: %v", err)
	}
	d, err := tlsconf.SelfSigned("o")
	if err != nil {
		t.Fatal(err)
	}
	if d.Leaf.Subject.CommonName != "localhost" || len(d.Leaf.IPAddresses) != 2 {
		t.Errorf("default hosts: %v %v", d.Leaf.DNSNames, d.Leaf.IPAddresses)
	}
}

func TestAllowList(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	_, _, alice := ca.Issue(testdeps.Leaf{CN: "alice", DNS: []string{"a.example"}, URIs: []string{"spiffe://x/a"}, Client: true})
	for _, tt := range []struct {
		name  string
		list  tlsconf.AllowList
		match string // "" no match
	}{
		{"empty allows all", tlsconf.AllowList{}, ""},
		{"cn", tlsconf.AllowList{CN: []string{"bob", "alice"}}, "cn:alice"},
		{"dns case-insensitive", tlsconf.AllowList{DNS: []string{"A.EXAMPLE"}}, "dns:A.EXAMPLE"},
		{"uri", tlsconf.AllowList{URI: []string{"spiffe://x/a"}}, "uri:spiffe://x/a"},
		{"uri prefix is not a match", tlsconf.AllowList{URI: []string{"spiffe://x"}}, ""},
		{"cn is not a dns match", tlsconf.AllowList{DNS: []string{"alice"}}, ""},
		{"cn case matters", tlsconf.AllowList{CN: []string{"Alice"}}, ""},
		{"none match", tlsconf.AllowList{CN: []string{"bob"}, DNS: []string{"b.example"}, URI: []string{"spiffe://x/b"}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := tt.list.Match(alice.Leaf)
			if m != tt.match || ok != (tt.match != "") {
				t.Errorf("Match = %q %v, want %q", m, ok, tt.match)
			}
			if want := tt.match != "" || tt.list.Empty(); tt.list.Allows(alice.Leaf) != want {
				t.Errorf("Allows = %v, want %v", !want, want)
			}
		})
	}
	if id := tlsconf.Identity(alice.Leaf); id != "CN=alice uri:spiffe://x/a dns:a.example" {
		t.Errorf("Identity = %q", id)
	}
}

// TestStore: a handshake takes the generation current at that moment;
// a session ticket issued before an Install resumes after it; a client
// CA makes the handshake ask for (and VerifyConnection check) a client
// certificate.
func TestStore(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	files := tlsconf.Files{CertFlag: "--cert", KeyFlag: "--key", CAFlag: "--client-ca", CAFile: ca.CAFile(dir)}
	files.CertFile, files.KeyFile = ca.ServerFiles(dir)
	if got := files.List(); len(got) != 3 {
		t.Errorf("List = %v", got)
	}
	m, err := files.Load()
	if err != nil {
		t.Fatal(err)
	}
	verified := make(chan string, 16)
	s := tlsconf.NewStore(tlsconf.Server{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert, VerifyConnection: func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			verified <- cs.PeerCertificates[0].Subject.CommonName
		}
		return nil
	}}, m)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Write([]byte("x"))
				var b [1]byte
				c.Read(b[:])
			}()
		}
	}()
	_, _, clientCert := ca.Issue(testdeps.Leaf{CN: "client-1", Client: true})
	cache := tls.NewLRUClientSessionCache(4)
	dial := func() (serial string, resumed bool) {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", Certificates: []tls.Certificate{clientCert}, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil { // the ticket arrives with the first data
			t.Fatal(err)
		}
		cs := c.ConnectionState()
		return cs.PeerCertificates[0].SerialNumber.String(), cs.DidResume
	}
	first, _ := dial()
	if cn := <-verified; cn != "client-1" {
		t.Errorf("VerifyConnection saw %q", cn)
	}
	files.CertFile, files.KeyFile = ca.Files(dir, "next", testdeps.Leaf{CN: "localhost", DNS: []string{"localhost"}})
	next, err := files.Load()
	if err != nil {
		t.Fatal(err)
	}
	s.Install(next)
	if s.Current() != next || next.Leaf().SerialNumber.String() == first {
		t.Fatal("Install did not make the new generation current")
	}
	if _, resumed := dial(); !resumed {
		t.Error("a session from before Install did not resume")
	}
	cache = tls.NewLRUClientSessionCache(4) // a full handshake sees the new certificate
	if got, _ := dial(); got != next.Leaf().SerialNumber.String() {
		t.Errorf("serving serial %s after Install, want %s", got, next.Leaf().SerialNumber)
	}
}
