package container

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/testdeps"
)

// testAccess is the API of the tests: /public needs nothing, /produce
// the producer role, /work the worker role, /either one of them, and
// anything else admin.
var testAccess = Access{
	Component: "apitest",
	Subsystem: "apitest",
	Roles:     []Role{{Name: "producer", Help: "adds jobs"}, {Name: "worker", Help: "takes jobs"}, {Name: "admin", Help: "everything"}},
	Need: func(r *http.Request) []string {
		switch r.URL.Path {
		case "/public":
			return nil
		case "/produce":
			return []string{"producer"}
		case "/work":
			return []string{"worker"}
		case "/either":
			return []string{"worker", "producer"}
		}
		return []string{"admin"}
	},
}

const (
	tokProd  = "prod-token-0123456789abcdef"
	tokWork  = "work-token-0123456789abcdef"
	tokProd2 = "prod-token-rotated-9876543210"
)

// apiComp is a component that serves one API, its handler answering with
// the caller's identity.
type apiComp struct {
	cfg APIConfig
	up  chan *apiServer
}

func (c *apiComp) Name() string { return "apitest" }

func (c *apiComp) Run(ctx context.Context, h *Host) error {
	api, err := OpenAPI(ctx, h, c.cfg)
	if err != nil {
		return err
	}
	scheme := "http"
	if c.cfg.Security.TLS() {
		scheme = "https"
	}
	c.up <- &apiServer{url: scheme + "://" + api.Addr().String(), host: h, api: api}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		id, ok := CallerOf(r)
		json.NewEncoder(w).Encode(map[string]any{"name": id.Name, "roles": id.Roles, "known": ok})
	})
	return api.Serve(ctx, &http.Server{Handler: mux})
}

// apiServer is an API served under Run until the test ends.
type apiServer struct {
	url   string
	admin string
	host  *Host
	api   *API
	logs  *testdeps.Buffer
}

// startAPI runs an apiComp with cfg (Access testAccess, on loopback
// unless cfg says otherwise).
func startAPI(t *testing.T, cfg APIConfig) *apiServer {
	t.Helper()
	if cfg.Access.Component == "" {
		cfg.Access = testAccess
	}
	if cfg.Addr == "" && cfg.Listener == nil {
		cfg.Addr = "127.0.0.1:0"
	}
	c := &apiComp{cfg: cfg, up: make(chan *apiServer, 1)}
	logs := &testdeps.Buffer{}
	adm := testListen(t)
	o := DefaultOptions()
	o.AdminListener = adm
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	select {
	case s := <-c.up:
		s.admin = "http://" + adm.Addr().String()
		s.logs = logs
		return s
	case err := <-done:
		t.Fatalf("Run: %v\nlogs:\n%s", err, logs)
	}
	return nil
}

// newHostForTest is a Host for calling OpenAPI directly.
func newHostForTest(logs io.Writer) *Host {
	return newHost(&apiComp{}, DefaultOptions(), slog.New(slog.NewJSONHandler(logs, nil)))
}

