package workqueue_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/worker"
)

// The tokens of the secured coordinator, one per role, and a token it
// does not know.
var roleTokens = map[string]string{
	workqueue.RoleProducer: "producer-token-0123456789",
	workqueue.RoleWorker:   "worker-token-0123456789abcd",
	workqueue.RoleAdmin:    "admin-token-0123456789abcdefgh",
}

const unknownToken = "not-a-token-of-this-queue-0123"

// secureQueue is a real coordinator, in process, whose API takes TLS,
// client certificates from its CA (CN producer-1, worker-1 and admin-1
// each with that role) and bearer tokens (roleTokens).
type secureQueue struct {
	t      *testing.T
	url    string // https://127.0.0.1:PORT
	dir    string
	pki    *testdeps.PKI
	ca     string // the CA's file
	tokens string // the coordinator's token file
	logs   *testdeps.Buffer
}

func writeSecret(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startSecureQueue(t *testing.T) *secureQueue {
	t.Helper()
	dir := t.TempDir()
	p := testdeps.NewPKI(t, "queue test CA")
	crt, key := p.ServerFiles(dir)
	s := &secureQueue{t: t, dir: dir, pki: p, ca: p.CAFile(dir), tokens: filepath.Join(dir, "tokens"), logs: &testdeps.Buffer{}}
	var lines strings.Builder
	for role, tok := range roleTokens {
		fmt.Fprintf(&lines, "%s-1 %s %s\n", role, role, tok)
		writeSecret(t, filepath.Join(dir, role+".token"), tok+"\n")
	}
	writeSecret(t, s.tokens, lines.String())
	writeSecret(t, filepath.Join(dir, "unknown.token"), unknownToken+"\n")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := workqueue.DefaultConfig()
	cfg.Listener = ln
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.API = container.APISecurity{
		TLSCert: crt, TLSKey: key, ClientCA: s.ca,
		AllowCN:    []string{"producer=producer-1", "worker=worker-1", "admin=admin-1"},
		TokenFiles: []string{s.tokens},
	}
	c, err := workqueue.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	opts := container.DefaultOptions()
	opts.AdminAddr, opts.DrainDelay = "off", 0
	opts.Logger = slog.New(slog.NewJSONHandler(s.logs, nil))
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, c, opts) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	})
	testdeps.WaitFor(t, "the coordinator to listen", func() bool { return c.Addr() != nil })
	s.url = "https://" + c.Addr().String()
	return s
}

// cert issues a client certificate with subject CN cn into the
// coordinator's directory.
func (s *secureQueue) cert(cn string) (crt, key string) {
	return s.pki.Files(s.dir, cn, testdeps.Leaf{CN: cn, Client: true})
}

// tokenFile is the client's token file of a role (or "unknown").
func (s *secureQueue) tokenFile(role string) string { return filepath.Join(s.dir, role+".token") }

// client is a queue client with the token of role, through
// container.APIClient as podkit's own clients make theirs.
func (s *secureQueue) client(role string) *client.Client {
	s.t.Helper()
	rt, err := container.APIClient{CAFile: s.ca, TokenFile: s.tokenFile(role)}.Transport(client.DefaultTransport(4))
	if err != nil {
		s.t.Fatal(err)
	}
	return client.New(s.url, &http.Client{Transport: rt, Timeout: 30 * time.Second})
}

