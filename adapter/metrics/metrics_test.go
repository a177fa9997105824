package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/podkit/podkit/adapter/internal/adaptertest"
	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/secretfile"
	"github.com/podkit/podkit/internal/testdeps"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startAdapter runs the adapter under the container contract in-process
// and returns the base URL of its --listen address and its log.
func startAdapter(t *testing.T, cfg Config) (string, *testdeps.Buffer) {
	t.Helper()
	ln := adaptertest.Listen(t)
	cfg.Listener = ln
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := adaptertest.Run(t, a, nil)
	base := "http://" + ln.Addr().String()
	testdeps.WaitFor(t, "the adapter to answer /", func() bool {
		resp, err := http.Get(base + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	if got := a.Addr(); got == nil || got.String() != ln.Addr().String() {
		t.Fatalf("Addr() = %v, want the listener's %v", got, ln.Addr())
	}
	return base, logs
}

// scrape GETs /metrics, requires 200, and returns the body.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answered %s:\n%s", resp.Status, b)
	}
	return string(b)
}

func parseText(t *testing.T, text string) map[string]*familyT {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics is not valid text format: %v", err)
	}
	out := map[string]*familyT{}
	for name, mf := range mfs {
		f := &familyT{typ: mf.GetType().String()}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			}
			f.samples = append(f.samples, sampleT{labels, v})
		}
		out[name] = f
	}
	return out
}

type familyT struct {
	typ     string
	samples []sampleT
}

type sampleT struct {
	labels map[string]string
	value  float64
}

// value returns the value of the sample of name whose labels include want.
func value(t *testing.T, fams map[string]*familyT, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, s := range f.samples {
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value
	}
	t.Fatalf("no sample of %s with labels %v", name, want)
	return 0
}

// adapterFamilies keeps the families the adapter exports, not the Go
// runtime's or the contract's: podkit_metrics_api_* are the API's, from
// container.OpenAPI (api_test.go checks them).
var adapterFamilies = regexp.MustCompile(`^(nginx|redis|mysql|pg|podkit_metrics)_`)

var apiFamilies = regexp.MustCompile(`^podkit_metrics_api_`)

func adapterFamily(name string) bool {
	return adapterFamilies.MatchString(name) && !apiFamilies.MatchString(name)
}

// shape renders the names, types and label names of the adapter's
// families, one line per distinct label-name set: the part of /metrics
// that is stable against a real server, whose values change.
func shape(fams map[string]*familyT, keep func(string) bool) string {
	var lines []string
	for name, f := range fams {
		if !adapterFamily(name) || (keep != nil && !keep(name)) {
			continue
		}
		seen := map[string]bool{}
		for _, s := range f.samples {
			names := make([]string, 0, len(s.labels))
			for k := range s.labels {
				names = append(names, k)
			}
			sort.Strings(names)
			line := fmt.Sprintf("%s{%s} %s", name, strings.Join(names, ","), strings.ToLower(f.typ))
			if !seen[line] {
				seen[line] = true
				lines = append(lines, line)
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, diffLines(string(want), got))
	}
}

func diffLines(want, got string) string {
	w := map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	g := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)"
	}
	return b.String()
}

// exact renders the adapter's families in text format with the target
// address replaced by TARGET and scrape durations by 0, for fixtures.
func exact(t *testing.T, text, addr string) string {
	t.Helper()
	var keep []string
	block := false
	for _, l := range strings.Split(text, "\n") {
		name := l
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			name = strings.Fields(l)[2]
		} else if i := strings.IndexAny(l, "{ "); i >= 0 {
			name = l[:i]
		}
		block = adapterFamily(name)
		if !block || l == "" {
			continue
		}
		if strings.HasPrefix(l, "podkit_metrics_scrape_duration_seconds{") {
			l = l[:strings.LastIndex(l, " ")] + " 0"
		}
		keep = append(keep, strings.ReplaceAll(l, addr, "TARGET"))
	}
	return strings.Join(keep, "\n") + "\n"
}

