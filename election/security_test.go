package election

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/election/raft"
	"github.com/podkit/podkit/internal/testdeps"
)

// secured is a set of in-process electors (raft, in memory) whose APIs
// share one security setup: TLS from a test CA, client certificates
// allow-listed by CN with roles, and a token file.
type secured struct {
	pki      *testdeps.PKI
	dir      string
	tokens   string // the API's token file
	readerT  string // token "viewer", role reader
	adminT   string // token "ops", role admin
	electors []*Elector
	admins   []string // each elector's admin listener
	log      *syncBuffer
}

func newSecured(t *testing.T, n int, mod func(*Config)) *secured {
	t.Helper()
	s := &secured{pki: testdeps.NewPKI(t, "elect test CA"), dir: t.TempDir(), log: &syncBuffer{},
		readerT: "reader-token-0123456789abcdef", adminT: "admin-token-0123456789abcdef"}
	cert, key := s.pki.ServerFiles(s.dir)
	ca := s.pki.CAFile(s.dir)
	s.tokens = filepath.Join(s.dir, "tokens")
	testdeps.ReplaceFile(t, s.tokens, "# name roles token\nviewer reader "+s.readerT+"\nops admin "+s.adminT+"\n")
	api := container.APISecurity{TLSCert: cert, TLSKey: key, ClientCA: ca,
		AllowCN: []string{"reader=reader-1", "admin=admin-1"}, TokenFiles: []string{s.tokens}}

	var free ports
	var peers []raft.Peer
	for i := range n {
		peers = append(peers, raft.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: free.next(t)})
	}
	if n == 1 {
		peers = nil
	}
	free.release()
	for i := range n {
		cfg := DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i+1)
		cfg.Listen = "127.0.0.1:0"
		cfg.Raft.Peers = peers
		cfg.API = api
		if mod != nil {
			mod(&cfg)
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		opts := container.DefaultOptions()
		opts.AdminListener, opts.AdminAddr, opts.DrainDelay = ln, ln.Addr().String(), 0
		opts.Logger = slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		opts.LogAttrs = []any{"id", cfg.ID}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- container.Run(ctx, e, opts) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run %s: %v", cfg.ID, err)
			}
		})
		s.electors = append(s.electors, e)
		s.admins = append(s.admins, ln.Addr().String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", tail(s.log.String(), 60))
		}
	})
	for _, e := range s.electors {
		testdeps.WaitFor(t, "the API to listen", func() bool { return e.Addr() != nil })
	}
	return s
}

// leader waits until every elector names the same leader with an epoch
// above min, and returns it.
func (s *secured) leader(t *testing.T, min uint64) (*Elector, uint64) {
	t.Helper()
	var lead *Elector
	var epoch uint64
	testdeps.WaitFor(t, "the electors to agree on a leader", func() bool {
		first := s.electors[0].Leader()
		if first.Leader == "" || first.Epoch <= min {
			return false
		}
		lead = nil
		for _, e := range s.electors {
			st := e.Leader()
			if st.Leader != first.Leader || st.Epoch != first.Epoch {
				return false
			}
			if st.Self {
				lead = e
			}
		}
		epoch = first.Epoch
		return lead != nil
	})
	return lead, epoch
}

// client returns an HTTPS client trusting the test CA, presenting the
// client certificate for cn if cn is not "".
func (s *secured) client(t *testing.T, cn string) *http.Client {
	t.Helper()
	tc := &tls.Config{RootCAs: s.pki.Pool}
	if cn != "" {
		certFile, keyFile := s.pki.Files(s.dir, cn, testdeps.Leaf{CN: cn, Client: true})
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 15 * time.Second}
}

// answer is an API's answer: for /watch, the status and the first event.
type answer struct {
	code   int
	body   string
	header http.Header
}

