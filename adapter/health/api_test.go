package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
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

// TestAPIAccess serves the health endpoints over TLS with client
// certificates and tokens, and holds each to the probe role: refusals
// name the role, the right token and the allowed certificate get the real
// answer about a real redis-server.
func TestAPIAccess(t *testing.T) {
	s := containertest.NewSecureAPI(t, "probe")
	target := testdeps.StartRedis(t) // without redis-server: a skip, a failure under PODKIT_REQUIRE_DEPS=1
	paths := []string{"/livez", "/readyz", "/startupz", "/"}
	ln := adaptertest.Listen(t)
	cfg := fast(Config{Redis: target, Expect: "PONG"})
	cfg.Listener, cfg.API = ln, s.Security
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.access = s.WithOther(a.access)
	adaptertest.Run(t, a, nil)
	base := "https://" + ln.Addr().String()
	testdeps.WaitFor(t, "the adapter to pass a check", func() bool {
		resp, err := s.Client(nil).Do(bearer(t, base+paths[len(paths)-1], s.Token))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			s.CheckAccess(t, base+p, func(ans containertest.Answer) string {
				var body map[string]any
				if err := json.Unmarshal([]byte(ans.Body), &body); err != nil {
					return "not JSON: " + ans.Body
				}
				if !strings.HasPrefix(body["target"].(string), "redis ") {
					return "no target in " + ans.Body
				}
				if p != "/" && p != "/livez" && body["status"] != "ok" {
					return "status is not ok: " + ans.Body
				}
				return ""
			})
		})
	}
}

func bearer(t *testing.T, url, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// TestKubeletOverTLS is what a probe with scheme: HTTPS does: TLS alone
// (no tokens, no client CA) satisfies the listen rule on :8008, and a
// client that does not verify the certificate nor present a credential,
// as the kubelet, gets the answer.
func TestKubeletOverTLS(t *testing.T) {
	pki := testdeps.NewPKI(t, "podkit test CA")
	cert, key := pki.ServerFiles(t.TempDir())
	cfg := fast(Config{Redis: "127.0.0.1:1"})
	cfg.Listen = ":0"
	cfg.API = container.APISecurity{TLSCert: cert, TLSKey: key}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("--listen :0 with TLS alone: %v", err)
	}
	adaptertest.Run(t, a, nil)
	testdeps.WaitFor(t, "the adapter to listen", func() bool { return a.Addr() != nil })
	kubelet := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ans := containertest.Get(t, kubelet, "https://127.0.0.1:"+strconv.Itoa(a.Addr().(*net.TCPAddr).Port)+"/livez", "")
	var body struct{ Status string }
	if ans.Code != http.StatusOK || json.Unmarshal([]byte(ans.Body), &body) != nil || body.Status != "ok" {
		t.Fatalf("/livez as the kubelet asks: %d %s", ans.Code, ans.Body)
	}
	plain := containertest.Get(t, &http.Client{Timeout: 20 * time.Second}, "http://127.0.0.1:"+strconv.Itoa(a.Addr().(*net.TCPAddr).Port)+"/livez", "")
	if plain.Code == http.StatusOK {
		t.Fatalf("/livez over plain HTTP on the TLS listener: %d %s", plain.Code, plain.Body)
	}
}

// TestListenRule: a --listen reachable from other hosts needs TLS, tokens
// or --insecure-listen; loopback (the default) needs nothing.
func TestListenRule(t *testing.T) {
	if DefaultListen != "127.0.0.1:8008" {
		t.Fatalf("DefaultListen = %q, want loopback", DefaultListen)
	}
	for _, tc := range []struct {
		name, listen string
		insecure     bool
		want         string
	}{
		{"default", DefaultListen, false, ""},
		{"every interface", ":8008", false, "--listen :8008 is reachable from other hosts"},
		{"pod IP", "10.1.2.3:8008", false, "--listen 10.1.2.3:8008 is reachable from other hosts"},
		{"insecure-listen", ":8008", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Redis = "127.0.0.1:1"
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
	t.Run("command exits 2", func(t *testing.T) {
		var stderr bytes.Buffer
		code := cli.Main(context.Background(), []cli.Command{Command()}, []string{"health", "--redis", "127.0.0.1:1", "--listen", ":8008", "--admin-addr", "off"}, cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
		if code != 2 || !strings.Contains(stderr.String(), "--listen :8008 is reachable from other hosts") {
			t.Fatalf("exit %d, stderr %q; want 2 naming --listen", code, stderr.String())
		}
	})
	t.Run("insecure-listen starts", func(t *testing.T) {
		cfg := fast(Config{Redis: "127.0.0.1:1"})
		cfg.Listen = "0.0.0.0:0"
		cfg.API.InsecureListen = true
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		logs := adaptertest.Run(t, a, nil)
		testdeps.WaitFor(t, "the adapter to listen", func() bool { return a.Addr() != nil })
		url := "http://127.0.0.1:" + strconv.Itoa(a.Addr().(*net.TCPAddr).Port) + "/livez"
		if code, body := get(t, url); code != 200 || body["status"] != "ok" {
			t.Fatalf("/livez with --insecure-listen and no credential: %d %v", code, body)
		}
		testdeps.WaitFor(t, "the warning that every caller has every role", func() bool {
			return strings.Contains(logs.String(), "every caller has every role (--insecure-listen)")
		})
	})
}
