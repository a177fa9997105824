package health

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/adapter/internal/adaptertest"
	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/testdeps"
)

type running struct {
	base, admin string
	logs        *testdeps.Buffer
}

// start runs the adapter in-process under the container contract, with
// its admin listener on a free port.
func start(t *testing.T, cfg Config) running {
	t.Helper()
	ln, adminLn := adaptertest.Listen(t), adaptertest.Listen(t)
	cfg.Listener = ln
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := adaptertest.Run(t, a, adminLn)
	r := running{base: "http://" + ln.Addr().String(), admin: "http://" + adminLn.Addr().String(), logs: logs}
	testdeps.WaitFor(t, "the adapter to answer /livez", func() bool {
		code, _ := get(t, r.base+"/livez")
		return code == 200
	})
	if got := a.Addr(); got == nil || got.String() != ln.Addr().String() {
		t.Fatalf("Addr() = %v, want the listener's %v", got, ln.Addr())
	}
	return r
}

// get returns the status and the decoded JSON body.
func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s: body is not JSON: %v\n%s", url, err, b)
		}
	} else {
		body = map[string]any{"text": string(b)}
	}
	return resp.StatusCode, body
}

// waitStatus polls url until it answers code, and returns the last body.
func waitStatus(t *testing.T, url string, code int) map[string]any {
	t.Helper()
	var body map[string]any
	var got int
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body = get(t, url)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d; body %v", url, got, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func reason(body map[string]any) string {
	last, _ := body["last"].(map[string]any)
	s, _ := last["reason"].(string)
	return s
}

// metric returns the value of a sample line from the admin /metrics.
func metric(t *testing.T, admin, line string) string {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, line+" ") {
			return strings.TrimPrefix(l, line+" ")
		}
	}
	return ""
}