// call makes one request to e's API, with token as a bearer token if not
// "". A 200 /watch is read up to its first event, then closed.
func call(t *testing.T, c *http.Client, e *Elector, method, path, token string) answer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+e.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var body []byte
	if path == "/watch" && resp.StatusCode == http.StatusOK {
		body = []byte(firstEvent(t, resp.Body))
	} else {
		body, _ = io.ReadAll(resp.Body)
	}
	return answer{code: resp.StatusCode, body: string(body), header: resp.Header}
}

// firstEvent reads one Server-Sent Event and returns its data.
func firstEvent(t *testing.T, r io.Reader) string {
	t.Helper()
	sc := bufio.NewScanner(r)
	var data string
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = d
		}
		if line == "" && data != "" {
			return data
		}
	}
	t.Fatalf("/watch ended without an event: %v", sc.Err())
	return ""
}

type refusal struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Role   string `json:"role"`
}

// TestAPISecurity: every endpoint refuses a caller without a credential
// (401), with an unknown token (401), with a certificate outside the
// allow-lists (403), with a role that is not the endpoint's (403, naming
// the role), and serves the right one; a refused /resign changes
// nothing; an admin's /resign hands over, a reader's /watch sees it, and
// the log says who resigned.
func TestAPISecurity(t *testing.T) {
	s := newSecured(t, 3, nil)
	lead, epoch := s.leader(t, 0)
	anon := s.client(t, "")
	stranger := s.client(t, "stranger")
	readerCert := s.client(t, "reader-1")

	reads := []string{"/leader", "/", "/watch"}
	type ep struct{ method, path, role string }
	var eps []ep
	for _, p := range reads {
		eps = append(eps, ep{"GET", p, RoleReader})
	}
	eps = append(eps, ep{"POST", "/resign", RoleAdmin})

	for _, x := range eps {
		t.Run(x.method+x.path, func(t *testing.T) {
			refused := func(name string, a answer, code int, reason string) {
				t.Helper()
				var r refusal
				if a.code != code || json.Unmarshal([]byte(a.body), &r) != nil || r.Reason != reason || r.Role != x.role {
					t.Errorf("%s: %d %s; want %d, reason %s, role %s", name, a.code, a.body, code, reason, x.role)
				}
				if code == http.StatusUnauthorized && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: 401 without WWW-Authenticate: Bearer (%q)", name, a.header.Get("WWW-Authenticate"))
				}
			}
			refused("no credential", call(t, anon, lead, x.method, x.path, ""), http.StatusUnauthorized, "no_credential")
			refused("unknown token", call(t, anon, lead, x.method, x.path, "not-a-token-of-this-api"), http.StatusUnauthorized, "bad_token")
			refused("certificate not allow-listed", call(t, stranger, lead, x.method, x.path, ""), http.StatusForbidden, "cert_not_allowed")
			if x.role == RoleAdmin {
				refused("reader token", call(t, anon, lead, x.method, x.path, s.readerT), http.StatusForbidden, "wrong_role")
				refused("reader certificate", call(t, readerCert, lead, x.method, x.path, ""), http.StatusForbidden, "wrong_role")
				return
			}
			for name, a := range map[string]answer{
				"reader token":       call(t, anon, lead, x.method, x.path, s.readerT),
				"reader certificate": call(t, readerCert, lead, x.method, x.path, ""),
				"admin token":        call(t, anon, lead, x.method, x.path, s.adminT),
			} {
				var j leaderJSON
				if a.code != http.StatusOK || json.Unmarshal([]byte(a.body), &j) != nil || j.Leader != lead.cfg.ID {
					t.Errorf("%s: %d %s; want 200 naming the leader %s", name, a.code, a.body, lead.cfg.ID)
				}
			}
		})
	}
	// A refused /resign changed nothing.
	for _, e := range s.electors {
		if st := e.Leader(); st.Leader != lead.cfg.ID || st.Epoch != epoch {
			t.Fatalf("after the refused /resign calls %s sees %s@%d; want %s@%d", e.cfg.ID, st.Leader, st.Epoch, lead.cfg.ID, epoch)
		}
	}
	if !strings.Contains(s.log.String(), "API request refused") {
		t.Error("no refusal in the log")
	}

	// A reader watches a follower; an admin makes the leader resign.
	follower := s.electors[0]
	if follower == lead {
		follower = s.electors[1]
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+follower.Addr().String()+"/watch", nil)
	req.Header.Set("Authorization", "Bearer "+s.readerT)
	watch, err := anon.Do(req)
	if err != nil || watch.StatusCode != http.StatusOK {
		t.Fatalf("GET /watch with a reader token: %v %v", watch, err)
	}
	defer watch.Body.Close()
	var j leaderJSON
	if err := json.Unmarshal([]byte(firstEvent(t, watch.Body)), &j); err != nil || j.Leader != lead.cfg.ID || j.Epoch != epoch {
		t.Fatalf("first /watch event %+v %v; want %s@%d", j, err, lead.cfg.ID, epoch)
	}
	if a := call(t, anon, follower, "POST", "/resign", s.adminT); a.code != http.StatusConflict {
		t.Errorf("admin POST /resign to a follower: %d %s; want 409", a.code, a.body)
	}
	if a := call(t, anon, lead, "POST", "/resign", s.adminT); a.code != http.StatusOK || !strings.Contains(a.body, `"resigned":true`) {
		t.Fatalf("admin POST /resign to the leader: %d %s; want 200", a.code, a.body)
	}
	next, epoch2 := s.leader(t, epoch)
	if next == lead {
		t.Errorf("%s still leads after resigning", lead.cfg.ID)
	}
	for {
		if err := json.Unmarshal([]byte(firstEvent(t, watch.Body)), &j); err != nil {
			t.Fatal(err)
		}
		if j.Leader == next.cfg.ID && j.Epoch == epoch2 {
			break
		}
	}
	if !strings.Contains(s.log.String(), "resigned on request") || !strings.Contains(s.log.String(), "by=token:ops") {
		t.Errorf("the log does not say that token ops made %s resign", lead.cfg.ID)
	}
	// The admin's certificate may resign too.
	adminCert := s.client(t, "admin-1")
	if a := call(t, adminCert, next, "POST", "/resign", ""); a.code != http.StatusOK {
		t.Fatalf("POST /resign with the admin certificate: %d %s; want 200", a.code, a.body)
	}
	s.leader(t, epoch2)
	if !strings.Contains(s.log.String(), "by=cn:admin-1") {
		t.Error("the log does not say that cn:admin-1 resigned a leader")
	}

	// A certificate from another CA fails the handshake: counted as a
	// refusal.
	other := testdeps.NewPKI(t, "another CA")
	certFile, keyFile := other.Files(s.dir, "outsider", testdeps.Leaf{CN: "admin-1", Client: true})
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// GetClientCertificate presents it even though the server asks for
	// certificates of its own CA (Certificates would send none).
	present := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	outsider := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pki.Pool, GetClientCertificate: present}}, Timeout: 15 * time.Second}
	if resp, err := outsider.Get("https://" + s.electors[0].Addr().String() + "/leader"); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate from another CA: %s; want the handshake refused", resp.Status)
	}
	testdeps.WaitFor(t, "the failed handshake to be counted", func() bool {
		_, m, err := get("http://" + s.admins[0] + "/metrics")
		return err == nil && strings.Contains(m, `podkit_elect_api_denied_total{reason="tls_handshake",role=""} 1`)
	})
}