// lintAllowed are the lint findings the anchor exporters' own names cause;
// podkit keeps those names so that dashboards keep working.
var lintAllowed = []*regexp.Regexp{
	regexp.MustCompile(`^nginx_connections_(accepted|handled): counter metrics should have "_total" suffix`),
	regexp.MustCompile(`^pg_stat_database_[a-z_]+: counter metrics should have "_total" suffix`),
	regexp.MustCompile(`^redis_[a-z_]+: metric names should not contain abbreviated units`),
	regexp.MustCompile(`^redis_(cpu_[a-z_]+|commands_duration)_seconds_total: `),
	regexp.MustCompile(`^mysql_global_(status|variables)_[a-z0-9_]+: `),
	regexp.MustCompile(`^mysql_slave_status_[a-z0-9_]+: `),
	regexp.MustCompile(`^redis_(rdb|aof)_[a-z_]+_duration_sec: `),
	regexp.MustCompile(`^redis_(latest_fork_usec|mem_clients_[a-z]+|slave_expires_tracked_keys|module_fork_last_cow_size|repl_backlog_first_byte_offset|master_repl_offset|second_repl_offset|slave_repl_offset|mem_fragmentation_bytes|allocator_[a-z_]+|replication_backlog_bytes|repl_backlog_history_bytes): `),
	regexp.MustCompile(`^pg_stat_database_(blk_read_time|blk_write_time|temp_bytes): `),
	regexp.MustCompile(`^pg_postmaster_start_time_seconds: `),
	regexp.MustCompile(`^redis_uptime_in_seconds: `),
}

// lint runs client_golang's linter over the adapter's families and fails
// on any finding that the anchors' names do not explain.
func lint(t *testing.T, text string) {
	t.Helper()
	var buf strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if l == "" || l == "# EOF" {
			continue
		}
		buf.WriteString(l + "\n")
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var out []*dto.MetricFamily
		for name, mf := range mfs {
			if adapterFamily(name) {
				out = append(out, mf)
			}
		}
		return out, nil
	})
	problems, err := testutil.GatherAndLint(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		msg := p.Metric + ": " + p.Text
		allowed := false
		for _, re := range lintAllowed {
			if re.MatchString(msg) {
				allowed = true
				break
			}
		}
		if !allowed {
			t.Errorf("lint: %s", msg)
		}
	}
	promtool(t, buf.String())
}

// promtool runs `promtool check metrics` (Debian's prometheus package) on
// the adapter's families, with the same allowances.
func promtool(t *testing.T, text string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if testdeps.Require() {
			t.Fatalf("promtool not installed (apt-get install prometheus); %s=1 requires it", testdeps.RequireEnv)
		}
		t.Log("promtool not installed (apt-get install prometheus): skipping promtool check metrics")
		return
	}
	var in strings.Builder
	keep := false
	for _, l := range strings.Split(text, "\n") {
		name := l
		if strings.HasPrefix(l, "# ") {
			if f := strings.Fields(l); len(f) > 2 {
				name = f[2]
			}
		} else if i := strings.IndexAny(l, "{ "); i >= 0 {
			name = l[:i]
		}
		keep = adapterFamily(name)
		if keep {
			in.WriteString(l + "\n")
		}
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(in.String())
	out, _ := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		// promtool prints "name message"; the linter "name: message".
		l = strings.Replace(strings.TrimSpace(l), " ", ": ", 1)
		allowed := false
		for _, re := range lintAllowed {
			if re.MatchString(l) {
				allowed = true
				break
			}
		}
		if !allowed {
			t.Errorf("promtool check metrics: %s", l)
		}
	}
}

// fixtureRedis serves the INFO fixture through the real extraction code.
type fixtureScraper func(ctx context.Context, e *emitter) error

func (f fixtureScraper) scrape(ctx context.Context, e *emitter) error { return f(ctx, e) }
func (f fixtureScraper) close() error                                 { return nil }