// httpClient trusts the coordinator's CA and presents the certificate
// crt/key if given.
func (s *secureQueue) httpClient(crt, key string) *http.Client {
	s.t.Helper()
	tc := &tls.Config{RootCAs: s.pki.Pool}
	if crt != "" {
		pair, err := tls.LoadX509KeyPair(crt, key)
		if err != nil {
			s.t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (s *secureQueue) call(hc *http.Client, method, path, token, body string) reply {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	json.Unmarshal(b, &r.body)
	return r
}

// fixture is a queue with one item in each state a route acts on.
type fixture struct {
	queue         string
	dead          string // max_attempts 1, nacked once
	leased, token string // leased for 10 minutes
	ready         string
}

func (s *secureQueue) fixture(queue string) fixture {
	s.t.Helper()
	ctx := context.Background()
	prod, work := s.client(workqueue.RoleProducer), s.client(workqueue.RoleWorker)
	f := fixture{queue: queue}
	enq := func(item client.Item) string {
		res, err := prod.Enqueue(ctx, queue, []client.Item{item})
		if err != nil || res[0].Status != 201 {
			s.t.Fatalf("enqueue: %+v %v", res, err)
		}
		return res[0].ID
	}
	lease := func() client.Lease {
		ls, err := work.Lease(ctx, queue, 1, 0)
		if err != nil || len(ls) != 1 {
			s.t.Fatalf("lease: %+v %v", ls, err)
		}
		return ls[0]
	}
	f.dead = enq(client.Item{Payload: json.RawMessage(`"dead"`), MaxAttempts: 1})
	if err := work.Nack(ctx, lease().Token, "boom", 0); err != nil {
		s.t.Fatal(err)
	}
	f.leased = enq(client.Item{Payload: json.RawMessage(`"leased"`), Timeout: "10m"})
	l := lease()
	f.token = l.Token
	f.ready = enq(client.Item{Payload: json.RawMessage(`"ready"`)})
	return f
}

// state is what a refused request must not change: the queue's counts
// and its items, read with the admin token.
type state struct {
	Stats client.Stats
	Items []client.ItemInfo
}

func (s *secureQueue) state(f fixture) state {
	s.t.Helper()
	ctx := context.Background()
	adm := s.client(workqueue.RoleAdmin)
	st, err := adm.Stats(ctx, f.queue)
	if err != nil {
		s.t.Fatal(err)
	}
	// Rates change with time alone.
	st.EnqueuedPerSecond, st.AckedPerSecond, st.FailedPerSecond, st.OldestReadyAgeSeconds = 0, 0, 0, 0
	out := state{Stats: st}
	for _, id := range []string{f.dead, f.leased, f.ready} {
		it, err := adm.Get(ctx, f.queue, id)
		if err != nil {
			s.t.Fatal(err)
		}
		out.Items = append(out.Items, it)
	}
	return out
}

// wildcardValues are the values the test gives a wildcard that selects
// an operation: one request per value.
var wildcardValues = map[string][]string{"{op}": {"heartbeat", "ack", "nack"}}

// variants returns the values of pattern's operation wildcard ([""] if
// it has none).
func variants(pattern string) []string {
	for w, vals := range wildcardValues {
		if strings.Contains(pattern, w) {
			return vals
		}
	}
	return []string{""}
}

// concrete turns a route's pattern into a path on f (op for {op}).
func concrete(t *testing.T, pattern string, f fixture, op string) string {
	t.Helper()
	var b strings.Builder
	for _, seg := range strings.Split(strings.TrimPrefix(pattern, "/"), "/") {
		v := seg
		switch seg {
		case "{q}":
			v = f.queue
		case "{id}":
			v = f.ready
			if strings.HasSuffix(pattern, "/replay") {
				v = f.dead
			}
		case "{token}":
			v = f.token
		case "{op}":
			v = op
		default:
			if strings.HasPrefix(seg, "{") {
				t.Fatalf("route %s: the test has no value for the wildcard %s: add one", pattern, seg)
			}
		}
		b.WriteString("/" + v)
	}
	return b.String()
}

// bodyOf is a valid body for a request to path.
func bodyOf(method, path string, f fixture) string {
	switch {
	case method != "POST":
		return ""
	case strings.HasSuffix(path, "/items"):
		return `{"payload":{"n":1}}`
	case strings.HasSuffix(path, "/lease"):
		return `{"wait_seconds":0}`
	case strings.HasSuffix(path, "/dead/replay"):
		return `{"ids":["` + f.dead + `"]}`
	case path == "/leases/nack":
		return `{"items":[{"token":"` + f.token + `","error":"boom"}]}`
	case strings.HasPrefix(path, "/leases/") && strings.Count(path, "/") == 2:
		return `{"tokens":["` + f.token + `"]}`
	case strings.HasSuffix(path, "/nack"):
		return `{"error":"boom"}`
	}
	return ""
}

// TestEveryRouteNeedsItsRole drives every endpoint of the route table
// (workqueue.Routes, the one the coordinator serves and checks) with no
// credential, an unknown token, the token and certificate of each other
// role and a certificate outside the allow-lists: each is refused (401 or
// 403, the JSON naming the role needed) and changes nothing, counts or
// items; then the right role's token succeeds.
func TestEveryRouteNeedsItsRole(t *testing.T) {
	s := startSecureQueue(t)
	plain := s.httpClient("", "")
	strangerCrt, strangerKey := s.cert("stranger")
	stranger := s.httpClient(strangerCrt, strangerKey)
	certOf := map[string]*http.Client{}
	for role := range roleTokens {
		crt, key := s.cert(role + "-1")
		certOf[role] = s.httpClient(crt, key)
	}
	routes := workqueue.Routes()
	if len(routes) < 12 {
		t.Fatalf("Routes() has %d endpoints; the API has at least 12", len(routes))
	}
	n := 0
	for _, rt := range routes {
		if len(rt.Roles) == 0 || len(rt.Roles) == len(roleTokens) {
			t.Errorf("%s %s: roles %v: every endpoint needs some roles and not every one", rt.Method, rt.Path, rt.Roles)
			continue
		}
		for _, op := range variants(rt.Path) {
			n++
			idx := n
			name := strings.TrimSpace(rt.Method + " " + rt.Path + " " + op)
			t.Run(name, func(t *testing.T) {
				f := s.fixture(fmt.Sprintf("roles-%d", idx))
				path := concrete(t, rt.Path, f, op)
				body := bodyOf(rt.Method, path, f)
				before := s.state(f)

				refused := func(what string, r reply, status int, reason string) {
					t.Helper()
					if r.status != status || r.body["reason"] != reason {
						t.Errorf("%s: %d %s, want %d with reason %s", what, r.status, r.raw, status, reason)
					}
					if msg, _ := r.body["error"].(string); msg == "" {
						t.Errorf("%s: no error in the answer %s", what, r.raw)
					}
					if role, _ := r.body["role"].(string); !slices.Contains(rt.Roles, role) {
						t.Errorf("%s: the answer names role %q, want one of %v: %s", what, role, rt.Roles, r.raw)
					}
					if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s: 401 without WWW-Authenticate: Bearer", what)
					}
				}
				refused("no credential", s.call(plain, rt.Method, path, "", body), 401, "no_credential")
				refused("unknown token", s.call(plain, rt.Method, path, unknownToken, body), 401, "bad_token")
				refused("certificate outside the allow-lists", s.call(stranger, rt.Method, path, "", body), 403, "cert_not_allowed")
				for role, tok := range roleTokens {
					if slices.Contains(rt.Roles, role) {
						continue
					}
					r := s.call(plain, rt.Method, path, tok, body)
					refused("token of role "+role, r, 403, "wrong_role")
					if msg, _ := r.body["error"].(string); !strings.Contains(msg, "needs role") {
						t.Errorf("token of role %s: the error does not say which role is needed: %q", role, msg)
					}
					refused("certificate of role "+role, s.call(certOf[role], rt.Method, path, "", body), 403, "wrong_role")
				}
				if after := s.state(f); !reflect.DeepEqual(before, after) {
					t.Errorf("refused requests changed the queue:\nbefore %+v\nafter  %+v", before, after)
				}

				r := s.call(plain, rt.Method, path, roleTokens[rt.Roles[0]], body)
				ok := r.status == 200 || r.status == 201 || r.status == 204
				if strings.HasSuffix(path, "/drained") {
					ok = r.status == 503 && r.body["drained"] == false // not drained: it has items
				}
				if !ok {
					t.Errorf("token of role %s: %d %s, want success", rt.Roles[0], r.status, r.raw)
				}
			})
		}
	}
}

// TestUnknownPathsAndTricks: a path that is no endpoint answers 404 to
// anyone, and says nothing but what was asked; a method a path does not
// serve, and paths spelled so that a matcher other than the mux would
// misread them, need a credential.
func TestUnknownPathsAndTricks(t *testing.T) {
	s := startSecureQueue(t)
	plain := s.httpClient("", "")
	r := s.call(plain, "GET", "/nope/../../etc", "", "")
	if r.status == 200 {
		t.Errorf("GET /nope/../../etc: %d %s", r.status, r.raw)
	}
	r = s.call(plain, "GET", "/admin", "", "")
	if r.status != 404 || r.body["error"] != "no such endpoint GET /admin (see docs/queue.md)" {
		t.Errorf("GET /admin without a credential: %d %s, want a plain 404", r.status, r.raw)
	}
	for _, tc := range []struct{ method, path string }{
		{"PUT", "/queues/q/items"},        // a method the path does not serve
		{"GET", "/queu%65s"},              // an escaped letter
		{"GET", "/queues/q/items/1/"},     // a trailing slash
		{"POST", "/leases/a%2Fb/ack"},     // an escaped slash in a wildcard
		{"GET", "/queues/x/../q/items"},   // dot segments
		{"GET", "//queues"},               // a double slash
		{"HEAD", "/queues/q/items"},       // HEAD is GET
		{"POST", "/queues/q/items?x=../"}, // a query
	} {
		r := s.call(plain, tc.method, tc.path, "", "")
		if r.status == 200 || r.status == 201 || r.status == 204 {
			t.Errorf("%s %s without a credential: %d %s", tc.method, tc.path, r.status, r.raw)
		}
		if strings.Contains(r.raw, `"queues"`) || strings.Contains(r.raw, `"items"`) {
			t.Errorf("%s %s without a credential answered data: %s", tc.method, tc.path, r.raw)
		}
	}
}

// TestTokensReloadWithoutRestart: a rewritten token file is used without
// a restart: the new token works, the one removed is refused.
func TestTokensReloadWithoutRestart(t *testing.T) {
	s := startSecureQueue(t)
	plain := s.httpClient("", "")
	old := roleTokens[workqueue.RoleAdmin]
	if r := s.call(plain, "GET", "/queues", old, ""); r.status != 200 {
		t.Fatalf("admin token before the reload: %d %s", r.status, r.raw)
	}
	newTok := "rotated-admin-token-" + strings.Repeat("z", 20)
	writeSecret(t, s.tokens, fmt.Sprintf("admin-2 admin %s\nworker-1 worker %s\n", newTok, roleTokens[workqueue.RoleWorker]))
	testdeps.WaitFor(t, "the new token to be accepted", func() bool {
		return s.call(plain, "GET", "/queues", newTok, "").status == 200
	})
	if r := s.call(plain, "GET", "/queues", old, ""); r.status != 401 || r.body["reason"] != "bad_token" {
		t.Errorf("removed token after the reload: %d %s, want 401", r.status, r.raw)
	}
	if r := s.call(plain, "POST", "/queues/q/items", roleTokens[workqueue.RoleProducer], `{"payload":1}`); r.status != 401 {
		t.Errorf("producer token, removed: %d %s, want 401", r.status, r.raw)
	}
	// A token file that no longer loads keeps the last good tokens.
	writeSecret(t, s.tokens, "broken line\n")
	testdeps.WaitFor(t, "the failed reload to be logged", func() bool {
		return strings.Contains(s.logs.String(), "broken") || strings.Contains(s.logs.String(), "fields")
	})
	if r := s.call(plain, "GET", "/queues", newTok, ""); r.status != 200 {
		t.Errorf("after a failed reload the last good tokens stay: %d %s", r.status, r.raw)
	}
}

// runCommand runs `podkit <args>` in process until the test ends; its
// stdout (where a component logs) goes to out.
func runCommand(t *testing.T, cmd cli.Command, out io.Writer, args ...string) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []cli.Command{cmd}, args, cli.IO{Stdin: strings.NewReader(""), Stdout: out, Stderr: out})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("podkit %s did not stop", strings.Join(args, " "))
		}
	})
}

