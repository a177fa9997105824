package await

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
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
	"github.com/podkit/podkit/internal/testdeps"
)

// sidecar is a TLS server standing in for a podkit API that takes a
// notify POST: it requires a client certificate from the test CA and the
// bearer token, as container.OpenAPI would, and records what it got.
type sidecar struct {
	url   string
	mu    sync.Mutex
	posts []string // "METHOD PATH CN", one per accepted request
	tries int
}

func startSidecar(t *testing.T, pki *testdeps.PKI, token string) *sidecar {
	t.Helper()
	_, _, cert := pki.Issue(testdeps.Leaf{CN: "localhost", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	s := &sidecar{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.tries++
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"the bearer token is not one this API knows","reason":"bad_token","role":"admin"}`)
			return
		}
		s.posts = append(s.posts, fmt.Sprintf("%s %s %s", r.Method, r.URL.Path, r.TLS.VerifiedChains[0][0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.Pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake refused in TestNotifyWithoutCA
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *sidecar) got() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.posts...), s.tries
}

// run runs a under the container contract to its end and returns its
// error and log.
func run(t *testing.T, a *Await) (string, error) {
	t.Helper()
	logs := &testdeps.Buffer{}
	opts := container.DefaultOptions()
	opts.AdminAddr, opts.DrainDelay = "off", 0
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := container.Run(ctx, a, opts)
	return logs.String(), err
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNotifyMTLSAndToken: the notify POST goes over TLS verified against
// --notify-ca, presents --notify-cert, and carries the --notify-token-file
// token; a server that requires all three accepts it.
func TestNotifyMTLSAndToken(t *testing.T) {
	dir := t.TempDir()
	pki := testdeps.NewPKI(t, "podkit test CA")
	const token = "notify-token-0123456789abcdef"
	sc := startSidecar(t, pki, token)
	cert, key := pki.Files(dir, "await", testdeps.Leaf{CN: "await-job", Client: true})

	cfg := DefaultConfig()
	cfg.Command = []string{"true"}
	cfg.Notify = []string{sc.url + "/quitquitquit"}
	cfg.NotifyClient = container.APIClient{
		CAFile: pki.CAFile(dir), CertFile: cert, KeyFile: key,
		TokenFile: writeFile(t, filepath.Join(dir, "token"), token+"\n"),
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if logs, err := run(t, a); err != nil {
		t.Fatalf("Run: %v\n%s", err, logs)
	}
	posts, tries := sc.got()
	if len(posts) != 1 || posts[0] != "POST /quitquitquit await-job" || tries != 1 {
		t.Fatalf("the sidecar got %q in %d requests, want one POST /quitquitquit from await-job", posts, tries)
	}
}

// TestNotifyRefused: a token the server does not know is refused with
// 401; await does not retry it, and logs the answer, which names the role.
func TestNotifyRefused(t *testing.T) {
	dir := t.TempDir()
	pki := testdeps.NewPKI(t, "podkit test CA")
	sc := startSidecar(t, pki, "the-right-token-0123456789")
	cert, key := pki.Files(dir, "await", testdeps.Leaf{CN: "await-job", Client: true})
	cfg := DefaultConfig()
	cfg.Command = []string{"true"}
	cfg.Notify = []string{sc.url + "/quitquitquit"}
	cfg.NotifyClient = container.APIClient{
		CAFile: pki.CAFile(dir), CertFile: cert, KeyFile: key,
		TokenFile: writeFile(t, filepath.Join(dir, "token"), "a-wrong-token-0123456789\n"),
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := run(t, a)
	if err != nil {
		t.Fatalf("Run: %v (the command's status decides, not the notify)", err)
	}
	if posts, tries := sc.got(); len(posts) != 0 || tries != 1 {
		t.Fatalf("accepted %q after %d requests; want none accepted, and one try (a 401 is not retried)", posts, tries)
	}
	for _, want := range []string{`"msg":"notify failed"`, "401 Unauthorized", `\"role\":\"admin\"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

// TestNotifyWithoutCA: without --notify-ca the server's certificate from
// the test CA is not trusted, and nothing is sent.
func TestNotifyWithoutCA(t *testing.T) {
	pki := testdeps.NewPKI(t, "podkit test CA")
	sc := startSidecar(t, pki, "the-right-token-0123456789")
	cfg := DefaultConfig()
	cfg.Command = []string{"true"}
	cfg.Notify = []string{sc.url + "/quitquitquit"}
	cfg.NotifyAttempts = 1
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := run(t, a)
	if _, tries := sc.got(); tries != 0 {
		t.Fatalf("%d requests reached a server the client should not trust", tries)
	}
	if !strings.Contains(logs, "notify failed") || !strings.Contains(logs, "certificate signed by unknown authority") {
		t.Fatalf("log does not say the certificate is not trusted:\n%s", logs)
	}
}

// TestNotifyFlags: the --notify-* files are checked at start; a bad one
// exits 2 naming its flag.
func TestNotifyFlags(t *testing.T) {
	dir := t.TempDir()
	pki := testdeps.NewPKI(t, "podkit test CA")
	cert, key := pki.Files(dir, "await", testdeps.Leaf{CN: "await-job", Client: true})
	twoWords := writeFile(t, filepath.Join(dir, "tokens"), "name admin 0123456789abcdef0123\n")
	token := writeFile(t, filepath.Join(dir, "token"), "0123456789abcdef0123\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--notify", "https://127.0.0.1:1/quitquitquit", "--notify-cert", cert}, "--notify-cert and --notify-key: give both or neither"},
		{[]string{"--notify", "https://127.0.0.1:1/quitquitquit", "--notify-cert", filepath.Join(dir, "missing.crt"), "--notify-key", key}, "--notify-cert"},
		{[]string{"--notify", "https://127.0.0.1:1/quitquitquit", "--notify-ca", filepath.Join(dir, "missing-ca.crt")}, "--notify-ca"},
		{[]string{"--notify", "https://127.0.0.1:1/quitquitquit", "--notify-token-file", twoWords}, "--notify-token-file: " + twoWords + " holds more than one word"},
		{[]string{"--notify-token-file", token}, "there is no --notify URL to use them with"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"await", "--admin-addr", "off"}, tc.args...)
			code := cli.Main(context.Background(), []cli.Command{Command()}, append(args, "--", "true"), cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
