package metrics

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/adapter/internal/adaptertest"
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/container/containertest"
	"github.com/podkit/podkit/internal/testdeps"
)

// stubStatus serves the stub_status fixture, standing in for nginx.
func stubStatus(t *testing.T) string {
	t.Helper()
	page, err := os.ReadFile("testdata/stub_status.txt")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(page) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/stub_status"
}

// TestAPIAccess serves /metrics over TLS with client certificates and
// tokens, and holds it to the scraper role: refusals name the role, the
// right token and the allowed certificate get the real metrics, and the
// index page stays public.
func TestAPIAccess(t *testing.T) {
	s := containertest.NewSecureAPI(t, "scraper")
	ln := adaptertest.Listen(t)
	cfg := DefaultConfig()
	cfg.Listener = ln
	cfg.Nginx = []string{stubStatus(t)}
	cfg.API = s.Security
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.access = s.WithOther(a.access)
	adaptertest.Run(t, a, nil)
	base := "https://" + ln.Addr().String()
	anon := s.Client(nil)
	testdeps.WaitFor(t, "the adapter to serve its index over TLS", func() bool {
		resp, err := anon.Get(base + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if idx := containertest.Get(t, anon, base+"/", ""); idx.Code != http.StatusOK || !strings.Contains(idx.Body, `href="/metrics"`) {
		t.Fatalf("index without a credential: %d %s, want the public index", idx.Code, idx.Body)
	}
	if got := containertest.Get(t, anon, base+"/nothing-here", ""); got.Code != http.StatusUnauthorized {
		t.Fatalf("an unknown path without a credential: %d, want 401 (no hint of which paths exist)", got.Code)
	}
	s.CheckAccess(t, base+"/metrics", func(ans containertest.Answer) string {
		if !strings.Contains(ans.Body, "\nnginx_up{addr=") || !strings.Contains(ans.Body, "nginx_connections_active{") {
			return "no nginx metrics in /metrics:\n" + ans.Body
		}
		return ""
	})
	// The refusals are counted, by reason and role, where they are scraped.
	body := containertest.Get(t, anon, base+"/metrics", s.Token).Body
	for _, want := range []string{
		`podkit_metrics_api_denied_total{reason="no_credential",role="scraper"} 2`, // and /nothing-here
		`podkit_metrics_api_denied_total{reason="bad_token",role="scraper"} 1`,
		`podkit_metrics_api_denied_total{reason="wrong_role",role="scraper"} 1`,
		`podkit_metrics_api_denied_total{reason="cert_not_allowed",role="scraper"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestListenRule: a --listen reachable from other hosts needs TLS, tokens
// or --insecure-listen; loopback (the default) needs nothing.
func TestListenRule(t *testing.T) {
	tokens := t.TempDir() + "/tokens"
	if err := os.WriteFile(tokens, []byte("prom scraper 0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		listen string
		api    container.APISecurity
		want   string // "" for valid
	}{
		{"default", DefaultListen, container.APISecurity{}, ""},
		{"every interface", ":9113", container.APISecurity{}, "--listen :9113 is reachable from other hosts"},
		{"pod IP", "10.1.2.3:9113", container.APISecurity{}, "--listen 10.1.2.3:9113 is reachable from other hosts"},
		{"insecure-listen", ":9113", container.APISecurity{InsecureListen: true}, ""},
		{"tokens", ":9113", container.APISecurity{TokenFiles: []string{tokens}}, ""},
		{"localhost", "localhost:9113", container.APISecurity{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Nginx = []string{"http://127.0.0.1:1/stub_status"}
			cfg.Listen, cfg.API = tc.listen, tc.api
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--insecure-listen")):
				t.Fatalf("Validate() = %v, want %q and the way out (--insecure-listen)", err, tc.want)
			}
		})
	}
	if DefaultListen != "127.0.0.1:9113" {
		t.Fatalf("DefaultListen = %q, want loopback", DefaultListen)
	}

	t.Run("command exits 2", func(t *testing.T) {
		var stderr bytes.Buffer
		code := cli.Main(context.Background(), []cli.Command{Command()}, []string{"metrics", "--nginx", "http://127.0.0.1:1/s", "--listen", ":9113", "--admin-addr", "off"}, cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
		if code != 2 || !strings.Contains(stderr.String(), "--listen :9113 is reachable from other hosts") {
			t.Fatalf("exit %d, stderr %q; want 2 naming --listen", code, stderr.String())
		}
	})

	t.Run("insecure-listen starts", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Nginx = []string{stubStatus(t)}
		cfg.Listen = "0.0.0.0:0"
		cfg.API.InsecureListen = true
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		logs := adaptertest.Run(t, a, nil)
		testdeps.WaitFor(t, "the adapter to listen", func() bool { return a.Addr() != nil })
		port := a.Addr().(*net.TCPAddr).Port
		c := &http.Client{Timeout: 20 * time.Second}
		ans := containertest.Get(t, c, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics", "")
		if ans.Code != http.StatusOK || !strings.Contains(ans.Body, "nginx_up{") {
			t.Fatalf("/metrics with --insecure-listen: %d\n%s", ans.Code, ans.Body)
		}
		testdeps.WaitFor(t, "the warning that every caller has every role", func() bool {
			return strings.Contains(logs.String(), "every caller has every role (--insecure-listen)")
		})
	})
}