func gatherText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestGoldenFixtures(t *testing.T) {
	t.Run("nginx", func(t *testing.T) {
		page, err := os.ReadFile("testdata/stub_status.txt")
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(page)
		}))
		defer srv.Close()
		base, _ := startAdapter(t, Config{Listen: "127.0.0.1:0", Nginx: []string{srv.URL + "/stub_status"}, Timeout: 5 * time.Second})
		text := scrape(t, base)
		golden(t, "nginx-fixture.golden", exact(t, text, strings.TrimPrefix(srv.URL, "http://")))
		lint(t, text)
	})
	t.Run("redis", func(t *testing.T) {
		info, err := os.ReadFile("testdata/redis-7.0-info.txt")
		if err != nil {
			t.Fatal(err)
		}
		sh := newShared(discardLogger(), 5*time.Second)
		sh.now = func() time.Time { return time.Unix(1700000000, 0) }
		tg := newTarget(srcRedis, "127.0.0.1:6379", fixtureScraper(func(ctx context.Context, e *emitter) error {
			fields, err := ParseInfo(string(info))
			if err != nil {
				return err
			}
			if err := redisInfoMetrics(e, fields); err != nil {
				return err
			}
			entry := resp.Value{Kind: resp.KindArray, Array: []resp.Value{
				{Kind: resp.KindInteger, Int: 41}, {Kind: resp.KindInteger, Int: 1700000000},
				{Kind: resp.KindInteger, Int: 12500},
			}}
			return redisSlowlogMetrics(e, resp.Value{Kind: resp.KindInteger, Int: 7},
				resp.Value{Kind: resp.KindArray, Array: []resp.Value{entry}})
		}), sh)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(tg)
		text := gatherText(t, reg)
		golden(t, "redis-fixture.golden", exact(t, text, "127.0.0.1:6379"))
		lint(t, text)
	})
}

