package tlsproxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// servedSerial dials a new connection and returns the serial number of
// the certificate the proxy presents.
func servedSerial(t testing.TB, addr string, ca *testdeps.PKI) (*big.Int, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// k8sSecretDir mimics a Kubernetes secret volume: the files are symlinks
// through ..data, which is swapped atomically on update.
type k8sSecretDir struct {
	t   testing.TB
	dir string
	gen int
}

func (d *k8sSecretDir) write(cert, key []byte) {
	d.t.Helper()
	d.gen++
	ts := filepath.Join(d.dir, fmt.Sprintf("..%d", d.gen))
	if err := os.Mkdir(ts, 0o755); err != nil {
		d.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ts, "tls.crt"), cert, 0o600)
	os.WriteFile(filepath.Join(ts, "tls.key"), key, 0o600)
	tmp := filepath.Join(d.dir, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		d.t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		link := filepath.Join(d.dir, f)
		if _, err := os.Lstat(link); err != nil {
			os.Symlink(filepath.Join("..data", f), link)
		}
	}
}

// TestCertRotationUnderLoad rotates the certificate while clients keep
// sending requests, over new and over long-lived connections: no request
// may fail, new connections get the new certificate, and a connection
// opened before the rotation keeps working.
func TestCertRotationUnderLoad(t *testing.T) {
	for _, trigger := range []string{"file change", "SIGHUP"} {
		t.Run(trigger, func(t *testing.T) {
			ca := testdeps.NewPKI(t, "CA")
			sec := &k8sSecretDir{t: t, dir: t.TempDir()}
			c0, k0, first := ca.Issue(testdeps.Leaf{CN: "localhost", DNS: []string{"localhost"}})
			sec.write(c0, k0)
			r := serverProxy(t, ca, echoBackend(t), func(c *Config) {
				c.CertFile = filepath.Join(sec.dir, "tls.crt")
				c.KeyFile = filepath.Join(sec.dir, "tls.key")
				if trigger == "SIGHUP" {
					c.WatchInterval = 0
				} else {
					c.WatchInterval = 20 * time.Millisecond
				}
			})
			// A long-lived keep-alive connection, opened before rotation.
			longLived := httpsClient(ca, false)
			mustGet(t, longLived, "https://"+r.addr+"/before")

			var (
				stop     atomic.Bool
				ok, fail atomic.Int64
				wg       sync.WaitGroup
				firstErr atomic.Value
			)
			load := func(c *http.Client) {
				defer wg.Done()
				for !stop.Load() {
					resp, err := c.Get("https://" + r.addr + "/load")
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != 200 {
							err = errors.New(resp.Status)
						}
					}
					if err != nil {
						fail.Add(1)
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					ok.Add(1)
				}
			}
			for i := range 4 {
				c := httpsClient(ca, i%2 == 1)
				if i < 2 {
					// New connection (full handshake) for every request.
					c.Transport.(*http.Transport).DisableKeepAlives = true
				}
				wg.Add(1)
				go load(c)
			}
			prev := first.Leaf.SerialNumber
			for range 3 {
				cp, kp, next := ca.Issue(testdeps.Leaf{CN: "localhost", DNS: []string{"localhost"}})
				sec.write(cp, kp)
				if trigger == "SIGHUP" {
					// No file watching (WatchInterval 0): only SIGHUP
					// reloads, and the counter says when it has.
					before := r.metric(t, `podkit_tlsproxy_reloads_total{result="ok"}`)
					syscall.Kill(os.Getpid(), syscall.SIGHUP)
					testdeps.WaitFor(t, "SIGHUP handled", func() bool {
						return r.metric(t, `podkit_tlsproxy_reloads_total{result="ok"}`) != before
					})
				}
				want := next.Leaf.SerialNumber
				var last string
				testdeps.WaitFor(t, "new certificate served", func() bool {
					got, err := servedSerial(t, r.addr, ca)
					if err == nil && got.Cmp(want) == 0 {
						return true
					}
					why := fmt.Sprintf("serial %v, want %v (previous %v)", got, want, prev)
					if err != nil {
						why = err.Error()
					}
					if why != last { // shown if the wait fails
						t.Logf("new certificate not served yet: %s", why)
						last = why
					}
					return false
				})
				prev = want
				time.Sleep(50 * time.Millisecond) // let load run on the new certificate
			}
			stop.Store(true)
			wg.Wait()
			if n := fail.Load(); n > 0 {
				t.Errorf("%d of %d requests failed during rotation; first: %v", n, n+ok.Load(), firstErr.Load())
			}
			if ok.Load() == 0 {
				t.Error("no request succeeded")
			}
			mustGet(t, longLived, "https://"+r.addr+"/after")
			if v := r.metric(t, `podkit_tlsproxy_reloads_total{result="ok"}`); v != 3 {
				t.Errorf("reloads_total{ok} = %v, want 3", v)
			}
		})
	}
}