// TestWorkerAndCLIOverMutualTLS: podkit worker with a client certificate
// (--ca, --cert, --key) works a queue whose API takes only allowed
// certificates and tokens; the CLI pushes with the producer's
// certificate and shows, lists and replays with the admin's token.
func TestWorkerAndCLIOverMutualTLS(t *testing.T) {
	s := startSecureQueue(t)
	wcrt, wkey := s.cert("worker-1")
	pcrt, pkey := s.cert("producer-1")
	out := t.TempDir()
	script := `payload=$(cat); case "$payload" in *poison*) echo "cannot $PODKIT_ITEM_ID" >&2; exit 3;; esac; touch "` + out + `/$PODKIT_ITEM_ID"`
	logs := &testdeps.Buffer{}
	runCommand(t, worker.Command(), logs, "worker", "--queue", s.url+"/queues/jobs", "--ca", s.ca, "--cert", wcrt, "--key", wkey,
		"--concurrency", "2", "--wait", "1s", "--admin-addr", "off", "--drain-delay", "0s", "--log-format", "json", "--", "sh", "-c", script)

	in := `{"payload":"a"}` + "\n" + `{"payload":"b"}` + "\n" + `{"payload":"poison","max_attempts":1}` + "\n"
	code, stdout, stderr := podkit(t, in, "queue", "push", "--server", s.url, "--queue", "jobs", "--ca", s.ca, "--cert", pcrt, "--key", pkey)
	if code != 0 || !strings.Contains(stdout, "3 new") {
		t.Fatalf("push with the producer's certificate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	adm := s.client(workqueue.RoleAdmin)
	testdeps.WaitFor(t, "the worker to do the items", func() bool {
		st, err := adm.Stats(context.Background(), "jobs")
		return err == nil && st.Done == 2 && st.Dead == 1
	})
	if files, _ := os.ReadDir(out); len(files) != 2 {
		t.Errorf("the command succeeded for %d items, want 2", len(files))
	}
	admin := []string{"--server", s.url, "--ca", s.ca, "--token-file", s.tokenFile(workqueue.RoleAdmin)}
	code, stdout, stderr = podkit(t, "", append([]string{"queue", "stat", "jobs"}, admin...)...)
	if code != 0 || !strings.Contains(stdout, "jobs") {
		t.Errorf("stat with the admin token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = podkit(t, "", append([]string{"queue", "ls", "--queue", "jobs", "--state", "dead"}, admin...)...)
	if code != 0 || !strings.Contains(stdout, "poison") {
		t.Errorf("ls with the admin token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = podkit(t, "", append([]string{"queue", "replay", "--queue", "jobs"}, admin...)...)
	if code != 0 || !strings.Contains(stdout, "replayed 1 item") {
		t.Errorf("replay with the admin token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	testdeps.WaitFor(t, "the replayed poison item to die again", func() bool {
		st, err := adm.Stats(context.Background(), "jobs")
		return err == nil && st.Dead == 1 && st.Ready+st.Leased == 0 && st.Nacked == 2
	})
	if !strings.Contains(s.logs.String(), `"msg":"dead items replayed"`) || !strings.Contains(s.logs.String(), `"by":"token:admin-1"`) {
		t.Errorf("the coordinator does not log who replayed:\n%s", s.logs.String())
	}

	// The wrong credential: a clear error naming the role, exit 1.
	code, _, stderr = podkit(t, in, "queue", "push", "--server", s.url, "--queue", "jobs", "--ca", s.ca, "--token-file", s.tokenFile(workqueue.RoleAdmin))
	if code != 1 || !strings.Contains(stderr, "403 Forbidden") || !strings.Contains(stderr, "needs role producer") || !strings.Contains(stderr, "--token-file") {
		t.Errorf("push with the admin token: exit %d, stderr %q; want 403 naming the producer role", code, stderr)
	}
	code, _, stderr = podkit(t, "", "queue", "stat", "--server", s.url, "--ca", s.ca)
	if code != 1 || !strings.Contains(stderr, "401 Unauthorized") || !strings.Contains(stderr, "role admin") {
		t.Errorf("stat without a credential: exit %d, stderr %q; want 401 naming the admin role", code, stderr)
	}
	code, _, stderr = podkit(t, "", "queue", "stat", "--server", s.url, "--ca", s.ca, "--cert", wcrt, "--key", wkey)
	if code != 1 || !strings.Contains(stderr, "needs role admin") {
		t.Errorf("stat with the worker's certificate: exit %d, stderr %q", code, stderr)
	}
	// Bad client flags are usage errors naming the flag.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cert", wcrt}, "--cert and --key: give both or neither"},
		{[]string{"--token-file", filepath.Join(s.dir, "missing")}, "--token-file"},
		{[]string{"--ca", filepath.Join(s.dir, "missing.crt")}, "--ca"},
	} {
		code, _, stderr = podkit(t, "", append([]string{"queue", "stat", "--server", s.url}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("stat %q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	code, _, stderr = podkit(t, "", "queue", "stat", "--server", "http://127.0.0.1:1", "--ca", s.ca)
	if code != 2 || !strings.Contains(stderr, "not an https:// URL") {
		t.Errorf("--ca with an http:// server: exit %d, stderr %q", code, stderr)
	}
}

// TestWorkerWithTheWrongRole: a worker whose token has another role is
// told so: its log says the queue refuses it and names the role, the
// metric counts it as forbidden, it is not ready, and it backs off
// rather than spinning.
func TestWorkerWithTheWrongRole(t *testing.T) {
	s := startSecureQueue(t)
	logs := &testdeps.Buffer{}
	admin := testdeps.FreePort(t)
	runCommand(t, worker.Command(), logs, "worker", "--queue", s.url+"/queues/jobs", "--ca", s.ca, "--token-file", s.tokenFile(workqueue.RoleProducer),
		"--admin-addr", admin, "--drain-delay", "0s", "--log-format", "json", "--", "true")
	testdeps.WaitFor(t, "the refusal to be logged", func() bool { return strings.Contains(logs.String(), "queue requests failing") })
	var rec map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "queue requests failing") {
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
		}
	}
	if rec["reason"] != "forbidden" || rec["role"] != "worker" || !strings.Contains(fmt.Sprint(rec["error"]), "needs role worker") {
		t.Errorf("log line %v: want reason forbidden and role worker named", rec)
	}
	metric := func() float64 {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, `podkit_worker_queue_errors_total{reason="forbidden"} `); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		return 0
	}
	testdeps.WaitFor(t, "podkit_worker_queue_errors_total{reason=forbidden}", func() bool { return metric() >= 1 })
	testdeps.WaitFor(t, "the refused worker to be not ready", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	// Backing off: the refused leases are spaced 0.2 s and more apart
	// (doubling up to 5 s), so two seconds see a handful, not thousands.
	first := metric()
	time.Sleep(2 * time.Second)
	if n := metric() - first; n > 50 {
		t.Errorf("%v refused requests in 2 s: the worker spins instead of backing off", n)
	}
}

// TestListenRule: a --listen reachable from other hosts with neither TLS
// nor tokens is refused at start (exit 2, the message naming --listen),
// unless --insecure-listen; the default is loopback.
func TestListenRule(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := podkit(t, "", "queue", "--listen", "0.0.0.0:0", "--data-dir", dir, "--admin-addr", "off")
	if code != 2 || !strings.Contains(stderr, "--listen 0.0.0.0:0 is reachable from other hosts") || !strings.Contains(stderr, "--insecure-listen") {
		t.Errorf("--listen 0.0.0.0:0 without TLS or tokens: exit %d, stderr %q; want 2 and the rule", code, stderr)
	}
	if got := workqueue.DefaultConfig().Listen; got != "127.0.0.1:8080" {
		t.Errorf("default --listen %q, want 127.0.0.1:8080", got)
	}
	cfg := workqueue.DefaultConfig()
	cfg.Listen, cfg.DataDir = "0.0.0.0:0", dir
	cfg.API.InsecureListen = true
	c, err := workqueue.New(cfg)
	if err != nil {
		t.Fatalf("--insecure-listen: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	opts := container.DefaultOptions()
	opts.AdminAddr, opts.DrainDelay, opts.Logger = "off", 0, quietLog()
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, c, opts) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	testdeps.WaitFor(t, "the coordinator to listen", func() bool { return c.Addr() != nil })
	_, port, _ := net.SplitHostPort(c.Addr().String())
	resp, err := http.Get("http://127.0.0.1:" + port + "/queues")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /queues with --insecure-listen: %s", resp.Status)
	}
}
