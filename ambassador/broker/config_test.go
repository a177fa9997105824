package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodYAML = `
defaults:
  mode: tcp
  health_check: {type: tcp, interval: 3s}
  outlier: {failures: 7}
upstreams:
  - name: redis
    listen: 127.0.0.1:6379
    source: static:10.0.0.1:6379,10.0.0.2:6379
    balance: ring-hash
    health_check: {type: redis, rise: 1}
  - name: web
    listen: 127.0.0.1:8080
    source: file:/etc/endpoints.yaml
    mode: http
    hash_key: header:X-User
    health_check: {type: "http:/healthz", status: 200-299}
    limits: {max_requests: 100}
    timeouts: {connect: 1s, request: 10s}
    retries: {attempts: 2, budget: 0.1}
    zone: eu-west-1a
`

// TestParse: defaults: merge into each upstream over the base, per key
// (nested keys too); http:PATH sets the path.
func TestParse(t *testing.T) {
	ups, err := Parse([]byte(goodYAML), DefaultUpstream())
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 2 {
		t.Fatalf("%d upstreams", len(ups))
	}
	r, w := ups[0], ups[1]
	if r.Name != "redis" || r.Mode != TCP || r.Balance != "ring-hash" || r.HealthCheck.Type != CheckRedis ||
		r.HealthCheck.Interval != 3*time.Second || r.HealthCheck.Rise != 1 || r.HealthCheck.Fall != 3 ||
		r.HealthCheck.Timeout != 2*time.Second || r.Outlier.Failures != 7 || r.Outlier.Ejection != 30*time.Second {
		t.Errorf("redis: %+v", r)
	}
	if w.Mode != HTTP || w.HealthCheck.Type != CheckHTTP || w.HealthCheck.Path != "/healthz" || w.HealthCheck.Status != "200-299" ||
		w.HealthCheck.Interval != 3*time.Second || w.Limits.MaxRequests != 100 || w.Timeouts.Connect != time.Second ||
		w.Timeouts.Request != 10*time.Second || w.Retries.Attempts != 2 || w.Retries.Budget != 0.1 || w.Zone != "eu-west-1a" ||
		w.hashHeader() != "X-User" || w.idle() != DefaultHTTPIdle {
		t.Errorf("web: %+v", w)
	}
}

// TestParseErrors: every mistake is reported, each with its line.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"syntax", "upstreams: [\n", []string{"YAML syntax"}},
		{"empty", "", []string{"empty"}},
		{"not a mapping", "- a\n", []string{"line 1: want a mapping"}},
		{"unknown top key", "upstream: []\n", []string{`line 1: unknown key "upstream"`}},
		{"no upstreams", "defaults: {mode: tcp}\n", []string{"no upstreams"}},
		{"empty list", "upstreams: []\n", []string{"the list is empty"}},
		{"unknown key", "upstreams:\n  - name: a\n    listen: 127.0.0.1:1\n    source: static:127.0.0.1:2\n    balanse: p2c\n",
			[]string{`line 5: upstream "a": unknown key "balanse"`}},
		{"unknown nested key", "upstreams:\n  - name: a\n    listen: 127.0.0.1:1\n    source: static:127.0.0.1:2\n    health_check: {typ: tcp}\n",
			[]string{`line 5: upstream "a": health_check: unknown key "typ"`}},
		{"name in defaults", "defaults:\n  listen: 127.0.0.1:1\nupstreams: []\n", []string{"line 2: defaults: listen is not allowed here"}},
		{"bad values", "upstreams:\n  - name: a\n    listen: nope\n    source: dns\n    mode: udp\n    balance: random\n    timeouts: {connect: 0s}\n",
			[]string{`line 3: upstream "a": listen`, `line 4: upstream "a": source`, `line 5: upstream "a": mode: "udp"`, `line 6: upstream "a": balance`, `line 7: upstream "a": timeouts.connect`}},
		{"wrong type", "upstreams:\n  - name: a\n    listen: 127.0.0.1:1\n    source: static:127.0.0.1:2\n    limits: {max_connections: many}\n",
			[]string{`upstream "a": line 5`, "many"}},
		{"duplicates", "upstreams:\n  - {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2}\n  - {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2}\n",
			[]string{`line 3: upstream "a" is a duplicate (first on line 2)`, "listens on 127.0.0.1:1"}},
		{"missing keys", "upstreams:\n  - mode: tcp\n", []string{"listen: required", "source: required", "name:"}},
		{"header hash in tcp", "upstreams:\n  - {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2, hash_key: header:X}\n",
			[]string{"only known in http mode"}},
		{"http check without path", "upstreams:\n  - {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2, health_check: {type: http}}\n",
			[]string{"health_check.path"}},
		{"missing tls file", "upstreams:\n  - {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2, tls: {ca: /nonexistent/ca.pem}}\n",
			[]string{"tls.ca", "/nonexistent/ca.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), DefaultUpstream())
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error does not wrap ErrConfig: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestConfigValidate: the flags' errors name the flags.
func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	err := cfg.Validate()
	for _, w := range []string{"--listen: required", "--source: required"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("empty config: %v, want %q", err, w)
		}
	}
	cfg.Upstream.Listen, cfg.Upstream.Source = "127.0.0.1:1", "static:127.0.0.1:2"
	cfg.Upstream.Balance, cfg.Upstream.HealthCheck.Rise, cfg.Upstream.Retries.Budget = "fastest", 0, 2
	cfg.tlsFiles.CA = "ca.pem"
	err = cfg.Validate()
	for _, w := range []string{"--balance", "--health-rise", "--retry-budget", "need --upstream-tls"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bad flags: %v, want %q", err, w)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "broker.yaml")
	os.WriteFile(file, []byte(goodYAML), 0o644)
	cfg = DefaultConfig()
	cfg.ConfigFile = file
	if err := cfg.Validate(); err != nil {
		t.Errorf("--config: %v", err)
	}
	cfg.Upstream.Listen = "127.0.0.1:1"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("--config with --listen: %v", err)
	}
}

// FuzzParse: no input makes the parser panic, and an accepted file's
// upstreams are valid.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		goodYAML, "", "upstreams: []", "upstreams:\n  - name: a\n", "defaults: [1]\nupstreams: {}\n",
		"upstreams:\n  - {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2, health_check: {type: 'http:/x'}}\n",
		"upstreams:\n  - &a {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2}\n  - *a\n",
		"upstreams:\n  - {name: a, listen: 127.0.0.1:1, source: static:127.0.0.1:2, tls: {sans: [x, y]}, timeouts: {idle: -1s}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ups, err := Parse(b, DefaultUpstream())
		if err != nil {
			return
		}
		for _, u := range ups {
			if errs := u.validate(func(k string) string { return k }); len(errs) > 0 {
				t.Fatalf("accepted an invalid upstream %+v: %v", u, errs)
			}
		}
	})
}