// TestMalformedStubStatus: a peer answering junk gives nginx_up 0, a
// counted parse error and a log line, while /metrics still answers 200.
func TestMalformedStubStatus(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		reason     string
	}{
		{"junk", "<html><body>hello</body></html>", 200, "parse"},
		{"binary", "\x00\x01\x02\xff", 200, "parse"},
		{"404", "not found", 404, "http_status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			base, logs := startAdapter(t, Config{Listen: "127.0.0.1:0", Nginx: []string{srv.URL + "/status"}, Timeout: 5 * time.Second})
			for i := 1; i <= 2; i++ {
				fams := parseText(t, scrape(t, base))
				if up := value(t, fams, "nginx_up", map[string]string{"addr": addr}); up != 0 {
					t.Fatalf("nginx_up = %v, want 0", up)
				}
				if _, ok := fams["nginx_connections_active"]; ok {
					t.Fatal("nginx_connections_active exported from a failed scrape")
				}
				got := value(t, fams, "podkit_metrics_scrape_errors_total", map[string]string{"source": "nginx", "target": addr, "reason": tc.reason})
				if got != float64(i) {
					t.Fatalf("scrape %d: errors_total{reason=%q} = %v, want %d", i, tc.reason, got, i)
				}
			}
			if !strings.Contains(logs.String(), `"msg":"scrape failed"`) || !strings.Contains(logs.String(), `"reason":"`+tc.reason+`"`) {
				t.Fatalf("no scrape failure logged:\n%s", logs)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"no target", func(c *Config) {}, "no target"},
		{"bad listen", func(c *Config) { c.Listen = "nope"; c.Redis = []string{"x:1"} }, "--listen"},
		{"nginx scheme", func(c *Config) { c.Nginx = []string{"ftp://x/status"} }, `--nginx "ftp://x/status": scheme`},
		{"redis password", func(c *Config) { c.Redis = []string{"redis://:secret@h:6379"} }, "--redis: \"redis://:xxxxx@h:6379\" carries a password"},
		{"redis port", func(c *Config) { c.Redis = []string{"h:99999"} }, "port \"99999\""},
		{"mysql password", func(c *Config) { c.MySQL = []string{"u:secret@tcp(h:3306)/db"} }, "--mysql \"u:[redacted]@tcp(h:3306)/db\": the DSN carries a password"},
		{"mysql garbage", func(c *Config) { c.MySQL = []string{"garbage"} }, "--mysql \"garbage\": not a DSN"},
		{"postgres password", func(c *Config) { c.Postgres = []string{"postgres://u:secret@h/db"} }, "carries a password"},
		{"postgres kv password", func(c *Config) { c.Postgres = []string{"host=h password=secret"} }, "(DSN with a password): the DSN carries a password"},
		{"password file missing", func(c *Config) { c.Redis = []string{"h:1"}; c.RedisPasswordFile = filepath.Join(dir, "nope") }, "--redis-password-file: open"},
		{"password file empty", func(c *Config) { c.Redis = []string{"h:1"}; c.RedisPasswordFile = empty }, "--redis-password-file: " + empty + " is empty"},
		{"timeout", func(c *Config) { c.Redis = []string{"h:1"}; c.Timeout = 0 }, "--timeout"},
		{"same nginx twice", func(c *Config) { c.Nginx = []string{"http://h:8080/a", "http://h:8080/b"} }, "--nginx: h:8080 is given twice"},
		{"same redis twice", func(c *Config) { c.Redis = []string{"h:6379", "redis://h/1"} }, "--redis: h:6379 is given twice"},
		{"nginx without host", func(c *Config) { c.Nginx = []string{":80/stub_status"} }, `--nginx ":80/stub_status": missing host`},
		{"nginx bad URL", func(c *Config) { c.Nginx = []string{"http://h:x/status"} }, `--nginx "http://h:x/status": invalid port`},
		{"same nginx with and without scheme", func(c *Config) { c.Nginx = []string{"http://h:8080/a", "h:8080/b"} }, "--nginx: h:8080 is given twice"},
		{"postgres host:port", func(c *Config) { c.Postgres = []string{"127.0.0.1:5432/postgres"} }, `--postgres "127.0.0.1:5432/postgres": neither a postgres:// URL nor key=value pairs`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

// TestNginxWithoutScheme: --nginx host:port/path, as curl takes it, means
// http://host:port/path.
func TestNginxWithoutScheme(t *testing.T) {
	page, err := os.ReadFile("testdata/stub_status.txt")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(page) }))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg := Config{Listen: "127.0.0.1:0", Nginx: []string{host + "/stub_status"}, Timeout: 5 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("--nginx %s/stub_status: %v", host, err)
	}
	base, _ := startAdapter(t, cfg)
	if got := value(t, parseText(t, scrape(t, base)), "nginx_up", map[string]string{"addr": host}); got != 1 {
		t.Fatalf("nginx_up = %v", got)
	}
	a, _ := New(cfg)
	b, _ := json.Marshal(a.EffectiveConfig())
	if !strings.Contains(string(b), `"http://`+host+`/stub_status"`) {
		t.Fatalf("/info does not show the URL with its scheme: %s", b)
	}
}