// TestTokenReload: a token added to the file is accepted, and a token
// removed from it refused, without a restart.
func TestTokenReload(t *testing.T) {
	s := newSecured(t, 1, nil)
	e, _ := s.leader(t, 0)
	c := s.client(t, "")
	late := "late-token-0123456789abcdef"
	if a := call(t, c, e, "GET", "/leader", late); a.code != http.StatusUnauthorized {
		t.Fatalf("a token not in the file yet: %d %s; want 401", a.code, a.body)
	}
	testdeps.ReplaceFile(t, s.tokens, "late reader "+late+"\nops admin "+s.adminT+"\n")
	testdeps.WaitFor(t, "the new token to be accepted", func() bool {
		return call(t, c, e, "GET", "/leader", late).code == http.StatusOK
	})
	if a := call(t, c, e, "GET", "/leader", s.readerT); a.code != http.StatusUnauthorized {
		t.Errorf("a token removed from the file: %d %s; want 401", a.code, a.body)
	}
	// A file that no longer parses is refused; the last good tokens stay.
	testdeps.ReplaceFile(t, s.tokens, "broken\n")
	testdeps.WaitFor(t, "the bad file to be refused", func() bool {
		_, m, err := get("http://" + s.admins[0] + "/metrics")
		return err == nil && strings.Contains(m, `podkit_elect_api_reloads_total{result="error"} 1`)
	})
	if a := call(t, c, e, "GET", "/leader", late); a.code != http.StatusOK {
		t.Errorf("after a bad token file: %d %s; want the last good tokens (200)", a.code, a.body)
	}
}

