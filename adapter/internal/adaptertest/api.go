package adaptertest

import (
	"crypto/tls"
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

// SecureAPI is an adapter API secured the way the tests check it: TLS
// from a test CA, client certificates from that CA narrowed to one
// allowed CN, and a token file with a token of the adapter's role and one
// of another role.
type SecureAPI struct {
	// Security goes into the adapter's Config.API.
	Security container.APISecurity
	PKI      *testdeps.PKI
	// Role is the role the checked endpoints need; Other is another role
	// the test must add to the adapter's declared roles for OtherToken to
	// load.
	Role, Other string
	// Token has Role, OtherToken has Other.
	Token, OtherToken string
	// Allowed is a client certificate in the allow-list (CN "allowed"),
	// Stranger one from the same CA outside it (CN "stranger").
	Allowed, Stranger tls.Certificate
}

// NewSecureAPI writes the certificates and the token file into a
// temporary directory and returns the API's security settings for role.
func NewSecureAPI(t testing.TB, role string) *SecureAPI {
	t.Helper()
	dir := t.TempDir()
	s := &SecureAPI{
		PKI:        testdeps.NewPKI(t, "podkit test CA"),
		Role:       role,
		Other:      "other",
		Token:      "right-token-" + role + "-0123456789",
		OtherToken: "other-token-0123456789abcdef",
	}
	cert, key := s.PKI.ServerFiles(dir)
	_, _, s.Allowed = s.PKI.Issue(testdeps.Leaf{CN: "allowed", Client: true})
	_, _, s.Stranger = s.PKI.Issue(testdeps.Leaf{CN: "stranger", Client: true})
	tokens := filepath.Join(dir, "tokens")
	lines := "# name roles token\n" + role + "-client " + role + " " + s.Token + "\nother-client other " + s.OtherToken + "\n"
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Security = container.APISecurity{
		TLSCert: cert, TLSKey: key,
		ClientCA:   s.PKI.CAFile(dir),
		AllowCN:    []string{role + "=allowed"},
		TokenFiles: []string{tokens},
	}
	return s
}

// WithOther returns a with the role Other declared too, so that
// OtherToken loads and is refused with 403 (the adapters declare a single
// role, so no real credential lacks it).
func (s *SecureAPI) WithOther(a container.Access) container.Access {
	a.Roles = append(append([]container.Role(nil), a.Roles...), container.Role{Name: s.Other, Help: "a role the checked endpoints do not accept (test only)"})
	return a
}

// Client returns an HTTPS client that trusts the test CA and presents
// cert (nil: no certificate).
func (s *SecureAPI) Client(cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: s.PKI.Pool, MinVersion: tls.VersionTLS12}
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
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
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
		a := Get(t, anon, url, "")
		refused(t, a, http.StatusUnauthorized, "no_credential")
		if !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate %q, want Bearer", a.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		refused(t, Get(t, anon, url, "not-a-token-anyone-has-0000"), http.StatusUnauthorized, "bad_token")
	})
	t.Run("token of another role", func(t *testing.T) {
		msg := refused(t, Get(t, anon, url, s.OtherToken), http.StatusForbidden, "wrong_role")
		if !strings.Contains(msg, "needs role "+s.Role) {
			t.Errorf("error %q does not name role %s", msg, s.Role)
		}
	})
	t.Run("certificate outside the allow-list", func(t *testing.T) {
		msg := refused(t, Get(t, s.Client(&s.Stranger), url, ""), http.StatusForbidden, "cert_not_allowed")
		if !strings.Contains(msg, "stranger") {
			t.Errorf("error %q does not name the certificate", msg)
		}
	})
	t.Run("right token", func(t *testing.T) {
		a := Get(t, anon, url, s.Token)
		if a.Code != http.StatusOK {
			t.Fatalf("%d %s, want 200", a.Code, a.Body)
		}
		if why := ok(a); why != "" {
			t.Fatal(why)
		}
	})
	t.Run("allowed certificate", func(t *testing.T) {
		a := Get(t, s.Client(&s.Allowed), url, "")
		if a.Code != http.StatusOK {
			t.Fatalf("%d %s, want 200", a.Code, a.Body)
		}
		if why := ok(a); why != "" {
			t.Fatal(why)
		}
	})
}
