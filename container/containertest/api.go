// Package containertest holds test helpers for components hosted by the
// container contract: SecureAPI secures a component's API the way the
// tests check it (TLS from a test CA, client certificates narrowed to one
// CN, tokens of the right role and of another) and CheckAccess holds the
// API to its role. It is imported by tests only; container's own tests do
// not import it (it imports container). General test helpers are in
// internal/testdeps.
package containertest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// SecureAPI is a component's API secured the way the tests check it: TLS
// from a test CA, client certificates from that CA narrowed to one
// allowed CN, and a token file with a token of the component's role and
// one of another role.
type SecureAPI struct {
	// Security goes into the component's Config.API.
	Security container.APISecurity
	// CA is the test CA's pool, which verifies the server's certificate.
	CA *x509.CertPool
	// Role is the role the checked endpoints need; Other is another role
	// the test must add to the component's declared roles (WithOther) for
	// OtherToken to load.
	Role, Other string
	// Token has Role, OtherToken has Other.
	Token, OtherToken string
	// Allowed is a client certificate in the allow-list (CN "allowed"),
	// Stranger one from the same CA outside it (CN "stranger").
	Allowed, Stranger tls.Certificate
	// Header is sent with every request CheckAccess makes (nil: none),
	// e.g. an Accept header for an endpoint that negotiates its format.
	Header http.Header
}

// NewSecureAPI writes the certificates and the token file into a
// temporary directory and returns the API's security settings for role.
func NewSecureAPI(t testing.TB, role string) *SecureAPI {
	t.Helper()
	dir := t.TempDir()
	pki := testdeps.NewPKI(t, "podkit test CA")
	s := &SecureAPI{
		CA:         pki.Pool,
		Role:       role,
		Other:      "other",
		Token:      "right-token-" + role + "-0123456789",
		OtherToken: "other-token-0123456789abcdef",
	}
	cert, key := pki.ServerFiles(dir)
	_, _, s.Allowed = pki.Issue(testdeps.Leaf{CN: "allowed", Client: true})
	_, _, s.Stranger = pki.Issue(testdeps.Leaf{CN: "stranger", Client: true})
	tokens := filepath.Join(dir, "tokens")
	lines := "# name roles token\n" + role + "-client " + role + " " + s.Token + "\nother-client other " + s.OtherToken + "\n"
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Security = container.APISecurity{
		TLSCert: cert, TLSKey: key,
		ClientCA:   pki.CAFile(dir),
		AllowCN:    []string{role + "=allowed"},
		TokenFiles: []string{tokens},
	}
	return s
}

// WithOther returns a with the role Other declared too, so that
// OtherToken loads and is refused with 403 (a component that declares a
// single role has no real credential that lacks it).
func (s *SecureAPI) WithOther(a container.Access) container.Access {
	a.Roles = append(append([]container.Role(nil), a.Roles...), container.Role{Name: s.Other, Help: "a role the checked endpoints do not accept (test only)"})
	return a
}

// Client returns an HTTPS client that trusts the test CA and presents
// cert (nil: no certificate).
func (s *SecureAPI) Client(cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: s.CA, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// Answer is an API's answer: its status, headers and body.
type Answer struct {
	Code   int
	Header http.Header
	Body   string
}

// Refusal decodes a refusal's JSON body.
func (a Answer) Refusal(t testing.TB) (reason, role, msg string) {
	t.Helper()
	var b struct{ Error, Reason, Role string }
	if err := json.Unmarshal([]byte(a.Body), &b); err != nil {
		t.Fatalf("refusal %d is not JSON: %v\n%s", a.Code, err, a.Body)
	}
	return b.Reason, b.Role, b.Error
}

// Get GETs url with client, and the token as a bearer token when it is
// not "".
func Get(t testing.TB, client *http.Client, url, token string) Answer {
	t.Helper()
	return get(t, client, url, token, nil)
}

// get is Get that also sends header's fields.
func get(t testing.TB, client *http.Client, url, token string, header http.Header) Answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = append([]string(nil), v...)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Answer{resp.StatusCode, resp.Header, string(b)}
}

// CheckAccess holds the API at url (https://...) to the rules: no
// credential, or an unknown token, is 401 naming the role; a token
// without the role is 403 naming it; a certificate outside the allow-list
// is 403 naming the certificate; the right token and the allowed
// certificate are let through, and ok checks what they got (it returns
// "" when the answer is the real content, else what is wrong).
func (s *SecureAPI) CheckAccess(t *testing.T, url string, ok func(Answer) string) {
	t.Helper()
	refused := func(t *testing.T, a Answer, code int, reason string) string {
		t.Helper()
		if a.Code != code {
			t.Fatalf("%d %s, want %d", a.Code, a.Body, code)
		}
		gotReason, role, msg := a.Refusal(t)
		if gotReason != reason || role != s.Role {
			t.Fatalf("reason %q role %q, want %q and %q: %s", gotReason, role, reason, s.Role, a.Body)
		}
		return msg
	}
	anon := s.Client(nil)
	t.Run("no credential", func(t *testing.T) {
		a := get(t, anon, url, "", s.Header)
		refused(t, a, http.StatusUnauthorized, "no_credential")
		if !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate %q, want Bearer", a.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		refused(t, get(t, anon, url, "not-a-token-anyone-has-0000", s.Header), http.StatusUnauthorized, "bad_token")
	})
	t.Run("token of another role", func(t *testing.T) {
		msg := refused(t, get(t, anon, url, s.OtherToken, s.Header), http.StatusForbidden, "wrong_role")
		if !strings.Contains(msg, "needs role "+s.Role) {
			t.Errorf("error %q does not name role %s", msg, s.Role)
		}
	})
	t.Run("certificate outside the allow-list", func(t *testing.T) {
		msg := refused(t, get(t, s.Client(&s.Stranger), url, "", s.Header), http.StatusForbidden, "cert_not_allowed")
		if !strings.Contains(msg, "stranger") {
			t.Errorf("error %q does not name the certificate", msg)
		}
	})
	t.Run("right token", func(t *testing.T) {
		a := get(t, anon, url, s.Token, s.Header)
		if a.Code != http.StatusOK {
			t.Fatalf("%d %s, want 200", a.Code, a.Body)
		}
		if why := ok(a); why != "" {
			t.Fatal(why)
		}
	})
	t.Run("allowed certificate", func(t *testing.T) {
		a := get(t, s.Client(&s.Allowed), url, "", s.Header)
		if a.Code != http.StatusOK {
			t.Fatalf("%d %s, want 200", a.Code, a.Body)
		}
		if why := ok(a); why != "" {
			t.Fatal(why)
		}
	})
}
