package topz

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/container/containertest"
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

// TestAPIAccess serves GET /topz over TLS with client certificates and
// tokens, reading the real /proc, and holds it to the reader role:
// refusals name the role; the right token and the allowed certificate get
// the process list, this test's own process in it; a certificate from
// another CA fails the handshake.
func TestAPIAccess(t *testing.T) {
	s := containertest.NewSecureAPI(t, "reader")
	s.Header = http.Header{"Accept": {"application/json"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Passwd = ""
	cfg.Listener = ln
	cfg.API = s.Security
	tz, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tz.access = s.WithOther(tz.access)
	runIn(t, tz)

	anon := s.Client(nil)
	anon.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	base := "https://" + ln.Addr().String()
	testdeps.WaitFor(t, "topz to serve over TLS", func() bool {
		resp, err := anon.Get(base + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusFound
	})
	if a := containertest.Get(t, anon, base+"/", ""); a.Code != http.StatusFound || a.Header.Get("Location") != "/topz" {
		t.Fatalf("/ without a credential: %d %q, want the public redirect to /topz", a.Code, a.Header.Get("Location"))
	}
	url := base + "/topz"
	s.CheckAccess(t, url, func(a containertest.Answer) string {
		var snap struct{ Processes []struct{ PID int } }
		if err := json.Unmarshal([]byte(a.Body), &snap); err != nil {
			return fmt.Sprintf("not the JSON process list (%v): %.300s", err, a.Body)
		}
		for _, p := range snap.Processes {
			if p.PID == os.Getpid() {
				return ""
			}
		}
		return fmt.Sprintf("the test's own pid %d is not in /topz's %d processes", os.Getpid(), len(snap.Processes))
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		_, _, foreign := testdeps.NewPKI(t, "another CA").Issue(testdeps.Leaf{CN: "allowed", Client: true})
		// GetClientCertificate sends it although the server asks for
		// another CA's (Go's client would otherwise send none).
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:              s.CA,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil },
		}}}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			t.Fatalf("a certificate from another CA got %s, want the handshake refused", resp.Status)
		}
	})
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
		var a containertest.Answer
		testdeps.WaitFor(t, "GET /topz", func() bool {
			a = containertest.Get(t, &http.Client{Timeout: 20 * time.Second}, url+"?format=json", "")
			return a.Code == http.StatusOK
		})
		if !strings.Contains(a.Body, `"processes"`) {
			t.Fatalf("/topz with --insecure-listen: %s", a.Body)
		}
		testdeps.WaitFor(t, "the warning that every caller has every role", func() bool {
			return strings.Contains(logs.String(), "every caller has every role (--insecure-listen)")
		})
	})
}