func TestRealNginx(t *testing.T) {
	addr := testdeps.StartNginx(t, `server {
	listen 127.0.0.1:{{PORT}};
	location = /stub_status { stub_status; }
	location / { return 200 "ok\n"; }
}`)
	if addr == "" {
		return
	}
	for range 3 {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	base, _ := startAdapter(t, Config{Listen: "127.0.0.1:0", Nginx: []string{"http://" + addr + "/stub_status"}, Timeout: 5 * time.Second})
	text := scrape(t, base)
	fams := parseText(t, text)
	if up := value(t, fams, "nginx_up", map[string]string{"addr": addr}); up != 1 {
		t.Fatalf("nginx_up = %v", up)
	}
	if n := value(t, fams, "nginx_http_requests_total", map[string]string{"addr": addr}); n < 3 {
		t.Fatalf("nginx_http_requests_total = %v, want at least the 3 requests made", n)
	}
	golden(t, "nginx-real.golden", shape(fams, nil))
	lint(t, text)
}

func TestRealRedis(t *testing.T) {
	addr := testdeps.StartRedis(t, "--requirepass", "s3cret", "--slowlog-log-slower-than", "0")
	if addr == "" {
		return
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg, _ := dbwire.ParseRedisTarget(addr)
	c, err := dbwire.DialRedis(ctx, tg, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range [][]string{{"SET", "a", "1"}, {"SET", "b", "2", "EX", "100"}, {"GET", "a"}, {"GET", "missing"}} {
		if _, err := c.Do(ctx, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	base, _ := startAdapter(t, Config{Listen: "127.0.0.1:0", Redis: []string{addr}, RedisPasswordFile: pwFile, Timeout: 5 * time.Second})
	text := scrape(t, base)
	fams := parseText(t, text)
	l := map[string]string{"addr": addr}
	for name, want := range map[string]float64{"redis_up": 1} {
		if got := value(t, fams, name, l); got != want {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, fams, "redis_db_keys", map[string]string{"addr": addr, "db": "db0"}); got != 2 {
		t.Fatalf("redis_db_keys{db0} = %v, want 2", got)
	}
	if got := value(t, fams, "redis_db_keys_expiring", map[string]string{"addr": addr, "db": "db0"}); got != 1 {
		t.Fatalf("redis_db_keys_expiring{db0} = %v, want 1", got)
	}
	if got := value(t, fams, "redis_commands_total", map[string]string{"addr": addr, "cmd": "get"}); got != 2 {
		t.Fatalf("redis_commands_total{cmd=get} = %v, want 2", got)
	}
	if got := value(t, fams, "redis_keyspace_misses_total", l); got != 1 {
		t.Fatalf("redis_keyspace_misses_total = %v, want 1", got)
	}
	if got := value(t, fams, "redis_slowlog_length", l); got < 4 {
		t.Fatalf("redis_slowlog_length = %v, want at least 4 (every command is slow here)", got)
	}
	golden(t, "redis-real.golden", shape(fams, nil))
	lint(t, text)

	// A wrong password is an auth failure, not a crash.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("wrong"), 0o600)
	base2, _ := startAdapter(t, Config{Listen: "127.0.0.1:0", Redis: []string{addr}, RedisPasswordFile: bad, Timeout: 5 * time.Second})
	fams = parseText(t, scrape(t, base2))
	if got := value(t, fams, "redis_up", l); got != 0 {
		t.Fatalf("redis_up with a wrong password = %v", got)
	}
	if got := value(t, fams, "podkit_metrics_scrape_errors_total", map[string]string{"target": addr, "reason": "auth"}); got != 1 {
		t.Fatalf("auth errors = %v, want 1", got)
	}

	// The server going away turns redis_up to 0; /metrics still answers.
	if _, err := c.Do(ctx, "SHUTDOWN", "NOSAVE"); err == nil {
		t.Fatal("SHUTDOWN answered")
	}
	testdeps.WaitFor(t, "redis_up 0 after SHUTDOWN", func() bool {
		return value(t, parseText(t, scrape(t, base)), "redis_up", l) == 0
	})
}

// mysqlKeep keeps, of mysqld_exporter's generic families (one per server
// variable, which change with the server version), those dashboards use.
func mysqlKeep(name string) bool {
	for _, p := range []string{"mysql_global_status_", "mysql_global_variables_"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			switch rest {
			case "commands_total", "handlers_total", "connection_errors_total", "buffer_pool_pages",
				"buffer_pool_page_changes_total", "innodb_row_ops_total",
				"uptime", "threads_connected", "threads_running", "queries", "questions", "slow_queries",
				"aborted_connects", "bytes_received", "bytes_sent", "max_used_connections",
				"max_connections", "innodb_buffer_pool_size", "table_open_cache", "open_tables":
				return true
			}
			return false
		}
	}
	return true
}

func TestRealMariaDB(t *testing.T) {
	dsn := testdeps.StartMariaDB(t)
	if dsn == "" {
		return
	}
	dsn, pwFile := adaptertest.SplitDSN(t, dsn, testdeps.MariaDBPassword)
	st, err := dbwire.ParseMySQL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := startAdapter(t, Config{Listen: "127.0.0.1:0", MySQL: []string{dsn}, MySQLPasswordFile: pwFile, Timeout: 10 * time.Second})
	text := scrape(t, base)
	fams := parseText(t, text)
	l := map[string]string{"addr": st.Addr}
	if got := value(t, fams, "mysql_up", l); got != 1 {
		t.Fatalf("mysql_up = %v", got)
	}
	if got := value(t, fams, "mysql_global_status_threads_connected", l); got < 1 {
		t.Fatalf("threads_connected = %v", got)
	}
	if got := value(t, fams, "mysql_global_variables_max_connections", l); got < 1 {
		t.Fatalf("max_connections = %v", got)
	}
	golden(t, "mysql-real.golden", shape(fams, mysqlKeep))
	lint(t, text)

	// Stop the server: mysql_up 0, /metrics still 200.
	pw, _ := secretfile.Read(pwFile)
	db, err := dbwire.Open(st, pw, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.Query(ctx, "SHUTDOWN"); err != nil {
		t.Fatalf("SHUTDOWN: %v", err)
	}
	testdeps.WaitFor(t, "mysql_up 0 after SHUTDOWN", func() bool {
		return value(t, parseText(t, scrape(t, base)), "mysql_up", l) == 0
	})
}

func TestRealPostgres(t *testing.T) {
	dsn := testdeps.StartPostgres(t)
	if dsn == "" {
		return
	}
	st, err := dbwire.ParsePostgres(dsn)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := startAdapter(t, Config{Listen: "127.0.0.1:0", Postgres: []string{dsn}, Timeout: 10 * time.Second})
	text := scrape(t, base)
	fams := parseText(t, text)
	l := map[string]string{"server": st.Addr}
	if got := value(t, fams, "pg_up", l); got != 1 {
		t.Fatalf("pg_up = %v", got)
	}
	if got := value(t, fams, "pg_stat_database_numbackends", map[string]string{"server": st.Addr, "datname": "postgres"}); got < 1 {
		t.Fatalf("numbackends{postgres} = %v", got)
	}
	if got := value(t, fams, "pg_replication_is_replica", l); got != 0 {
		t.Fatalf("pg_replication_is_replica = %v", got)
	}
	golden(t, "postgres-real.golden", shape(fams, nil))
	lint(t, text)

	// Stop the server (fast shutdown of the postmaster): pg_up 0.
	killPostgres(t, dsn)
	testdeps.WaitFor(t, "pg_up 0 after the postmaster stopped", func() bool {
		return value(t, parseText(t, scrape(t, base)), "pg_up", l) == 0
	})
}

// killPostgres stops the server behind dsn: it reads the postmaster's PID
// from postmaster.pid in the data directory and sends it SIGINT (a fast
// shutdown).
func killPostgres(t *testing.T, dsn string) {
	t.Helper()
	st, _ := dbwire.ParsePostgres(dsn)
	db, err := dbwire.Open(st, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := db.Query(ctx, "SHOW data_directory")
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("SHOW data_directory: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(res.Rows[0][0].String, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		t.Fatalf("postmaster.pid: %q", b)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
}

// TestInfo checks that /info shows DSNs without passwords.
func TestEffectiveConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("x"), 0o600)
	a, err := New(Config{Listen: "127.0.0.1:0", MySQL: []string{"u@tcp(h:3306)/db"}, Postgres: []string{"postgres://u@h:5432/db"},
		MySQLPasswordFile: pw, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a.EffectiveConfig())
	if !strings.Contains(string(b), `"mysql_password_file":"`+pw+`"`) || !strings.Contains(string(b), "postgres://u@h:5432/db") {
		t.Fatalf("effective config: %s", b)
	}
}

var _ = errors.New