// TestNotifySecured: --notify POSTs over mutual TLS with a bearer token
// reach a TLS server that checks both; a target that answers 403 is not
// retried, is counted as denied, and its error is logged.
func TestNotifySecured(t *testing.T) {
	pki := testdeps.NewPKI(t, "notify test CA")
	dir := t.TempDir()
	const token = "notify-token-0123456789abcdef"
	tokenFile := filepath.Join(dir, "notify-token")
	testdeps.ReplaceFile(t, tokenFile, token+"\n")
	certFile, keyFile := pki.Files(dir, "elector", testdeps.Leaf{CN: "elector", Client: true})

	type post struct {
		path, cn, auth string
		body           leaderJSON
	}
	posts := make(chan post, 100)
	var mu sync.Mutex
	denied := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := post{path: r.URL.Path, auth: r.Header.Get("Authorization")}
		if len(r.TLS.PeerCertificates) > 0 {
			p.cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		json.NewDecoder(r.Body).Decode(&p.body)
		if r.URL.Path == "/denied" {
			mu.Lock()
			denied++
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error": "token:notify has role reader; POST /denied needs role hook", "reason": "wrong_role", "role": "hook"}`)
			return
		}
		select {
		case posts <- p:
		default:
		}
	}))
	_, _, serverCert := pki.Issue(testdeps.Leaf{CN: "localhost", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.Pool}
	srv.StartTLS()
	defer srv.Close()

	s := newSecured(t, 1, func(c *Config) {
		c.Notify = []string{srv.URL + "/hook", srv.URL + "/denied"}
		c.NotifyClient = container.APIClient{CAFile: pki.CAFile(dir), CertFile: certFile, KeyFile: keyFile, TokenFile: tokenFile}
	})
	e, epoch := s.leader(t, 0)
	deadline := time.After(testdeps.WaitTimeout)
	for got := false; !got; {
		select {
		case p := <-posts:
			if p.cn != "elector" || p.auth != "Bearer "+token {
				t.Fatalf("notify POST with certificate %q and Authorization %q; want elector and the token", p.cn, p.auth)
			}
			got = p.body.Leader == e.cfg.ID && p.body.Epoch == epoch
		case <-deadline:
			t.Fatal("no notify POST naming the leader")
		}
	}
	testdeps.WaitFor(t, "the refused notify to be logged", func() bool {
		return strings.Contains(s.log.String(), "the target refused the credential")
	})
	log := s.log.String()
	for _, want := range []string{"url=" + srv.URL + "/denied", `status="403 Forbidden"`, `POST /denied needs role hook`} {
		if !strings.Contains(log, want) {
			t.Errorf("the refused notify's log line lacks %s", want)
		}
	}
	// Each state went to /denied once, counted as denied: none was tried
	// again (a retried one would be POSTed 3 times and counted once).
	testdeps.WaitFor(t, "each POST to /denied to be counted as denied", func() bool {
		mu.Lock()
		n := denied
		mu.Unlock()
		_, metrics, err := get("http://" + s.admins[0] + "/metrics")
		return err == nil && n > 0 && strings.Contains(metrics, fmt.Sprintf(`podkit_elect_notify_total{result="denied"} %d`+"\n", n))
	})
}