// client trusts p and presents certs; every request makes a new
// connection, so a handshake sees the certificates current then.
func client(p *testdeps.PKI, certs ...tls.Certificate) *http.Client {
	tc := &tls.Config{}
	if len(certs) > 0 {
		// Presented whatever CAs the server asks for, as a client with a
		// certificate from another CA would.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	if p != nil {
		tc.RootCAs = p.Pool
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
	err    error
}

// call GETs url with header lines "Name: value".
func call(c *http.Client, url string, header ...string) reply {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return reply{err: err}
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{err: err}
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

// counter returns the value of the counter name with labels, 0 if absent.
func counter(t *testing.T, h *Host, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := h.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if label(m, k) != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func denied(t *testing.T, h *Host, reason, role string) float64 {
	t.Helper()
	return counter(t, h, "podkit_apitest_api_denied_total", map[string]string{"reason": reason, "role": role})
}

// writeTokens writes a token file (mode 0600) and returns its path.
func writeTokens(t *testing.T, path string, lines ...string) string {
	t.Helper()
	testdeps.ReplaceFile(t, path, strings.Join(lines, "\n")+"\n")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mtlsSetup is an API with TLS, client certificates from clientCA and
// tokens, and the certificates its tests present.
type mtlsSetup struct {
	server, clientCA, otherCA *testdeps.PKI
	srv                       *apiServer
	dir                       string
}

func startMTLS(t *testing.T, mod func(*APISecurity)) *mtlsSetup {
	t.Helper()
	m := &mtlsSetup{server: testdeps.NewPKI(t, "server CA"), clientCA: testdeps.NewPKI(t, "client CA"), otherCA: testdeps.NewPKI(t, "other CA"), dir: t.TempDir()}
	certFile, keyFile := m.server.ServerFiles(m.dir)
	caDir := t.TempDir()
	s := APISecurity{
		TLSCert:     certFile,
		TLSKey:      keyFile,
		ClientCA:    m.clientCA.CAFile(caDir),
		AllowCN:     []string{"worker=worker-1", "admin-1"},
		AllowSANURI: []string{"worker,producer=spiffe://cluster.local/ns/q/sa/both"},
		TokenFiles:  []string{writeTokens(t, filepath.Join(m.dir, "tokens"), "# the producers", "prod producer "+tokProd, "", "w worker "+tokWork)},
	}
	if mod != nil {
		mod(&s)
	}
	m.srv = startAPI(t, APIConfig{Security: s})
	return m
}

func (m *mtlsSetup) cert(ca *testdeps.PKI, o testdeps.Leaf) tls.Certificate {
	o.Client = true
	_, _, c := ca.Issue(o)
	return c
}

func TestAPIRefusalsAndGrants(t *testing.T) {
	m := startMTLS(t, nil)
	h := m.srv.host
	anon := client(m.server)
	worker1 := client(m.server, m.cert(m.clientCA, testdeps.Leaf{CN: "worker-1"}))
	admin1 := client(m.server, m.cert(m.clientCA, testdeps.Leaf{CN: "admin-1"}))
	both := client(m.server, m.cert(m.clientCA, testdeps.Leaf{CN: "svc", URIs: []string{"spiffe://cluster.local/ns/q/sa/both"}}))
	mallory := client(m.server, m.cert(m.clientCA, testdeps.Leaf{CN: "mallory"}))

	tests := []struct {
		name       string
		c          *http.Client
		path       string
		header     []string
		status     int
		reason     string // of a refusal; also the metric's label
		role       string // the body's role, and the metric's
		bodyRoles  []string
		wantCaller string
		wantRoles  []string
		inMessage  string
	}{
		{name: "no credential", c: anon, path: "/produce", status: 401, reason: "no_credential", role: "producer", inMessage: "bearer token"},
		{name: "unknown token", c: anon, path: "/produce", header: []string{"Authorization: Bearer not-a-token-0123456789"}, status: 401, reason: "bad_token", role: "producer"},
		{name: "basic scheme", c: anon, path: "/produce", header: []string{"Authorization: Basic dXNlcjpwYXNz"}, status: 401, reason: "bad_token", role: "producer", inMessage: "Bearer"},
		{name: "token of another role", c: anon, path: "/produce", header: []string{"Authorization: Bearer " + tokWork}, status: 403, reason: "wrong_role", role: "producer", inMessage: "needs role producer"},
		{name: "cert of another role", c: worker1, path: "/produce", status: 403, reason: "wrong_role", role: "producer", inMessage: "needs role producer"},
		{name: "cert outside the allow-list", c: mallory, path: "/work", status: 403, reason: "cert_not_allowed", role: "worker", inMessage: "CN=mallory"},
		{name: "no credential, several roles", c: anon, path: "/either", status: 401, reason: "no_credential", role: "worker|producer", bodyRoles: []string{"worker", "producer"}},
		{name: "access_token in query", c: anon, path: "/public?access_token=x", status: 400, reason: "token_in_query", role: ""},
		{name: "known token in query", c: anon, path: "/work?q=" + tokWork, header: []string{"Authorization: Bearer " + tokWork}, status: 400, reason: "token_in_query", role: "worker", inMessage: `token "w"`},

		{name: "right token", c: anon, path: "/produce", header: []string{"Authorization: Bearer " + tokProd}, status: 200, wantCaller: "token:prod", wantRoles: []string{"producer"}},
		{name: "lower-case bearer", c: anon, path: "/work", header: []string{"Authorization: bearer " + tokWork}, status: 200, wantCaller: "token:w", wantRoles: []string{"worker"}},
		{name: "right cert", c: worker1, path: "/work", status: 200, wantCaller: "cn:worker-1", wantRoles: []string{"worker"}},
		{name: "bare entry grants every role", c: admin1, path: "/produce", status: 200, wantCaller: "cn:admin-1", wantRoles: []string{"producer", "worker", "admin"}},
		{name: "entry granting two roles", c: both, path: "/either", status: 200, wantCaller: "uri:spiffe://cluster.local/ns/q/sa/both", wantRoles: []string{"worker", "producer"}},
		{name: "token of one of several roles", c: anon, path: "/either", header: []string{"Authorization: Bearer " + tokProd}, status: 200, wantCaller: "token:prod", wantRoles: []string{"producer"}},
		{name: "public route", c: anon, path: "/public", status: 200, wantCaller: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := denied(t, h, tt.reason, tt.role)
			r := call(tt.c, m.srv.url+tt.path, tt.header...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.status == 200 {
				if got, _ := r.body["name"].(string); got != tt.wantCaller {
					t.Errorf("caller %q, want %q", got, tt.wantCaller)
				}
				if tt.wantRoles != nil {
					var got []string
					for _, x := range r.body["roles"].([]any) {
						got = append(got, x.(string))
					}
					if !slices.Equal(got, tt.wantRoles) {
						t.Errorf("roles %v, want %v", got, tt.wantRoles)
					}
				}
				return
			}
			if r.body["reason"] != tt.reason {
				t.Errorf("reason %v, want %s: %s", r.body["reason"], tt.reason, r.raw)
			}
			first, _, _ := strings.Cut(tt.role, "|")
			if first != "" && r.body["role"] != first {
				t.Errorf("role %v, want %s", r.body["role"], first)
			}
			if tt.bodyRoles != nil {
				if got, _ := json.Marshal(r.body["roles"]); string(got) != mustJSON(tt.bodyRoles) {
					t.Errorf("roles %s, want %s", got, mustJSON(tt.bodyRoles))
				}
			}
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, tt.inMessage) {
				t.Errorf("error %q does not say %q", msg, tt.inMessage)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if wa := r.header.Get("WWW-Authenticate"); (tt.status == 401) != (wa != "") {
				t.Errorf("WWW-Authenticate %q with status %d", wa, tt.status)
			} else if tt.status == 401 && wa != `Bearer realm="podkit apitest"` {
				t.Errorf("WWW-Authenticate %q", wa)
			}
			if got := denied(t, h, tt.reason, tt.role); got != before+1 {
				t.Errorf("denied_total{reason=%q,role=%q} = %v, want %v", tt.reason, tt.role, got, before+1)
			}
		})
	}

	t.Run("cert from another CA", func(t *testing.T) {
		c := client(m.server, m.cert(m.otherCA, testdeps.Leaf{CN: "worker-1"}))
		for range 2 {
			if r := call(c, m.srv.url+"/work"); r.err == nil {
				t.Fatalf("a certificate from another CA was accepted: %d %s", r.status, r.raw)
			}
		}
		testdeps.WaitFor(t, "two tls_handshake refusals counted", func() bool { return denied(t, h, "tls_handshake", "") >= 2 })
		// Logged, at most once per peer per 10s.
		if n := strings.Count(m.srv.logs.String(), `"reason":"tls_handshake"`); n != 1 {
			t.Errorf("%d tls_handshake log lines, want 1 (rate-limited):\n%s", n, m.srv.logs)
		}
	})
	t.Run("expired client cert", func(t *testing.T) {
		before := denied(t, h, "tls_handshake", "")
		c := client(m.server, m.cert(m.clientCA, testdeps.Leaf{CN: "worker-1", NotAfter: time.Now().Add(-time.Minute)}))
		if r := call(c, m.srv.url+"/work"); r.err == nil {
			t.Fatalf("an expired client certificate was accepted: %d %s", r.status, r.raw)
		}
		testdeps.WaitFor(t, "the expired certificate counted", func() bool { return denied(t, h, "tls_handshake", "") > before })
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestAPIEveryRoleWithoutAllowList: --client-ca with no allow-list grants
// every role to every certificate it issued, and an API with no
// credential configured gives every caller every role.
func TestAPIEveryRoleWithoutAllowList(t *testing.T) {
	t.Run("client-ca alone", func(t *testing.T) {
		m := startMTLS(t, func(s *APISecurity) { s.AllowCN, s.AllowSANURI, s.TokenFiles = nil, nil, nil })
		c := client(m.server, m.cert(m.clientCA, testdeps.Leaf{CN: "anyone"}))
		r := call(c, m.srv.url+"/admin")
		if r.err != nil || r.status != 200 {
			t.Fatalf("%v %d %s", r.err, r.status, r.raw)
		}
		if r.body["name"] != "CN=anyone" || mustJSON(r.body["roles"]) != `["producer","worker","admin"]` {
			t.Errorf("caller %v", r.body)
		}
		if r := call(client(m.server), m.srv.url+"/admin"); r.status != 401 || r.body["reason"] != "no_credential" {
			t.Errorf("no certificate: %d %s", r.status, r.raw)
		}
	})
	t.Run("no credentials configured", func(t *testing.T) {
		srv := startAPI(t, APIConfig{})
		r := call(client(nil), srv.url+"/admin")
		if r.err != nil || r.status != 200 {
			t.Fatalf("%v %d %s", r.err, r.status, r.raw)
		}
		if r.body["known"] != true || mustJSON(r.body["roles"]) != `["producer","worker","admin"]` {
			t.Errorf("caller %v", r.body)
		}
	})
}

// TestAPITokenFileErrors: each bad token file stops the start with a
// message naming the file and line.
func TestAPITokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // "" with noFile: the file does not exist
		noFile  bool
		want    []string
	}{
		{"empty file", "", false, []string{"tokens:", "no tokens in it"}},
		{"only comments", "# nothing\n\n   # here\n", false, []string{"no tokens in it"}},
		{"unreadable", "", true, []string{"--token-file", "no such file"}},
		{"wrong field count", "a producer\n", false, []string{"tokens:1", "found 2 fields"}},
		{"four fields", "# c\na producer " + tokProd + " extra\n", false, []string{"tokens:2", "found 4 fields"}},
		{"unknown role", "a producer,boss " + tokProd + "\n", false, []string{"tokens:1", `"boss" is not a role of apitest`, "producer, worker, admin"}},
		{"empty role", "a producer, " + tokProd + "\n", false, []string{"tokens:1", `"" is not a role`}},
		{"short token", "a producer short\n", false, []string{"tokens:1", `token "a" is shorter than 16`}},
		{"duplicate name", "a producer " + tokProd + "\na worker " + tokWork + "\n", false, []string{"tokens:2", `name "a" is already used at`, "tokens:1"}},
		{"duplicate token", "a producer " + tokProd + "\nb worker " + tokProd + "\n", false, []string{"tokens:2", `token "b" is the same token as`, "tokens:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"), "tokens")
			if !tt.noFile {
				os.MkdirAll(filepath.Dir(f), 0o755)
				writeTokens(t, f, tt.content)
				if tt.content == "" {
					os.WriteFile(f, nil, 0o600)
				}
			}
			var logs testdeps.Buffer
			_, err := OpenAPI(t.Context(), newHostForTest(&logs), APIConfig{Addr: "127.0.0.1:0", Access: testAccess, Security: APISecurity{TokenFiles: []string{f}}})
			if err == nil {
				t.Fatal("OpenAPI accepted the file")
			}
			var ue *cli.UsageError
			if !errors.As(err, &ue) {
				t.Errorf("%T is not a usage error (exit 2)", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tokProd) || strings.Contains(err.Error(), tokWork) {
				t.Errorf("error %q shows a token", err)
			}
		})
	}
}

// TestAPIWorldReadableTokenFile: a token file every user may read is a
// warning, in the log and /info, not a refusal.
func TestAPIWorldReadableTokenFile(t *testing.T) {
	f := writeTokens(t, filepath.Join(t.TempDir(), "tokens"), "prod producer "+tokProd)
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startAPI(t, APIConfig{Security: APISecurity{TokenFiles: []string{f}}})
	if r := call(client(nil), srv.url+"/produce", "Authorization: Bearer "+tokProd); r.status != 200 {
		t.Fatalf("%v %d %s", r.err, r.status, r.raw)
	}
	info := getInfo(t, srv)
	warnings := mustJSON(info["api"].(map[string]any)["warnings"])
	if !strings.Contains(warnings, "is readable by every user") || !strings.Contains(warnings, f) {
		t.Errorf("/info api warnings %s", warnings)
	}
	if !strings.Contains(srv.logs.String(), "is readable by every user") {
		t.Errorf("no warning logged:\n%s", srv.logs)
	}
}

func getInfo(t *testing.T, srv *apiServer) map[string]any {
	t.Helper()
	code, body := get(t, srv.admin+"/info")
	if code != 200 {
		t.Fatalf("/info: %d %s", code, body)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestAPIInfoNamesNoToken: /info lists token names and roles, never the
// tokens, and no log line holds a token.
func TestAPIInfoNamesNoToken(t *testing.T) {
	m := startMTLS(t, nil)
	// Every refusal and grant, to have them all logged.
	anon := client(m.server)
	call(anon, m.srv.url+"/produce", "Authorization: Bearer "+tokWork)
	call(anon, m.srv.url+"/produce", "Authorization: Bearer "+tokProd)
	call(anon, m.srv.url+"/work?x="+tokProd)
	call(anon, m.srv.url+"/work?access_token="+tokWork)
	call(anon, m.srv.url+"/produce", "Authorization: Bearer "+tokProd+"x")
	_, body := get(t, m.srv.admin+"/info")
	info := getInfo(t, m.srv)
	api := info["api"].(map[string]any)
	access := mustJSON(api["access"])
	for _, want := range []string{`{"roles":["producer"],"token":"prod"}`, `{"roles":["worker"],"token":"w"}`, `{"certificate":"cn:worker-1","roles":["worker"]}`, `{"certificate":"cn:admin-1","roles":["producer","worker","admin"]}`} {
		if !strings.Contains(access, want) {
			t.Errorf("/info api access lacks %s: %s", want, access)
		}
	}
	if api["tls"] != true || api["client_ca"] != true {
		t.Errorf("/info api %v", api)
	}
	logs := m.srv.logs.String()
	if !strings.Contains(logs, `"reason":"token_in_query"`) || !strings.Contains(logs, `"token":"prod"`) {
		t.Fatalf("the refusals and access were not logged:\n%s", logs)
	}
	for _, tok := range []string{tokProd, tokWork} {
		if strings.Contains(body, tok) {
			t.Errorf("/info shows a token: %s", body)
		}
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, tok) {
				t.Errorf("a log line shows a token: %s", line)
			}
		}
	}
}

// TestAPITokenReload: a rewritten token file is used without a restart;
// a broken rewrite keeps the tokens in use and counts an error.
func TestAPITokenReload(t *testing.T) {
	dir := t.TempDir()
	f := writeTokens(t, filepath.Join(dir, "tokens"), "prod producer "+tokProd)
	srv := startAPI(t, APIConfig{Security: APISecurity{TokenFiles: []string{f}}})
	c := client(nil)
	status := func(tok string) int { return call(c, srv.url+"/produce", "Authorization: Bearer "+tok).status }
	if got := status(tokProd); got != 200 {
		t.Fatalf("first token: %d", got)
	}
	writeTokens(t, f, "prod2 producer "+tokProd2)
	testdeps.WaitFor(t, "the new token accepted", func() bool { return status(tokProd2) == 200 })
	if got := status(tokProd); got != 401 {
		t.Errorf("old token after rotation: %d, want 401", got)
	}
	reloads := func(result string) float64 {
		return counter(t, srv.host, "podkit_apitest_api_reloads_total", map[string]string{"result": result})
	}
	errs := reloads("error")
	writeTokens(t, f, "prod3 producer short")
	testdeps.WaitFor(t, "the broken file counted as a failed reload", func() bool { return reloads("error") > errs })
	if got := status(tokProd2); got != 200 {
		t.Errorf("token after a broken rewrite: %d, want 200 (kept)", got)
	}
	if !strings.Contains(srv.logs.String(), "tokens:1") {
		t.Errorf("the failed reload's error (file:line) was not logged:\n%s", srv.logs)
	}
	// SIGHUP's path: Reload reads again.
	writeTokens(t, f, "prod producer "+tokProd)
	if err := srv.api.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := status(tokProd); got != 200 {
		t.Errorf("token after Reload: %d", got)
	}
}

// TestAPICertRotation: new handshakes see a rewritten --tls-cert and
// --tls-key without a restart.
func TestAPICertRotation(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	certFile, keyFile := ca.ServerFiles(dir)
	srv := startAPI(t, APIConfig{Security: APISecurity{TLSCert: certFile, TLSKey: keyFile}})
	serial := func() string {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(srv.url, "https://"), &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	ca.ServerFiles(dir) // a new pair over the old files
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	want := pair.Leaf.SerialNumber.String()
	if want == first {
		t.Fatal("the new certificate has the old serial")
	}
	testdeps.WaitFor(t, "the new certificate served", func() bool { return serial() == want })
}

// TestListenRule: a non-loopback --listen needs TLS or tokens, or
// --insecure-listen.
func TestListenRule(t *testing.T) {
	tokens := writeTokens(t, filepath.Join(t.TempDir(), "tokens"), "prod producer "+tokProd)
	ca := testdeps.NewPKI(t, "CA")
	cert, key := ca.ServerFiles(t.TempDir())
	tests := []struct {
		addr   string
		s      APISecurity
		refuse bool
	}{
		{"0.0.0.0:8080", APISecurity{}, true},
		{"[::]:8080", APISecurity{}, true},
		{":8080", APISecurity{}, true},
		{"queue.example:8080", APISecurity{}, true},
		{"10.1.2.3:8080", APISecurity{}, true},
		{"127.0.0.1:8080", APISecurity{}, false},
		{"[::1]:8080", APISecurity{}, false},
		{"localhost:8080", APISecurity{}, false},
		{"0.0.0.0:8080", APISecurity{InsecureListen: true}, false},
		{"0.0.0.0:8080", APISecurity{TokenFiles: []string{tokens}}, false},
		{":8080", APISecurity{TLSCert: cert, TLSKey: key}, false},
	}
	for _, tt := range tests {
		err := tt.s.Validate("--listen", tt.addr, testAccess)
		if (err != nil) != tt.refuse {
			t.Errorf("Validate(%q, %+v) = %v, want refused %v", tt.addr, tt.s, err, tt.refuse)
			continue
		}
		if err != nil {
			var ue *cli.UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--listen "+tt.addr) || !strings.Contains(err.Error(), "--insecure-listen") {
				t.Errorf("Validate(%q) = %v: want a usage error naming --listen %s and --insecure-listen", tt.addr, err, tt.addr)
			}
		}
	}

	t.Run("OpenAPI without declared roles", func(t *testing.T) {
		_, err := OpenAPI(t.Context(), newHostForTest(io.Discard), APIConfig{Addr: "127.0.0.1:0", Access: Access{Component: "x", Subsystem: "x"}})
		if err == nil || !strings.Contains(err.Error(), "declares no roles") {
			t.Fatalf("OpenAPI = %v, want an error naming the missing roles", err)
		}
	})
	t.Run("OpenAPI on every interface", func(t *testing.T) {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal("cannot listen on 0.0.0.0:", err)
		}
		_, err = OpenAPI(t.Context(), newHostForTest(io.Discard), APIConfig{Listener: ln, Access: testAccess})
		if err == nil || !strings.Contains(err.Error(), "--listen") || !strings.Contains(err.Error(), "reachable from other hosts") {
			t.Fatalf("OpenAPI = %v, want the listen rule's refusal", err)
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Error("the refused listener was left open")
		}
	})
	t.Run("tokens without TLS off loopback warn", func(t *testing.T) {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal("cannot listen on 0.0.0.0:", err)
		}
		srv := startAPI(t, APIConfig{Listener: ln, Security: APISecurity{TokenFiles: []string{tokens}}})
		if !strings.Contains(srv.logs.String(), "tokens are sent in plaintext") {
			t.Errorf("no plaintext warning logged:\n%s", srv.logs)
		}
		if w := mustJSON(getInfo(t, srv)["api"].(map[string]any)["warnings"]); !strings.Contains(w, "plaintext") {
			t.Errorf("/info warnings %s", w)
		}
	})
	t.Run("loopback needs nothing", func(t *testing.T) {
		srv := startAPI(t, APIConfig{Addr: "127.0.0.1:0"})
		if r := call(client(nil), srv.url+"/admin"); r.status != 200 {
			t.Errorf("%v %d", r.err, r.status)
		}
		if strings.Contains(srv.logs.String(), `"level":"WARN"`) {
			t.Errorf("a warning on loopback:\n%s", srv.logs)
		}
	})
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80":          true,
		"127.1.2.3:80":          true,
		"[::1]:80":              true,
		"localhost:80":          true,
		"LOCALHOST:80":          true,
		"0.0.0.0:80":            false,
		"[::]:80":               false,
		":80":                   false,
		"10.0.0.1:80":           false,
		"example.com:80":        false,
		"localhost.evil:1":      false,
		"127.0.0.1":             false, // no port
		"":                      false,
		"[::ffff:127.0.0.1]:80": true,
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestAPISecurityValidate(t *testing.T) {
	tests := []struct {
		name string
		s    APISecurity
		want []string
	}{
		{"cert without key", APISecurity{TLSCert: "c.pem"}, []string{"--tls-cert and --tls-key: give both"}},
		{"key without cert", APISecurity{TLSKey: "k.pem"}, []string{"--tls-cert and --tls-key: give both"}},
		{"client-ca without TLS", APISecurity{ClientCA: "ca.pem"}, []string{"--client-ca", "need TLS"}},
		{"allow without client-ca", APISecurity{TLSCert: "c", TLSKey: "k", AllowCN: []string{"a"}}, []string{"--allow-cn, --allow-san-dns, --allow-san-uri: need --client-ca"}},
		{"unknown role in allow entry", APISecurity{TLSCert: "c", TLSKey: "k", ClientCA: "ca", AllowSANURI: []string{"boss=spiffe://x/y"}}, []string{"--allow-san-uri boss=spiffe://x/y", `"boss" is not a role of apitest`}},
		{"empty identity", APISecurity{TLSCert: "c", TLSKey: "k", ClientCA: "ca", AllowCN: []string{"worker="}}, []string{"--allow-cn", "empty identity"}},
		{"every error at once", APISecurity{TLSKey: "k", ClientCA: "ca", AllowSANDNS: []string{"boss=x"}}, []string{"--tls-cert and --tls-key", "--client-ca", `"boss"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate("--listen", "127.0.0.1:1", testAccess)
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
		})
	}
	ok := APISecurity{TLSCert: "c", TLSKey: "k", ClientCA: "ca", AllowCN: []string{"worker,producer=w1", "bare"}, AllowSANURI: []string{"worker=spiffe://x/y"}}
	if err := ok.Validate("--listen", ":1", testAccess); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
}

// TestOpenAPIBadServerCert: a --tls-cert that does not match --tls-key,
// or has expired, stops the start.
func TestOpenAPIBadServerCert(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	cert, _ := ca.Files(dir, "a", testdeps.Leaf{CN: "localhost"})
	_, otherKey := ca.Files(dir, "b", testdeps.Leaf{CN: "localhost"})
	expCert, expKey := ca.Files(dir, "old", testdeps.Leaf{CN: "localhost", NotAfter: time.Now().Add(-time.Minute)})
	for _, tt := range []struct {
		name, cert, key string
		want            []string
	}{
		{"mismatched", cert, otherKey, []string{"--tls-cert " + cert, "--tls-key " + otherKey}},
		{"expired", expCert, expKey, []string{"--tls-cert " + expCert, "expired"}},
		{"missing", filepath.Join(dir, "none.crt"), otherKey, []string{"--tls-cert", "no such file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenAPI(t.Context(), newHostForTest(io.Discard), APIConfig{Addr: "127.0.0.1:0", Access: testAccess, Security: APISecurity{TLSCert: tt.cert, TLSKey: tt.key}})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestAPIErrorLog: a component that serves the API's listener with its
// own server still counts failed handshakes through ErrorLog.
func TestAPIErrorLog(t *testing.T) {
	serverCA, clientCA, otherCA := testdeps.NewPKI(t, "server CA"), testdeps.NewPKI(t, "client CA"), testdeps.NewPKI(t, "other CA")
	dir := t.TempDir()
	cert, key := serverCA.ServerFiles(dir)
	h := newHostForTest(io.Discard)
	api, err := OpenAPI(t.Context(), h, APIConfig{Addr: "127.0.0.1:0", Access: testAccess, Security: APISecurity{TLSCert: cert, TLSKey: key, ClientCA: clientCA.CAFile(t.TempDir())}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Handler(http.NotFoundHandler()), ErrorLog: api.ErrorLog()}
	go srv.Serve(api.Listener())
	t.Cleanup(func() { srv.Close() })
	_, _, bad := otherCA.Issue(testdeps.Leaf{CN: "x", Client: true})
	if r := call(client(serverCA, bad), "https://"+api.Addr().String()+"/work"); r.err == nil {
		t.Fatalf("a certificate from another CA was accepted: %d", r.status)
	}
	testdeps.WaitFor(t, "the failed handshake counted", func() bool { return denied(t, h, "tls_handshake", "") == 1 })
}
