package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/tlsconf"
)

func issue(t *testing.T, cfg Config) string {
	t.Helper()
	var out bytes.Buffer
	if err := Issue(cfg, &out); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return out.String()
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMutualTLS issues a server and two client certificates and uses them
// as podkit's API does: a TLS server requiring client certificates from
// the CA, a client trusting the CA. The handshake succeeds with either
// client certificate, the server sees the client's CN, and a client
// certificate from another run's CA is refused.
func TestMutualTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out := issue(t, Config{Dir: dir, Servers: []string{"localhost", "127.0.0.1", "queue"}, Clients: []string{"worker", "producer"}, Days: 30})
	if !strings.Contains(out, "for development and examples only") {
		t.Errorf("the output does not say it is for development:\n%s", out)
	}

	pair, err := tlsconf.LoadPair("--tls-cert", filepath.Join(dir, "server.crt"), "--tls-key", filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := tlsconf.LoadCA("--client-ca", filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.VerifiedChains[0][0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	srv.StartTLS()
	defer srv.Close()

	get := func(certFile, keyFile string) (string, error) {
		tc := &tls.Config{RootCAs: pool}
		if certFile != "" {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
		defer c.CloseIdleConnections()
		// By name, so the server certificate's DNS name is checked too.
		u := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
		resp, err := c.Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for _, name := range []string{"worker", "producer"} {
		got, err := get(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
		if err != nil || got != name {
			t.Errorf("with %s's certificate: %q %v, want the server to see CN %s", name, got, err, name)
		}
	}
	if _, err := get("", ""); err == nil {
		t.Errorf("without a client certificate the server answered")
	}
	other := filepath.Join(t.TempDir(), "other")
	issue(t, Config{Dir: other, Clients: []string{"worker"}, Days: 1})
	if _, err := get(filepath.Join(other, "worker.crt"), filepath.Join(other, "worker.key")); err == nil {
		t.Errorf("a client certificate from another CA was accepted")
	}

	// What each certificate says.
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	if !ca.IsCA || ca.Subject.CommonName != CAName {
		t.Errorf("ca.crt: IsCA %v, CN %q", ca.IsCA, ca.Subject.CommonName)
	}
	s := readCert(t, filepath.Join(dir, "server.crt"))
	if strings.Join(s.DNSNames, ",") != "localhost,queue" || len(s.IPAddresses) != 1 || !s.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("server.crt: DNS %v, IPs %v", s.DNSNames, s.IPAddresses)
	}
	if s.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || s.IsCA {
		t.Errorf("server.crt: ext key usage %v, IsCA %v", s.ExtKeyUsage, s.IsCA)
	}
	w := readCert(t, filepath.Join(dir, "worker.crt"))
	if w.Subject.CommonName != "worker" || w.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || w.IsCA {
		t.Errorf("worker.crt: CN %q, ext key usage %v, IsCA %v", w.Subject.CommonName, w.ExtKeyUsage, w.IsCA)
	}
	if d := time.Until(w.NotAfter); d < 29*24*time.Hour || d > 30*24*time.Hour {
		t.Errorf("worker.crt expires in %s, want 30 days (--days 30)", d)
	}
	if k, ok := w.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("worker.crt's key is %T, want ECDSA P-256", w.PublicKey)
	}

	// Modes: keys 0600, certificates 0644.
	for name, want := range map[string]os.FileMode{"ca.key": 0o600, "ca.crt": 0o644, "server.key": 0o600, "server.crt": 0o644, "worker.key": 0o600, "producer.crt": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %#o, want %#o", name, fi.Mode().Perm(), want)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestExistingFiles: files that exist are refused (nothing written), kept
// with --keep-existing, replaced with --force; a CA in the directory is
// used to issue a later client certificate, which the same CA verifies.
func TestExistingFiles(t *testing.T) {
	dir := t.TempDir()
	issue(t, Config{Dir: dir, Servers: []string{"queue"}, Clients: []string{"worker"}, Days: 10})
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ca, server, worker := read("ca.crt"), read("server.crt"), read("worker.crt")

	// Refused, and nothing written: not even the new client's files.
	err := Issue(Config{Dir: dir, Servers: []string{"queue"}, Clients: []string{"producer", "worker"}, Days: 10}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "worker.crt") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("re-issuing over existing files: %v, want a refusal naming server.crt and --force", err)
	}
	if exists(filepath.Join(dir, "producer.crt")) {
		t.Errorf("producer.crt was written although the run was refused")
	}

	// --keep-existing: only producer is new; the CA is reused.
	out := issue(t, Config{Dir: dir, Servers: []string{"queue"}, Clients: []string{"worker", "producer"}, Days: 10, KeepExisting: true})
	if read("ca.crt") != ca || read("server.crt") != server || read("worker.crt") != worker {
		t.Errorf("--keep-existing changed an existing file")
	}
	if !strings.Contains(out, "using the CA") || !strings.Contains(out, "kept") {
		t.Errorf("output does not say the CA was used and files kept:\n%s", out)
	}
	caCert := readCert(t, filepath.Join(dir, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	p := readCert(t, filepath.Join(dir, "producer.crt"))
	if _, err := p.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("producer.crt does not verify against the existing CA: %v", err)
	}

	// --force: replaced, with the same CA.
	issue(t, Config{Dir: dir, Clients: []string{"worker"}, Days: 10, Force: true})
	if read("worker.crt") == worker {
		t.Errorf("--force did not replace worker.crt")
	}
	if read("ca.crt") != ca {
		t.Errorf("--force replaced the CA")
	}
	if _, err := readCert(t, filepath.Join(dir, "worker.crt")).Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the replaced worker.crt does not verify against the CA: %v", err)
	}
}

// TestBrokenDirectories: a CA half there, a leaf without a CA, a key
// without its certificate, a CA that expired.
func TestBrokenDirectories(t *testing.T) {
	write := func(t *testing.T, dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		cfg   Config
		want  string
	}{
		{"ca.crt alone", func(t *testing.T, dir string) { write(t, dir, "ca.crt", "x") }, Config{Clients: []string{"a"}}, "without ca.key"},
		{"ca.key alone", func(t *testing.T, dir string) { write(t, dir, "ca.key", "x") }, Config{Clients: []string{"a"}}, "without ca.crt"},
		{"garbage CA", func(t *testing.T, dir string) { write(t, dir, "ca.crt", "x"); write(t, dir, "ca.key", "y") }, Config{Clients: []string{"a"}}, "cannot be used"},
		{"leaf without a CA", func(t *testing.T, dir string) { write(t, dir, "a.crt", "x") }, Config{Clients: []string{"a"}, KeepExisting: true}, "no CA"},
		{"key without its certificate", func(t *testing.T, dir string) {
			issue(t, Config{Dir: dir, Clients: []string{"b"}, Days: 1})
			write(t, dir, "a.key", "x")
		}, Config{Clients: []string{"a"}, KeepExisting: true}, "without its pair"},
		{"expired CA", func(t *testing.T, dir string) {
			issue(t, Config{Dir: dir, Clients: []string{"b"}, Days: 1, Now: func() time.Time { return time.Now().Add(-(caDays + 2) * 24 * time.Hour) }})
		}, Config{Clients: []string{"a"}}, "expired"},
		{"a server certificate that is the server's", func(t *testing.T, dir string) {
			issue(t, Config{Dir: dir, Servers: []string{"x"}, Days: 1})
			os.Rename(filepath.Join(dir, "server.crt"), filepath.Join(dir, "ca.crt"))
			os.Rename(filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.key"))
		}, Config{Clients: []string{"a"}}, "not a CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			cfg := tt.cfg
			cfg.Dir, cfg.Days = dir, 1
			err := Issue(cfg, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Issue: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestValidate: every bad setting is named by its flag.
func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want []string
	}{
		{Config{Days: 1}, []string{"--dir", "--server, --client"}},
		{Config{Dir: "d", Servers: []string{"bad name"}, Days: 1}, []string{`--server "bad name"`}},
		{Config{Dir: "d", Servers: []string{"ok.example", "10.0.0.1", "::1", "*.svc.cluster.local"}, Days: 1}, nil},
		{Config{Dir: "d", Clients: []string{"../x"}, Days: 1}, []string{`--client "../x"`}},
		{Config{Dir: "d", Clients: []string{"ca"}, Days: 1}, []string{`--client "ca"`}},
		{Config{Dir: "d", Clients: []string{"server"}, Days: 1}, []string{`--client "server"`}},
		{Config{Dir: "d", Clients: []string{"w", "w"}, Days: 1}, []string{"given twice"}},
		{Config{Dir: "d", Clients: []string{"w"}, Days: 0}, []string{"--days 0"}},
		{Config{Dir: "d", Clients: []string{"w"}, Days: 1, Force: true, KeepExisting: true}, []string{"--force and --keep-existing"}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%+v: %v", tt.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: no error, want %q", tt.cfg, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %v, want it to name %q", tt.cfg, err, w)
			}
		}
	}
}

// TestCommand runs the verb through the command-line layer: flags, the
// comma-separated --server, exit status 2 for a bad command line.
func TestCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	var stdout, stderr bytes.Buffer
	stdio := cli.IO{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}
	code := cli.Main(context.Background(), []cli.Command{Command()},
		[]string{"certs", "--dir", dir, "--server", "queue,127.0.0.1", "--server", "localhost", "--client", "worker", "--client", "producer", "--days", "7"}, stdio)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	s := readCert(t, filepath.Join(dir, "server.crt"))
	if strings.Join(s.DNSNames, ",") != "queue,localhost" || len(s.IPAddresses) != 1 {
		t.Errorf("server.crt: DNS %v IPs %v", s.DNSNames, s.IPAddresses)
	}
	for _, f := range []string{"worker.crt", "worker.key", "producer.crt", "producer.key"} {
		if !exists(filepath.Join(dir, f)) {
			t.Errorf("%s not written", f)
		}
	}
	// Again: refused, exit 1, naming --force.
	stderr.Reset()
	code = cli.Main(context.Background(), []cli.Command{Command()}, []string{"certs", "--dir", dir, "--client", "worker"}, stdio)
	if code != 1 || !strings.Contains(stderr.String(), "--force") {
		t.Errorf("again: exit %d, stderr %q; want 1 and a message naming --force", code, stderr.String())
	}
	// A bad command line: exit 2.
	stderr.Reset()
	code = cli.Main(context.Background(), []cli.Command{Command()}, []string{"certs", "--client", "a/b"}, stdio)
	if code != 2 || !strings.Contains(stderr.String(), "--dir") || !strings.Contains(stderr.String(), `--client "a/b"`) {
		t.Errorf("bad flags: exit %d, stderr %q; want 2 naming --dir and --client", code, stderr.String())
	}
}
