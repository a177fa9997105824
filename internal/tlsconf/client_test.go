package tlsconf_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/internal/tlsconf"
)

const serverSPIFFE = "spiffe://cluster.local/ns/db/sa/postgres"

// identityBackend is an HTTP server on loopback answering with the
// X-Forwarded-Client-Cert header it got.
func identityBackend(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// mtlsEnv is a real `podkit tls-proxy --client-ca` (mutual TLS) in front
// of a backend that answers each request with the client identity
// tls-proxy forwards. Its server certificate, from serverCA, carries
// localhost, db.internal, 127.0.0.1 and serverSPIFFE.
type mtlsEnv struct {
	dir                         string
	serverCA, clientCA, otherCA *testdeps.PKI
	addr                        string // tls-proxy's listener
}

func startMTLS(t *testing.T) *mtlsEnv {
	t.Helper()
	e := &mtlsEnv{
		dir:      t.TempDir(),
		serverCA: testdeps.NewPKI(t, "server CA"),
		clientCA: testdeps.NewPKI(t, "client CA"),
		otherCA:  testdeps.NewPKI(t, "other CA"),
	}
	sdir := filepath.Join(e.dir, "server")
	os.Mkdir(sdir, 0o700)
	cert, key := e.serverCA.Files(sdir, "server", testdeps.Leaf{
		CN: "postgres", DNS: []string{"localhost", "db.internal"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, URIs: []string{serverSPIFFE},
	})
	clientCAFile := e.clientCA.CAFile(sdir)
	bin := testdeps.BuildPodkit(t)
	e.addr = testdeps.FreePort(t)
	testdeps.Start(t, "tls-proxy", bin, "tls-proxy",
		"--listen", e.addr, "--target", identityBackend(t), "--mode", "http",
		"--cert", cert, "--key", key, "--client-ca", clientCAFile,
		"--admin-addr", "127.0.0.1:0")
	testdeps.WaitFor(t, "tls-proxy listening on "+e.addr, func() bool {
		c, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return e
}

// clientFiles writes a client certificate for cn (from ca) and the server
// CA to a new directory.
func (e *mtlsEnv) clientFiles(t *testing.T, name string, ca *testdeps.PKI, cn string) tlsconf.ClientFiles {
	t.Helper()
	dir := filepath.Join(e.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := tlsconf.ClientFiles{CA: e.serverCA.CAFile(dir)}
	if ca != nil {
		f.Cert, f.Key = ca.Files(dir, "client", testdeps.Leaf{CN: cn, Client: true})
	}
	return f
}

// whoami asks the backend, over a new connection through c, which client
// certificate tls-proxy saw.
func whoami(c *tlsconf.Client, addr string) (string, error) {
	tr := &http.Transport{DialTLSContext: c.Dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", errors.New(resp.Status + ": " + string(b))
	}
	return string(b), err
}

func TestClientAgainstTLSProxy(t *testing.T) {
	e := startMTLS(t)

	t.Run("client certificate accepted", func(t *testing.T) {
		c, err := tlsconf.NewClient(e.clientFiles(t, "alice", e.clientCA, "alice"))
		if err != nil {
			t.Fatal(err)
		}
		who, err := whoami(c, e.addr)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(who, "CN=alice") {
			t.Fatalf("tls-proxy saw %q, want CN=alice", who)
		}
	})

	t.Run("no client certificate refused", func(t *testing.T) {
		c, err := tlsconf.NewClient(e.clientFiles(t, "anonymous", nil, ""))
		if err != nil {
			t.Fatal(err)
		}
		who, err := whoami(c, e.addr)
		if err == nil {
			t.Fatalf("request without a client certificate succeeded (%q)", who)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %q does not say a certificate was wanted", err)
		}
	})

	t.Run("client certificate from another CA refused", func(t *testing.T) {
		c, err := tlsconf.NewClient(e.clientFiles(t, "mallory", e.otherCA, "mallory"))
		if err != nil {
			t.Fatal(err)
		}
		if who, err := whoami(c, e.addr); err == nil {
			t.Fatalf("request with a certificate from another CA succeeded (%q)", who)
		}
	})

	t.Run("server from another CA refused", func(t *testing.T) {
		f := e.clientFiles(t, "wrongca", e.clientCA, "alice")
		f.CA = e.otherCA.CAFile(filepath.Dir(f.Cert))
		c, err := tlsconf.NewClient(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Dial(context.Background(), "tcp", e.addr)
		if err == nil || !strings.Contains(err.Error(), "unknown authority") {
			t.Fatalf("dial of a server from another CA: %v, want an unknown authority error", err)
		}
	})

	t.Run("SAN", func(t *testing.T) {
		for _, tt := range []struct {
			name       string
			serverName string
			sans       []string
			dial       string
			want       string // "" is success
		}{
			{"dialed IP", "", nil, e.addr, ""},
			{"server name", "db.internal", nil, e.addr, ""},
			{"server name mismatch", "cache.internal", nil, e.addr, "cache.internal"},
			{"spiffe", "", []string{serverSPIFFE}, e.addr, ""},
			{"one of several", "", []string{"spiffe://cluster.local/ns/db/sa/other", "db.internal"}, e.addr, ""},
			{"IP SAN", "", []string{"127.0.0.1"}, e.addr, ""},
			{"spiffe mismatch", "", []string{"spiffe://cluster.local/ns/db/sa/other", "cache.internal"}, e.addr, "spiffe://cluster.local/ns/db/sa/other, cache.internal"},
			// With SANs, ServerName is only SNI: the certificate need not carry it.
			{"SANs instead of the server name", "cache.internal", []string{serverSPIFFE}, e.addr, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				f := e.clientFiles(t, "san-"+strings.ReplaceAll(tt.name, " ", "-"), e.clientCA, "alice")
				f.ServerName, f.SANs = tt.serverName, tt.sans
				c, err := tlsconf.NewClient(f)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				conn, err := c.Dial(ctx, "tcp", tt.dial)
				if tt.want == "" {
					if err != nil {
						t.Fatal(err)
					}
					conn.Close()
					return
				}
				if err == nil {
					conn.Close()
					t.Fatalf("dial succeeded, want an error naming %q", tt.want)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %q does not name %q", err, tt.want)
				}
				t.Log(err)
			})
		}
	})

	t.Run("reload", func(t *testing.T) {
		f := e.clientFiles(t, "rotating", e.clientCA, "alice")
		c, err := tlsconf.NewClient(f)
		if err != nil {
			t.Fatal(err)
		}
		// A config taken before the reload follows it too.
		early := c.Config(e.addr)
		if who, err := whoami(c, e.addr); err != nil || !strings.Contains(who, "CN=alice") {
			t.Fatalf("before rotation: %q, %v", who, err)
		}
		certPEM, keyPEM, _ := e.clientCA.Issue(testdeps.Leaf{CN: "bob", Client: true})
		testdeps.ReplaceFile(t, f.Cert, string(certPEM))
		testdeps.ReplaceFile(t, f.Key, string(keyPEM))
		if err := c.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := c.Leaf().Subject.CommonName; got != "bob" {
			t.Fatalf("Leaf after reload: CN %q, want bob", got)
		}
		if who, err := whoami(c, e.addr); err != nil || !strings.Contains(who, "CN=bob") {
			t.Fatalf("after rotation: %q, %v; want CN=bob", who, err)
		}
		tr := &http.Transport{TLSClientConfig: early, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("https://" + e.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "CN=bob") {
			t.Fatalf("through a config from before the reload, tls-proxy saw %q, want CN=bob", b)
		}

		// A broken certificate keeps bob.
		testdeps.ReplaceFile(t, f.Cert, "not a certificate")
		err = c.Reload()
		if !errors.Is(err, tlsconf.ErrBadCertificate) || !strings.Contains(err.Error(), f.Cert) {
			t.Fatalf("reload of a broken file: %v, want ErrBadCertificate naming %s", err, f.Cert)
		}
		if who, err := whoami(c, e.addr); err != nil || !strings.Contains(who, "CN=bob") {
			t.Fatalf("after a failed reload: %q, %v; want CN=bob still", who, err)
		}
		// A missing CA keeps it too.
		os.Remove(f.CA)
		if err := c.Reload(); !errors.Is(err, tlsconf.ErrBadCertificate) {
			t.Fatalf("reload without the CA file: %v, want ErrBadCertificate", err)
		}
		if who, err := whoami(c, e.addr); err != nil || !strings.Contains(who, "CN=bob") {
			t.Fatalf("after a failed reload: %q, %v; want CN=bob still", who, err)
		}
	})
}

// TestClientUnit covers what needs no tls-proxy: bad settings, the
// system roots, the files watched.
func TestClientUnit(t *testing.T) {
	dir := t.TempDir()
	ca := testdeps.NewPKI(t, "unit CA")
	caFile := ca.CAFile(dir)
	cert, key := ca.Files(dir, "client", testdeps.Leaf{CN: "alice", Client: true})
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)

	for _, tt := range []struct {
		name string
		f    tlsconf.ClientFiles
		want string
	}{
		{"cert without key", tlsconf.ClientFiles{Cert: cert}, "both"},
		{"key without cert", tlsconf.ClientFiles{Key: key}, "both"},
		{"missing CA", tlsconf.ClientFiles{CA: filepath.Join(dir, "nope.pem")}, "nope.pem"},
		{"garbage CA", tlsconf.ClientFiles{CA: garbage}, "garbage.pem"},
		{"key of another cert", tlsconf.ClientFiles{Cert: cert, Key: caFile}, "client certificate"},
		{"empty SAN", tlsconf.ClientFiles{SANs: []string{" "}}, "empty"},
		{"bad SAN", tlsconf.ClientFiles{SANs: []string{"a b"}}, "a b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsconf.NewClient(tt.f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient: %v, want an error containing %q", err, tt.want)
			}
		})
	}

	c, err := tlsconf.NewClient(tlsconf.ClientFiles{CA: caFile, Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Files(), " "); got != caFile+" "+cert+" "+key {
		t.Errorf("Files() = %q", got)
	}
	cfg := c.Config("db.internal:5432")
	if cfg.ServerName != "db.internal" || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("Config: ServerName %q, MinVersion %x; want db.internal, TLS 1.2", cfg.ServerName, cfg.MinVersion)
	}

	// A server whose certificate comes from the test CA: trusted with
	// the CA file, not by the system's roots.
	scert, skey := ca.ServerFiles(dir)
	pair, err := tlsconf.LoadPair("cert", scert, "key", skey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn.(*tls.Conn).Handshake()
				conn.Close()
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with the CA: %v", err)
	}
	conn.Close()
	system, err := tlsconf.NewClient(tlsconf.ClientFiles{})
	if err != nil {
		t.Fatal(err)
	}
	if system.Leaf() != nil {
		t.Error("Leaf of a client without a certificate is not nil")
	}
	if conn, err := system.Dial(ctx, "tcp", ln.Addr().String()); err == nil {
		conn.Close()
		t.Fatal("system roots trusted the test CA's server")
	} else if !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("error %q is not an unknown authority", err)
	}
	if _, err := system.Dial(ctx, "tcp", testdeps.FreePort(t)); err == nil {
		t.Error("dial of a closed port succeeded")
	}
}
