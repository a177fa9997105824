package container

import (
	"crypto/tls"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestAPIClientFlags(t *testing.T) {
	var c APIClient
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs, "queue-", "the queue")
	if err := fs.Parse([]string{"--queue-ca", "ca.pem", "--queue-cert", "c.pem", "--queue-key", "k.pem", "--queue-token-file", "tok"}); err != nil {
		t.Fatal(err)
	}
	if c != (APIClient{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", TokenFile: "tok"}) {
		t.Errorf("parsed %+v", c)
	}
	if !c.Set() || (APIClient{}).Set() {
		t.Error("Set")
	}
}

func TestAPIClientValidate(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	cert, key := ca.Files(dir, "client", testdeps.Leaf{CN: "worker-1", Client: true})
	_, otherKey := ca.Files(dir, "other", testdeps.Leaf{CN: "worker-2", Client: true})
	caFile := ca.CAFile(dir)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("token", tokWork+"\n")
	empty := write("empty", "\n")
	serverLines := write("server-format", "w worker "+tokWork+"\n")
	notPEM := write("garbage.pem", "not a certificate\n")
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name string
		c    APIClient
		want []string // "" want: valid
	}{
		{"all good", APIClient{CAFile: caFile, CertFile: cert, KeyFile: key, TokenFile: good}, nil},
		{"cert without key", APIClient{CertFile: cert}, []string{"--queue-cert and --queue-key: give both or neither"}},
		{"key without cert", APIClient{KeyFile: key}, []string{"--queue-cert and --queue-key"}},
		{"mismatched key", APIClient{CertFile: cert, KeyFile: otherKey}, []string{"--queue-cert " + cert, "--queue-key " + otherKey}},
		{"missing cert", APIClient{CertFile: missing, KeyFile: key}, []string{"--queue-cert", "no such file"}},
		{"missing CA", APIClient{CAFile: missing}, []string{"--queue-ca", "no such file"}},
		{"CA without certificates", APIClient{CAFile: notPEM}, []string{"--queue-ca " + notPEM, "no PEM certificates"}},
		{"missing token file", APIClient{TokenFile: missing}, []string{"--queue-token-file", "no such file"}},
		{"empty token file", APIClient{TokenFile: empty}, []string{"--queue-token-file", "is empty"}},
		{"server's token format", APIClient{TokenFile: serverLines}, []string{"--queue-token-file", "holds the token alone"}},
		{"every error at once", APIClient{CAFile: missing, CertFile: cert, TokenFile: empty}, []string{"--queue-ca", "--queue-cert and --queue-key", "--queue-token-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate("queue-")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var ue *cli.UsageError
			if !errors.As(err, &ue) {
				t.Errorf("%T is not a usage error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tokWork) {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
	// Transport refuses what Validate refuses.
	if _, err := (APIClient{TokenFile: serverLines}).Transport(nil); err == nil {
		t.Error("Transport accepted a server-format token file")
	}
	if _, err := (APIClient{CAFile: missing}).Transport(nil); err == nil {
		t.Error("Transport accepted a missing CA file")
	}
}

// TestAPIClientAgainstAPI: an APIClient's transport talks to a real API
// over mutual TLS with a token, and picks up a rotated token and client
// certificate without being made again.
func TestAPIClientAgainstAPI(t *testing.T) {
	m := startMTLS(t, nil)
	dir := t.TempDir()
	caFile := m.server.CAFile(dir)
	certFile, keyFile := m.clientCA.Files(dir, "client", testdeps.Leaf{CN: "worker-1", Client: true})
	tokFile := filepath.Join(dir, "token")
	testdeps.ReplaceFile(t, tokFile, tokWork+"\n")
	base := &http.Transport{DisableKeepAlives: true} // each request a new handshake

	caller := func(c *http.Client, path string) (int, string) {
		t.Helper()
		r := call(c, m.srv.url+path)
		if r.err != nil {
			t.Fatal(r.err)
		}
		name, _ := r.body["name"].(string)
		return r.status, name
	}
	t.Run("certificate", func(t *testing.T) {
		c, err := APIClient{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}.Client(base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st, name := caller(c, "/work"); st != 200 || name != "cn:worker-1" {
			t.Errorf("got %d %q, want 200 cn:worker-1", st, name)
		}
	})
	t.Run("token", func(t *testing.T) {
		c, err := APIClient{CAFile: caFile, TokenFile: tokFile}.Client(base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st, name := caller(c, "/work"); st != 200 || name != "token:w" {
			t.Errorf("got %d %q, want 200 token:w", st, name)
		}
		// An Authorization header set by the caller is left alone.
		r := call(c, m.srv.url+"/produce", "Authorization: Bearer "+tokProd)
		if r.status != 200 || r.body["name"] != "token:prod" {
			t.Errorf("own header: %d %s", r.status, r.raw)
		}
	})
	t.Run("no CA: the server is not trusted", func(t *testing.T) {
		c, err := APIClient{TokenFile: tokFile}.Client(base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r := call(c, m.srv.url+"/work"); r.err == nil {
			t.Errorf("a server from an unknown CA was trusted: %d", r.status)
		}
	})
	t.Run("rotation", func(t *testing.T) {
		c, err := APIClient{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, TokenFile: tokFile}.Client(base, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The token is sent, and wins over the certificate.
		if st, name := caller(c, "/work"); st != 200 || name != "token:w" {
			t.Fatalf("got %d %q, want 200 token:w", st, name)
		}
		if st, _ := caller(c, "/produce"); st != 403 {
			t.Fatalf("/produce with the worker's token: %d, want 403", st)
		}
		testdeps.ReplaceFile(t, tokFile, tokProd+"\n")
		testdeps.WaitFor(t, "the rotated token sent", func() bool { st, _ := caller(c, "/produce"); return st == 200 })

		// Without a token, the certificate speaks: rotate it to admin-1.
		cc, err := APIClient{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}.Client(base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := caller(cc, "/admin"); st != 403 {
			t.Fatalf("/admin as worker-1: %d, want 403", st)
		}
		m.clientCA.Files(dir, "client", testdeps.Leaf{CN: "admin-1", Client: true})
		testdeps.WaitFor(t, "the rotated certificate presented", func() bool { st, _ := caller(cc, "/admin"); return st == 200 })

		// A broken rewrite keeps the last good token.
		testdeps.ReplaceFile(t, tokFile, "w worker "+tokWork+"\n")
		for range 3 {
			if st, _ := caller(c, "/produce"); st != 200 {
				t.Fatalf("after a broken token file: %d, want 200 (the last good token)", st)
			}
		}
	})
}

// TestAPIClientALPN: whatever base transport it is given, the transport
// offers h2 only when it speaks it.
func TestAPIClientALPN(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	testdeps.ReplaceFile(t, tok, tokWork)
	for _, c := range []APIClient{{TokenFile: tok}, {CAFile: ca.CAFile(dir), TokenFile: tok}, {CAFile: ca.CAFile(dir)}} {
		for name, base := range map[string]*http.Transport{
			"fresh":         {},
			"with TLS":      {TLSClientConfig: &tls.Config{}},
			"forcing h2":    {ForceAttemptHTTP2: true},
			"default (nil)": nil,
		} {
			rt, err := c.Transport(base)
			if err != nil {
				t.Fatal(err)
			}
			tr, ok := rt.(*http.Transport)
			if b, isBearer := rt.(bearer); isBearer {
				tr, ok = b.base, true
			}
			if !ok {
				t.Fatalf("%T", rt)
			}
			// Make the transport set itself up, as its first request does.
			tr.CloseIdleConnections()
			offersH2 := tr.TLSClientConfig != nil && slices.Contains(tr.TLSClientConfig.NextProtos, "h2")
			speaksH2 := tr.TLSNextProto["h2"] != nil || base == nil || base.ForceAttemptHTTP2
			if offersH2 && !speaksH2 {
				t.Errorf("%+v over %s base: offers h2 without speaking it", c, name)
			}
		}
	}
}