func mustGet(t testing.TB, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}

// TestBadCertificateKept writes bad pairs: each reload is rejected, counted
// and logged, and the proxy keeps serving the old certificate.
func TestBadCertificateKept(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	dir := t.TempDir()
	certFile, keyFile := ca.ServerFiles(dir)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	r := serverProxy(t, ca, echoBackend(t), func(c *Config) {
		c.CertFile, c.KeyFile = certFile, keyFile
		c.WatchInterval = 20 * time.Millisecond
	})
	goodCert, _ := os.ReadFile(certFile)
	goodKey, _ := os.ReadFile(keyFile)
	otherCert, otherKey, _ := ca.Issue(testdeps.Leaf{CN: "localhost", DNS: []string{"localhost"}})
	expiredCert, expiredKey, _ := ca.Issue(testdeps.Leaf{CN: "localhost", DNS: []string{"localhost"}, NotAfter: time.Now().Add(-time.Minute)})
	tests := []struct {
		name      string
		cert, key []byte
	}{
		{"garbage certificate", []byte("not a certificate"), goodKey},
		{"key of another certificate", otherCert, goodKey},
		{"expired certificate", expiredCert, expiredKey},
		{"empty key", goodCert, nil},
		{"truncated key", otherCert, otherKey[:len(otherKey)/2]},
	}
	c := httpsClient(ca, false)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testdeps.ReplaceFile(t, keyFile, string(tt.key))
			testdeps.ReplaceFile(t, certFile, string(tt.cert))
			testdeps.WaitFor(t, fmt.Sprintf(`reloads_total{result="error"} >= %d`, i+1), func() bool {
				return r.metric(t, `podkit_tlsproxy_reloads_total{result="error"}`) >= float64(i+1)
			})
			got, err := servedSerial(t, r.addr, ca)
			if err != nil {
				t.Fatal(err)
			}
			if got.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("serving serial %v, want the old %v", got, leaf.SerialNumber)
			}
			mustGet(t, c, "https://"+r.addr+"/still-ok")
			if err := r.p.Reload(); !errors.Is(err, ErrBadCertificate) {
				t.Errorf("Reload() = %v, want ErrBadCertificate", err)
			}
		})
	}
	// A good pair is picked up again.
	testdeps.ReplaceFile(t, keyFile, string(otherKey))
	testdeps.ReplaceFile(t, certFile, string(otherCert))
	testdeps.WaitFor(t, `good pair after bad ones (reloads_total{result="ok"} >= 1)`, func() bool {
		return r.metric(t, `podkit_tlsproxy_reloads_total{result="ok"}`) >= 1
	})
	if v := r.metric(t, "podkit_tlsproxy_cert_expiry_timestamp_seconds"); v <= float64(time.Now().Unix()) {
		t.Errorf("cert expiry metric %v is not in the future", v)
	}
}

