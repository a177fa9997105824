package tlsproxy

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/internal/tlsconf"
)

func TestMutualTLS(t *testing.T) {
	serverCA := testdeps.NewPKI(t, "server CA")
	clientCA := testdeps.NewPKI(t, "client CA")
	otherCA := testdeps.NewPKI(t, "other CA")
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	if err := os.WriteFile(caFile, clientCA.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	r := serverProxy(t, serverCA, echoBackend(t), func(c *Config) {
		c.ClientCA = caFile
		c.AllowCN = []string{"alice"}
		c.AllowSANDNS = []string{"bob.apps.svc"}
		c.AllowSANURI = []string{"spiffe://cluster.local/ns/apps/sa/carol"}
	})
	cert := func(ca *testdeps.PKI, o testdeps.Leaf) []tls.Certificate {
		o.Client = true
		_, _, c := ca.Issue(o)
		return []tls.Certificate{c}
	}
	tests := []struct {
		name     string
		certs    []tls.Certificate
		allowed  bool
		wantXFCC []string
	}{
		{"allowed by CN", cert(clientCA, testdeps.Leaf{CN: "alice"}), true, []string{`Subject="CN=alice"`, "Hash="}},
		{"allowed by DNS SAN", cert(clientCA, testdeps.Leaf{CN: "bob", DNS: []string{"bob.apps.svc"}}), true, []string{"DNS=bob.apps.svc"}},
		{"allowed by URI SAN", cert(clientCA, testdeps.Leaf{CN: "carol", URIs: []string{"spiffe://cluster.local/ns/apps/sa/carol"}}), true, []string{"URI=spiffe://cluster.local/ns/apps/sa/carol"}},
		{"not on any list", cert(clientCA, testdeps.Leaf{CN: "mallory", DNS: []string{"mallory.apps.svc"}}), false, nil},
		{"listed CN from another CA", cert(otherCA, testdeps.Leaf{CN: "alice"}), false, nil},
		{"no client certificate", nil, false, nil},
	}
	for _, tt := range tests {
		for _, h2 := range []bool{false, true} {
			name := tt.name + "/http1.1"
			if h2 {
				name = tt.name + "/h2"
			}
			t.Run(name, func(t *testing.T) {
				c := httpsClient(serverCA, h2, tt.certs...)
				req, _ := http.NewRequest("GET", "https://"+r.addr+"/who", nil)
				if !tt.allowed {
					resp, err := c.Do(req)
					if err == nil {
						resp.Body.Close()
						t.Fatalf("request succeeded (%s), want a TLS failure", resp.Status)
					}
					return
				}
				_, e := getEcho(t, c, req)
				xfcc := e.Header.Get(DefaultClientCertHeader)
				for _, w := range tt.wantXFCC {
					if !strings.Contains(xfcc, w) {
						t.Errorf("X-Forwarded-Client-Cert %q does not contain %q", xfcc, w)
					}
				}
				if n := len(e.Header[DefaultClientCertHeader]); n != 1 {
					t.Errorf("%d X-Forwarded-Client-Cert headers, want 1", n)
				}
			})
		}
	}
	if v := r.metric(t, `podkit_tlsproxy_handshake_errors_total{reason="not_allowed"}`); v < 2 {
		t.Errorf("not_allowed handshake errors = %v, want >= 2", v)
	}
}

func TestAllowList(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	_, _, alice := ca.Issue(testdeps.Leaf{CN: "alice", DNS: []string{"a.example"}, URIs: []string{"spiffe://x/a"}})
	tests := []struct {
		name string
		list tlsconf.AllowList
		want bool
	}{
		{"empty allows all", tlsconf.AllowList{}, true},
		{"cn", tlsconf.AllowList{CN: []string{"bob", "alice"}}, true},
		{"dns case-insensitive", tlsconf.AllowList{DNS: []string{"A.EXAMPLE"}}, true},
		{"uri", tlsconf.AllowList{URI: []string{"spiffe://x/a"}}, true},
		{"uri prefix is not a match", tlsconf.AllowList{URI: []string{"spiffe://x"}}, false},
		{"cn is not a dns match", tlsconf.AllowList{DNS: []string{"alice"}}, false},
		{"none match", tlsconf.AllowList{CN: []string{"bob"}, DNS: []string{"b.example"}, URI: []string{"spiffe://x/b"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.list.Allows(alice.Leaf); got != tt.want {
				t.Errorf("allows = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRejectedClientLogged: rejected client certificates are logged with
// the reason and the client's address, at most once per reason per
// interval; the next line says how many were not logged in between.
func TestRejectedClientLogged(t *testing.T) {
	serverCA := testdeps.NewPKI(t, "server CA")
	clientCA := testdeps.NewPKI(t, "client CA")
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	if err := os.WriteFile(caFile, clientCA.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs testdeps.Buffer
	r := serverProxy(t, serverCA, echoBackend(t), func(c *Config) {
		c.ClientCA = caFile
		c.AllowCN = []string{"alice"}
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	var now atomic.Int64 // the log's clock
	now.Store(time.Now().UnixNano())
	r.p.rejects.setClock(func() time.Time { return time.Unix(0, now.Load()) })
	_, _, mallory := clientCA.Issue(testdeps.Leaf{CN: "mallory", Client: true})
	clients := map[string]*http.Client{
		"not_allowed": httpsClient(serverCA, false, mallory),
		"client_cert": httpsClient(serverCA, false),
	}
	rejected := 0
	reject := func(n int) {
		t.Helper()
		for range n {
			for reason, c := range clients {
				if resp, err := c.Get("https://" + r.addr + "/"); err == nil {
					resp.Body.Close()
					t.Fatalf("%s: request succeeded", reason)
				}
			}
		}
		rejected += n
		for reason := range clients {
			testdeps.WaitFor(t, fmt.Sprintf("%d %s rejections counted", rejected, reason), func() bool {
				return r.metric(t, `podkit_tlsproxy_handshake_errors_total{reason="`+reason+`"}`) == float64(rejected)
			})
		}
	}
	type line struct {
		Msg, Reason, Remote, Error string
		Suppressed                 int
	}
	logged := func(reason string) []line {
		var out []line
		for _, s := range strings.Split(logs.String(), "\n") {
			var l line
			if json.Unmarshal([]byte(s), &l) == nil && l.Msg == "client certificate rejected" && l.Reason == reason {
				out = append(out, l)
			}
		}
		return out
	}

	reject(3)
	for reason := range clients {
		got := logged(reason)
		if len(got) != 1 {
			t.Fatalf("%s: %d lines for 3 rejections in one interval, want 1:\n%s", reason, len(got), logs.String())
		}
		if !strings.HasPrefix(got[0].Remote, "127.0.0.1:") || got[0].Error == "" || got[0].Suppressed != 0 {
			t.Errorf("%s: %+v, want the client's address, the error and suppressed 0", reason, got[0])
		}
	}
	if got := logged("not_allowed"); !strings.Contains(got[0].Error, "CN=mallory") {
		t.Errorf("not_allowed: error %q does not name the certificate", got[0].Error)
	}

	now.Add(int64(rejectLogEvery + time.Second))
	reject(1)
	for reason := range clients {
		got := logged(reason)
		if len(got) != 2 || got[1].Suppressed != 2 {
			t.Errorf("%s after the interval: %+v, want a second line with suppressed 2", reason, got)
		}
	}
}