func fast(cfg Config) Config {
	cfg.Listen = "127.0.0.1:0"
	cfg.Period = 200 * time.Millisecond
	cfg.Timeout = 200 * time.Millisecond
	return cfg
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
		{"two targets", func(c *Config) { c.Redis = "h:1"; c.Postgres = "postgres://u@h/db" }, "give only one"},
		{"bad redis", func(c *Config) { c.Redis = "redis://:pw@h" }, "--redis: "},
		{"mysql password", func(c *Config) { c.MySQL = "u:pw@tcp(h:1)/db" }, "--mysql: the DSN carries a password"},
		{"bad expect", func(c *Config) { c.Redis = "h:1"; c.Expect = "/(/" }, "--expect: bad regexp"},
		{"timeout > period", func(c *Config) { c.Redis = "h:1"; c.Timeout = time.Minute }, "--timeout: 1m0s is longer than --period"},
		{"period", func(c *Config) { c.Redis = "h:1"; c.Period = 0 }, "--period"},
		{"max-lag", func(c *Config) { c.Redis = "h:1"; c.MaxLag = -time.Second }, "--max-lag"},
		{"max-latency", func(c *Config) { c.Redis = "h:1"; c.MaxLatency = -time.Second }, "--max-latency"},
		{"empty password file", func(c *Config) { c.Redis = "h:1"; c.PasswordFile = empty }, "--password-file: " + empty + " is empty"},
		{"empty redis command", func(c *Config) { c.Redis = "h:1"; c.Query = "   " }, "--query: empty Redis command"},
		{"listen", func(c *Config) { c.Redis = "h:1"; c.Listen = "x" }, "--listen"},
		{"postgres host:port", func(c *Config) { c.Postgres = "127.0.0.1:5432/postgres" }, "--postgres: neither a postgres:// URL nor key=value pairs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), ":pw@") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestParseExpect(t *testing.T) {
	for _, tc := range []struct {
		expect, value string
		match         bool
	}{
		{"", "anything", true},
		{"PONG", "PONG", true},
		{"PONG", "pong", false},
		{"/^1$/", "1", true},
		{"/^1$/", "10", false},
		{"/", "/", true}, // a lone slash is a literal
	} {
		e, err := parseExpect(tc.expect)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.match(tc.value); got != tc.match {
			t.Errorf("expect %q on %q = %v, want %v", tc.expect, tc.value, got, tc.match)
		}
	}
}

func TestParseLag(t *testing.T) {
	for in, want := range map[string]time.Duration{"10s": 10 * time.Second, "1.5": 1500 * time.Millisecond, "0": 0, "250ms": 250 * time.Millisecond} {
		if got, err := parseLag(in); err != nil || got != want {
			t.Errorf("parseLag(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "-1s", "1MB"} {
		if _, err := parseLag(in); err == nil {
			t.Errorf("parseLag(%q) accepted", in)
		}
	}
}

// TestCommandUsage runs the real command line: bad flags exit 2 with a
// message naming the flag.
func TestCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"health"}, "no target"},
		{[]string{"health", "--redis", "h:1", "--period", "x"}, "--period"},
		{[]string{"health", "--redis", "h:1", "extra"}, "unexpected argument"},
	} {
		var stderr bytes.Buffer
		code := cli.Main(context.Background(), []cli.Command{Command()}, tc.args, cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestUnreachable: before any check passes, /startupz and /readyz are 503
// and /livez is 200.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := start(t, fast(Config{Redis: addr}))
	body := waitStatus(t, r.base+"/readyz", 503)
	testdeps.WaitFor(t, "a failed check", func() bool {
		_, body = get(t, r.base+"/readyz")
		return reason(body) == ReasonConnect
	})
	if code, body := get(t, r.base+"/startupz"); code != 503 || body["status"] != "starting" {
		t.Fatalf("/startupz: %d %v", code, body)
	}
	if code, _ := get(t, r.base+"/livez"); code != 200 {
		t.Fatalf("/livez: %d", code)
	}
	if v := metric(t, r.admin, `podkit_health_check_failures_total{reason="connect"}`); v == "" || v == "0" {
		t.Fatalf("connect failures = %q", v)
	}
	if v := metric(t, r.admin, `podkit_health_up`); v != "0" {
		t.Fatalf("podkit_health_up = %q", v)
	}
}

func TestRedis(t *testing.T) {
	addr := testdeps.StartRedis(t, "--requirepass", "pw")
	if addr == "" {
		return
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("pw\n"), 0o600)
	r := start(t, fast(Config{Redis: addr, PasswordFile: pwFile, Expect: "PONG"}))
	body := waitStatus(t, r.base+"/readyz", 200)
	last := body["last"].(map[string]any)
	if last["ok"] != true || last["value"] != "PONG" || last["replica"] != false {
		t.Fatalf("last result: %v", last)
	}
	if _, ok := last["latency_seconds"].(float64); !ok {
		t.Fatalf("no latency in %v", last)
	}
	if code, _ := get(t, r.base+"/startupz"); code != 200 {
		t.Fatalf("/startupz: %d", code)
	}
	if code, body := get(t, r.base+"/readyz?verbose"); code != 200 || body["history"] == nil || body["config"] == nil {
		t.Fatalf("/readyz?verbose: %d %v", code, body)
	}
	if code, body := get(t, r.base+"/readyz?lag=1s"); code != 200 || body["max_lag_seconds"] != 1.0 {
		t.Fatalf("/readyz?lag=1s on a primary: %d %v", code, body)
	}
	if code, body := get(t, r.base+"/readyz?lag=soon"); code != 400 || !strings.Contains(body["reason"].(string), `lag="soon"`) {
		t.Fatalf("/readyz?lag=soon: %d %v", code, body)
	}
	if v := metric(t, r.admin, "podkit_health_up"); v != "1" {
		t.Fatalf("podkit_health_up = %q", v)
	}
	if v := metric(t, r.admin, "podkit_health_last_success_timestamp_seconds"); v == "" || v == "0" {
		t.Fatalf("last success = %q", v)
	}
	if v := metric(t, r.admin, "podkit_health_check_duration_seconds_count"); v == "" || v == "0" {
		t.Fatalf("duration histogram count = %q", v)
	}

	// Kill the database: /readyz turns 503, up 0, /metrics still 200.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg, _ := dbwire.ParseRedisTarget(addr)
	c, err := dbwire.DialRedis(ctx, tg, "pw")
	if err != nil {
		t.Fatal(err)
	}
	c.Do(ctx, "SHUTDOWN", "NOSAVE")
	c.Close()
	body = waitStatus(t, r.base+"/readyz", 503)
	if reason(body) != ReasonConnect {
		t.Fatalf("reason %q, want connect: %v", reason(body), body)
	}
	if v := metric(t, r.admin, "podkit_health_up"); v != "0" {
		t.Fatalf("podkit_health_up = %q after the kill", v)
	}
	if code, _ := get(t, r.base+"/livez"); code != 200 {
		t.Fatalf("/livez after the kill: %d", code)
	}
	if code, _ := get(t, r.base+"/startupz"); code != 200 {
		t.Fatalf("/startupz after the kill: %d (it passed once)", code)
	}
	if !strings.Contains(r.logs.String(), `"msg":"health check failing"`) {
		t.Fatalf("failure not logged:\n%s", r.logs)
	}
}

// TestRedisReplica: a real replica reports its lag; with its primary gone
// ?lag= turns /readyz 503 while a probe without a lag limit stays 200.
func TestRedisReplica(t *testing.T) {
	primary := testdeps.StartRedis(t)
	if primary == "" {
		return
	}
	host, port, _ := net.SplitHostPort(primary)
	replica := testdeps.StartRedis(t, "--replicaof", host, port)
	r := start(t, fast(Config{Redis: replica}))
	testdeps.WaitFor(t, "the replica to link", func() bool {
		code, body := get(t, r.base+"/readyz?lag=1h")
		last, _ := body["last"].(map[string]any)
		return code == 200 && last["replica"] == true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg, _ := dbwire.ParseRedisTarget(primary)
	c, err := dbwire.DialRedis(ctx, tg, "")
	if err != nil {
		t.Fatal(err)
	}
	c.Do(ctx, "SHUTDOWN", "NOSAVE")
	c.Close()
	body := waitStatus(t, r.base+"/readyz?lag=1h", 503)
	if !strings.Contains(body["reason"].(string), "replication is not running") {
		t.Fatalf("reason: %v", body["reason"])
	}
	if code, _ := get(t, r.base+"/readyz"); code != 200 {
		t.Fatalf("/readyz without a lag limit: %d", code)
	}
	if v := metric(t, r.admin, "podkit_health_replication_lag_seconds"); v != "+Inf" {
		t.Fatalf("podkit_health_replication_lag_seconds = %q with replication stopped, want +Inf", v)
	}
}

func TestMariaDB(t *testing.T) {
	dsn := testdeps.StartMariaDB(t)
	if dsn == "" {
		return
	}
	dsn, pwFile := adaptertest.SplitDSN(t, dsn, testdeps.MariaDBPassword)
	cfg := func(q, expect string, maxLatency time.Duration) Config {
		c := fast(Config{MySQL: dsn, PasswordFile: pwFile, Query: q, Expect: expect, MaxLatency: maxLatency})
		c.Timeout = 2 * time.Second
		c.Period = 2 * time.Second
		return c
	}
	t.Run("expect", func(t *testing.T) {
		r := start(t, cfg("SELECT @@version", "/MariaDB/", 0))
		body := waitStatus(t, r.base+"/readyz?lag=5s", 200)
		if last := body["last"].(map[string]any); last["replica"] != false {
			t.Fatalf("a standalone server reported as a replica: %v", last)
		}
	})
	t.Run("expect mismatch", func(t *testing.T) {
		r := start(t, cfg("SELECT 1", "2", 0))
		testdeps.WaitFor(t, "a failed check", func() bool {
			_, body := get(t, r.base+"/readyz")
			return reason(body) == ReasonExpect
		})
	})
	t.Run("max latency", func(t *testing.T) {
		r := start(t, cfg("SELECT SLEEP(0.3)", "", 50*time.Millisecond))
		testdeps.WaitFor(t, "a slow check", func() bool {
			_, body := get(t, r.base+"/readyz")
			return reason(body) == ReasonLatency
		})
	})
	t.Run("query error", func(t *testing.T) {
		r := start(t, cfg("SELECT * FROM no_such_table", "", 0))
		testdeps.WaitFor(t, "a failed query", func() bool {
			_, body := get(t, r.base+"/readyz")
			return reason(body) == ReasonQuery
		})
	})
	t.Run("killed", func(t *testing.T) {
		r := start(t, fast(Config{MySQL: dsn, PasswordFile: pwFile}))
		waitStatus(t, r.base+"/readyz", 200)
		st, _ := dbwire.ParseMySQL(dsn)
		db, err := dbwire.Open(st, testdeps.MariaDBPassword, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.Query(ctx, "SHUTDOWN"); err != nil {
			t.Fatal(err)
		}
		body := waitStatus(t, r.base+"/readyz", 503)
		if got := reason(body); got != ReasonConnect && got != ReasonTimeout {
			t.Fatalf("reason %q after SHUTDOWN: %v", got, body)
		}
		if v := metric(t, r.admin, "podkit_health_up"); v != "0" {
			t.Fatalf("podkit_health_up = %q", v)
		}
	})
}

func TestPostgres(t *testing.T) {
	dsn := testdeps.StartPostgres(t)
	if dsn == "" {
		return
	}
	t.Run("expect", func(t *testing.T) {
		r := start(t, fast(Config{Postgres: dsn, Query: "SELECT current_database()", Expect: "postgres", MaxLag: time.Second}))
		body := waitStatus(t, r.base+"/readyz", 200)
		last := body["last"].(map[string]any)
		if last["value"] != "postgres" || last["replica"] != false || last["replication_lag_seconds"] != 0.0 {
			t.Fatalf("last: %v", last)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		c := fast(Config{Postgres: dsn, Query: "SELECT pg_sleep(5)"})
		r := start(t, c)
		testdeps.WaitFor(t, "a check to time out", func() bool {
			_, body := get(t, r.base+"/readyz")
			return reason(body) == ReasonTimeout
		})
	})
}

func TestRedisWrongPassword(t *testing.T) {
	addr := testdeps.StartRedis(t, "--requirepass", "pw")
	if addr == "" {
		return
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("not-the-password\n"), 0o600)
	r := start(t, fast(Config{Redis: addr, PasswordFile: pwFile}))
	testdeps.WaitFor(t, "an auth failure", func() bool {
		_, body := get(t, r.base+"/readyz")
		return reason(body) == ReasonAuth
	})
	if strings.Contains(r.logs.String(), "not-the-password") {
		t.Fatal("the password is in the log")
	}
}

// TestMariaDBMissingGrant: the deployment examples' account without
// SLAVE MONITOR. The replication status cannot be read: with --max-lag
// /readyz is 503 naming the missing privilege, the log says so once, and
// podkit_health_check_failures_total{reason="permission"} counts it.
// Granting the privilege on the running server turns /readyz 200 without
// restarting the adapter.
func TestMariaDBMissingGrant(t *testing.T) {
	admin, ok := adaptertest.MariaDB(t)
	if !ok {
		return
	}
	adaptertest.SQLAdmin(t, admin, testdeps.MariaDBPassword,
		"CREATE USER 'health'@'%' IDENTIFIED BY 'h3alth'",
		"CREATE USER 'health2'@'%' IDENTIFIED BY 'h3alth'")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("h3alth\n"), 0o600)

	t.Run("max-lag", func(t *testing.T) {
		c := fast(Config{MySQL: "health@tcp(" + admin.Addr + ")/", PasswordFile: pwFile, Query: "SELECT @@version", Expect: "/MariaDB/", MaxLag: 30 * time.Second})
		c.Period, c.Timeout = time.Second, time.Second
		r := start(t, c)
		var body map[string]any
		testdeps.WaitFor(t, "/readyz 503 naming the privilege", func() bool {
			var code int
			code, body = get(t, r.base+"/readyz")
			why, _ := body["reason"].(string)
			return code == 503 && strings.Contains(why, "permission") && strings.Contains(why, "SLAVE MONITOR")
		})
		if v := metric(t, r.admin, `podkit_health_check_failures_total{reason="permission"}`); v == "" || v == "0" {
			t.Fatalf(`podkit_health_check_failures_total{reason="permission"} = %q; body %v`, v, body)
		}
		if v := metric(t, r.admin, `podkit_health_replication_lag_seconds`); v != "NaN" {
			t.Fatalf("podkit_health_replication_lag_seconds = %q while the lag is unknown, want NaN", v)
		}
		testdeps.WaitFor(t, "a log line about the replication status", func() bool {
			return strings.Contains(r.logs.String(), `"msg":"replication status unreadable"`) &&
				strings.Contains(r.logs.String(), `"reason":"permission"`)
		})

		adaptertest.SQLAdmin(t, admin, testdeps.MariaDBPassword, "GRANT SLAVE MONITOR ON *.* TO 'health'@'%'")
		body = waitStatus(t, r.base+"/readyz", 200)
		if last := body["last"].(map[string]any); last["replica"] != false || last["replication_lag_seconds"] != 0.0 {
			t.Fatalf("after the GRANT: %v", last)
		}
		if v := metric(t, r.admin, `podkit_health_replication_lag_seconds`); v != "0" {
			t.Fatalf("podkit_health_replication_lag_seconds = %q after the GRANT", v)
		}
		if !strings.Contains(r.logs.String(), `"msg":"replication status readable"`) {
			t.Fatalf("no log line for the recovery:\n%s", r.logs)
		}
	})

	// Without a lag limit /readyz stays 200, but the error is not hidden:
	// a warning in the body, the log and the metric.
	t.Run("no lag limit", func(t *testing.T) {
		c := fast(Config{MySQL: "health2@tcp(" + admin.Addr + ")/", PasswordFile: pwFile})
		c.Period, c.Timeout = time.Second, time.Second
		r := start(t, c)
		body := waitStatus(t, r.base+"/readyz", 200)
		testdeps.WaitFor(t, "a warning in /readyz", func() bool {
			_, body = get(t, r.base+"/readyz")
			w, _ := body["warning"].(string)
			return strings.Contains(w, "permission") && strings.Contains(w, "SLAVE MONITOR")
		})
		if v := metric(t, r.admin, `podkit_health_check_failures_total{reason="permission"}`); v == "" || v == "0" {
			t.Fatalf(`podkit_health_check_failures_total{reason="permission"} = %q`, v)
		}
		if !strings.Contains(r.logs.String(), `"msg":"replication status unreadable"`) {
			t.Fatalf("not logged:\n%s", r.logs)
		}
	})

	// A query the account may not run is a permission failure, not auth.
	t.Run("query", func(t *testing.T) {
		c := fast(Config{MySQL: "health2@tcp(" + admin.Addr + ")/", PasswordFile: pwFile, Query: "SELECT COUNT(*) FROM mysql.user"})
		c.Period, c.Timeout = time.Second, time.Second
		r := start(t, c)
		testdeps.WaitFor(t, "a permission failure", func() bool {
			_, body := get(t, r.base+"/readyz")
			return reason(body) == ReasonPermission
		})
	})
}

// TestPostgresUnprivileged: the replication query needs no privilege
// beyond logging in: a plain role passes /readyz with a lag limit.
func TestPostgresUnprivileged(t *testing.T) {
	dsn := testdeps.StartPostgres(t)
	if dsn == "" {
		return
	}
	admin, _ := dbwire.ParsePostgres(dsn)
	adaptertest.SQLAdmin(t, admin, "", "CREATE ROLE health LOGIN", "CREATE TABLE secret (x int)")
	user := strings.Replace(dsn, testdeps.PostgresUser+"@", "health@", 1)
	r := start(t, fast(Config{Postgres: user, MaxLag: time.Second}))
	body := waitStatus(t, r.base+"/readyz", 200)
	if last := body["last"].(map[string]any); last["replication_lag_seconds"] != 0.0 {
		t.Fatalf("last: %v", last)
	}
	r2 := start(t, fast(Config{Postgres: user, Query: "SELECT count(*) FROM secret"}))
	testdeps.WaitFor(t, "a permission failure", func() bool {
		_, body := get(t, r2.base+"/readyz")
		return reason(body) == ReasonPermission
	})
}

// TestRedisNoPerm: an ACL user that may PING but not INFO.
func TestRedisNoPerm(t *testing.T) {
	addr := testdeps.StartRedis(t)
	if addr == "" {
		return
	}
	pwFile := testdeps.RedisUser(t, addr, "health", "pw", "+ping")
	r := start(t, fast(Config{Redis: "redis://health@" + addr, PasswordFile: pwFile, MaxLag: time.Minute}))
	testdeps.WaitFor(t, "/readyz 503 naming the permission", func() bool {
		code, body := get(t, r.base+"/readyz")
		why, _ := body["reason"].(string)
		last, _ := body["last"].(map[string]any)
		return code == 503 && strings.Contains(why, "NOPERM") && last["replication_lag_reason"] == ReasonPermission
	})
	if v := metric(t, r.admin, `podkit_health_check_failures_total{reason="permission"}`); v == "" || v == "0" {
		t.Fatalf(`podkit_health_check_failures_total{reason="permission"} = %q`, v)
	}
	testdeps.RedisUser(t, addr, "health", "pw", "+info") // grant what was missing
	waitStatus(t, r.base+"/readyz", 200)
}
