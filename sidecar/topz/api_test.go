package topz

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// runIn runs tz in-process under the container contract until the test
// ends, and returns its log.
func runIn(t *testing.T, tz *Topz) *testdeps.Buffer {
	t.Helper()
	logs := &testdeps.Buffer{}
	o := container.DefaultOptions()
	o.AdminAddr, o.DrainDelay, o.DrainTimeout = "off", 0, 5*time.Second
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, tz, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("topz Run: %v\n%s", err, logs.String())
		}
	})
	return logs
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func fetch(t *testing.T, c *http.Client, url, token string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// TestAPIAccess serves GET /topz over TLS with client certificates and
// tokens, reading the real /proc, and holds it to the reader role:
// refusals name the role; the right token and the allowed certificate get
// the process list, this test's own process in it.
func TestAPIAccess(t *testing.T) {
	dir := t.TempDir()
	pki := testdeps.NewPKI(t, "podkit test CA")
	cert, key := pki.ServerFiles(dir)
	_, _, allowed := pki.Issue(testdeps.Leaf{CN: "allowed", Client: true})
	_, _, stranger := pki.Issue(testdeps.Leaf{CN: "stranger", Client: true})
	const right, other = "reader-token-0123456789abcdef", "other-token-0123456789abcdef"
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("oncall reader "+right+"\nsomeone other "+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Passwd = ""
	cfg.Listener = ln
	cfg.API = container.APISecurity{
		TLSCert: cert, TLSKey: key, ClientCA: pki.CAFile(dir),
		AllowCN: []string{"reader=allowed"}, TokenFiles: []string{tokens},
	}
	tz, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// topz declares one role, so no real credential lacks it: declare
	// another here for the 403 of a credential without reader.
	tz.access.Roles = append(append([]container.Role(nil), tz.access.Roles...), container.Role{Name: "other"})
	runIn(t, tz)

	client := func(c *tls.Certificate) *http.Client {
		tc := &tls.Config{RootCAs: pki.Pool}
		if c != nil {
			tc.Certificates = []tls.Certificate{*c}
		}
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tc},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	anon := client(nil)
	base := "https://" + ln.Addr().String()
	testdeps.WaitFor(t, "topz to serve over TLS", func() bool {
		resp, err := anon.Get(base + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusFound
	})
	if a := fetch(t, anon, base+"/", ""); a.code != http.StatusFound || a.header.Get("Location") != "/topz" {
		t.Fatalf("/ without a credential: %d %q, want the public redirect to /topz", a.code, a.header.Get("Location"))
	}
	refused := func(t *testing.T, a answer, code int, reason string) string {
		t.Helper()
		var b struct{ Error, Reason, Role string }
		if a.code != code || json.Unmarshal([]byte(a.body), &b) != nil || b.Reason != reason || b.Role != "reader" {
			t.Fatalf("%d %s; want %d, reason %s, role reader", a.code, a.body, code, reason)
		}
		return b.Error
	}
	served := func(t *testing.T, a answer) {
		t.Helper()
		var snap struct{ Processes []struct{ PID int } }
		if a.code != http.StatusOK || json.Unmarshal([]byte(a.body), &snap) != nil {
			t.Fatalf("%d %.300s; want 200 and the JSON process list", a.code, a.body)
		}
		for _, p := range snap.Processes {
			if p.PID == os.Getpid() {
				return
			}
		}
		t.Fatalf("the test's own pid %d is not in /topz's %d processes", os.Getpid(), len(snap.Processes))
	}
	url := base + "/topz"
	t.Run("no credential", func(t *testing.T) {
		a := fetch(t, anon, url, "")
		refused(t, a, http.StatusUnauthorized, "no_credential")
		if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		refused(t, fetch(t, anon, url, "nobody-has-this-token-0000"), http.StatusUnauthorized, "bad_token")
	})
	t.Run("token of another role", func(t *testing.T) {
		if msg := refused(t, fetch(t, anon, url, other), http.StatusForbidden, "wrong_role"); !strings.Contains(msg, "needs role reader") {
			t.Errorf("error %q does not name the role", msg)
		}
	})
	t.Run("certificate outside the allow-list", func(t *testing.T) {
		if msg := refused(t, fetch(t, client(&stranger), url, ""), http.StatusForbidden, "cert_not_allowed"); !strings.Contains(msg, "stranger") {
			t.Errorf("error %q does not name the certificate", msg)
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		_, _, foreign := testdeps.NewPKI(t, "another CA").Issue(testdeps.Leaf{CN: "allowed", Client: true})
		// GetClientCertificate sends it although the server asks for
		// another CA's (Go's client would otherwise send none).
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:              pki.Pool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil },
		}}}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			t.Fatalf("a certificate from another CA got %s, want the handshake refused", resp.Status)
		}
	})
	t.Run("right token", func(t *testing.T) { served(t, fetch(t, anon, url, right)) })
	t.Run("allowed certificate", func(t *testing.T) { served(t, fetch(t, client(&allowed), url, "")) })
}

// TestListenRule: a --listen reachable from other hosts needs TLS, tokens
// or --insecure-listen; loopback (the default) needs nothing.
func TestListenRule(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		insecure     bool
		want         string
	}{
		{"default", DefaultListen, false, ""},
		{"every interface", ":8081", false, "--listen :8081 is reachable from other hosts"},
		{"pod IP", "10.1.2.3:8081", false, "--listen 10.1.2.3:8081 is reachable from other hosts"},
		{"insecure-listen", ":8081", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen, cfg.API.InsecureListen = tc.listen, tc.insecure
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--insecure-listen")):
				t.Fatalf("Validate() = %v, want %q and the way out (--insecure-listen)", err, tc.want)
			}
		})
	}
	t.Run("insecure-listen starts", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Proc, cfg.Passwd = "testdata/proc", "testdata/passwd"
		cfg.Listen = "0.0.0.0:0"
		cfg.API.InsecureListen = true
		tz, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		logs := runIn(t, tz)
		testdeps.WaitFor(t, "topz to listen", func() bool { return tz.Addr() != nil })
		url := "http://127.0.0.1:" + strconv.Itoa(tz.Addr().(*net.TCPAddr).Port) + "/topz"
		var a answer
		testdeps.WaitFor(t, "GET /topz", func() bool {
			a = fetch(t, &http.Client{Timeout: 20 * time.Second}, url, "")
			return a.code == http.StatusOK
		})
		if !strings.Contains(a.body, `"processes"`) {
			t.Fatalf("/topz with --insecure-listen: %s", a.body)
		}
		testdeps.WaitFor(t, "the warning that every caller has every role", func() bool {
			return strings.Contains(logs.String(), "every caller has every role (--insecure-listen)")
		})
	})
}