// TestListenRule: --listen on every interface with neither TLS nor
// tokens exits 2 naming --listen; with --insecure-listen it starts and
// serves.
func TestListenRule(t *testing.T) {
	var stderr bytes.Buffer
	args := []string{"elect", "--id", "a", "--admin-addr", "off", "--listen", "0.0.0.0:0"}
	code := cli.Main(context.Background(), []cli.Command{Command()}, args, cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
	if want := "--listen 0.0.0.0:0 is reachable from other hosts"; code != 2 || !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "--insecure-listen") {
		t.Fatalf("exit %d, stderr %q; want 2 and %q naming --insecure-listen", code, stderr.String(), want)
	}

	var free ports
	port := free.next(t)
	free.release()
	_, p, _ := net.SplitHostPort(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	stderr.Reset()
	var errOut syncBuffer
	args = []string{"elect", "--id", "a", "--admin-addr", "off", "--drain-delay", "0s", "--log-level", "warn", "--listen", "0.0.0.0:" + p, "--insecure-listen"}
	go func() {
		done <- cli.Main(ctx, []cli.Command{Command()}, args, cli.IO{Stdin: strings.NewReader(""), Stdout: &errOut, Stderr: &errOut})
	}()
	testdeps.WaitFor(t, "the elector to serve on 0.0.0.0:"+p, func() bool {
		select {
		case code := <-done:
			t.Fatalf("exit %d before serving: %s", code, errOut.String())
		default:
		}
		code, body, err := get("http://127.0.0.1:" + p + "/leader")
		return err == nil && code == 200 && strings.Contains(body, `"leader":"a"`)
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after the context ended; want 0: %s", code, errOut.String())
	}
}

// TestSecurityFlags: bad security and notify-client flags exit 2 naming
// the flag.
func TestSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	pki := testdeps.NewPKI(t, "flags CA")
	cert, key := pki.ServerFiles(dir)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("viewer viewer 0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"client-ca without tls", []string{"--client-ca", pki.CAFile(dir)}, "--client-ca: client certificates need TLS"},
		{"allow-cn without client-ca", []string{"--tls-cert", cert, "--tls-key", key, "--allow-cn", "x"}, "need --client-ca"},
		{"allow-cn unknown role", []string{"--tls-cert", cert, "--tls-key", key, "--client-ca", pki.CAFile(dir), "--allow-cn", "owner=x"}, `"owner" is not a role of elect`},
		{"token file unknown role", []string{"--token-file", tokens}, `"viewer" is not a role of elect (roles: reader, admin)`},
		{"token file missing", []string{"--token-file", filepath.Join(dir, "nope")}, "--token-file"},
		{"notify client without notify", []string{"--notify-token-file", tokens}, "--notify-ca, --notify-cert, --notify-key, --notify-token-file: need --notify"},
		{"notify token missing", []string{"--notify", "https://127.0.0.1:1/", "--notify-token-file", filepath.Join(dir, "nope")}, "--notify-token-file"},
		{"notify cert without key", []string{"--notify", "https://127.0.0.1:1/", "--notify-cert", cert}, "--notify-cert and --notify-key: give both or neither"},
		{"notify token with roles", []string{"--notify", "https://127.0.0.1:1/", "--notify-token-file", tokens}, "holds more than one word"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"elect", "--id", "a", "--admin-addr", "off", "--drain-delay", "0s"}, tc.args...)
			code := cli.Main(context.Background(), []cli.Command{Command()}, args, cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