// TestSessionResumption checks that returning clients resume their TLS
// session, also after a certificate reload (the ticket keys survive it).
func TestSessionResumption(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			ca := testdeps.NewPKI(t, "CA")
			dir := t.TempDir()
			certFile, keyFile := ca.ServerFiles(dir)
			r := serverProxy(t, ca, echoBackend(t), func(c *Config) {
				c.CertFile, c.KeyFile = certFile, keyFile
				c.WatchInterval = 0
			})
			cache := tls.NewLRUClientSessionCache(8)
			dial := func() bool {
				t.Helper()
				c, err := tls.Dial("tcp", r.addr, &tls.Config{
					RootCAs: ca.Pool, ServerName: "localhost", ClientSessionCache: cache,
					MinVersion: version, MaxVersion: version, NextProtos: []string{"http/1.1"},
				})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				// A request and its answer: TLS 1.3 tickets arrive after
				// the handshake and are read with the response.
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
				io.Copy(io.Discard, c)
				return c.ConnectionState().DidResume
			}
			if dial() {
				t.Fatal("first connection resumed")
			}
			if !dial() {
				t.Error("second connection did not resume")
			}
			ca.ServerFiles(dir) // a new pair
			if err := r.p.Reload(); err != nil {
				t.Fatal(err)
			}
			if !dial() {
				t.Error("connection after a certificate reload did not resume")
			}
		})
	}
}

// TestSelfSignedClientCAWatch: with --self-signed --client-ca only the CA
// bundle is watched. The bundle written again with the same bytes reloads
// nothing and logs nothing; a changed bundle is reloaded and logged once.
// (That polls of an unchanged file load nothing at all is the container's
// Reloader's, tested there.)
func TestSelfSignedClientCAWatch(t *testing.T) {
	clientCA := testdeps.NewPKI(t, "client CA")
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	testdeps.ReplaceFile(t, caFile, string(clientCA.PEM))
	var logs testdeps.Buffer
	cfg := DefaultConfig()
	cfg.Target = echoBackend(t)
	cfg.SelfSigned = true
	cfg.ClientCA = caFile
	cfg.WatchInterval = 5 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	r := startProxy(t, cfg)
	ok := func() float64 { return r.metric(t, `podkit_tlsproxy_reloads_total{result="ok"}`) }
	for i, next := range [][]byte{testdeps.NewPKI(t, "new client CA").PEM, testdeps.NewPKI(t, "third client CA").PEM} {
		prev, _ := os.ReadFile(caFile)
		testdeps.ReplaceFile(t, caFile, string(prev)) // the same bundle again
		testdeps.ReplaceFile(t, caFile, string(next)) // a new one
		testdeps.WaitFor(t, fmt.Sprintf(`the new bundle reloaded (reloads_total{result="ok"} = %d)`, i+1), func() bool {
			return ok() == float64(i+1)
		})
	}
	for _, res := range []string{"error", "unchanged"} {
		if v := r.metric(t, `podkit_tlsproxy_reloads_total{result="`+res+`"}`); v != 0 {
			t.Errorf(`reloads_total{result=%q} = %v, want 0`, res, v)
		}
	}
	if n := strings.Count(logs.String(), "certificate reloaded"); n != 2 {
		t.Errorf("%d reloads logged for two changes, want 2:\n%s", n, logs.String())
	}
}

// TestSelfSignedSIGHUP: with --self-signed and no --client-ca there is
// nothing to reload; Reload (as SIGHUP) says so and counts it as
// unchanged.
func TestSelfSignedSIGHUP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Target = echoBackend(t)
	cfg.SelfSigned = true
	r := startProxy(t, cfg)
	if err := r.p.Reload(); err != nil {
		t.Fatalf("Reload = %v, want nil", err)
	}
	if v := r.metric(t, `podkit_tlsproxy_reloads_total{result="unchanged"}`); v != 1 {
		t.Errorf(`reloads_total{result="unchanged"} = %v, want 1`, v)
	}
}
