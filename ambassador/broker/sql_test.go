package broker

import (
	"net"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestTCPMariaDB: a real MariaDB behind the tcp mode, with the mysql
// handshake as the health check, used by the mariadb client.
func TestTCPMariaDB(t *testing.T) {
	client := testdeps.Binary(t, "mariadb")
	if client == "" {
		return
	}
	dsn := testdeps.StartMariaDB(t)
	if dsn == "" {
		return
	}
	addr := dsn[strings.Index(dsn, "tcp(")+4 : strings.Index(dsn, ")")]
	cfg := flagConfig(static(addr), TCP)
	cfg.Upstream.HealthCheck.Type = CheckMySQL
	r := start(t, cfg)
	testdeps.WaitFor(t, "the server healthy", func() bool {
		e, _ := r.endpoint("up", addr)
		return e.Health == "healthy" && e.Usable
	})
	host, port, _ := net.SplitHostPort(r.addr("up"))
	out, err := exec.Command(client, "--protocol=TCP", "-h", host, "-P", port, "-u", testdeps.MariaDBUser,
		"-p"+testdeps.MariaDBPassword, testdeps.MariaDBDatabase, "-N", "-e",
		"CREATE TABLE t (v INT); INSERT INTO t VALUES (41); SELECT v+1 FROM t").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("mariadb through the broker: %q, %v", out, err)
	}
	if n := r.counter("connections", "up", addr); n != 1 {
		t.Errorf("connections = %v, want 1", n)
	}
}

// TestTCPPostgres: a real PostgreSQL behind the tcp mode, with the
// SSLRequest probe as the health check, used by psql.
func TestTCPPostgres(t *testing.T) {
	client := testdeps.Binary(t, "psql")
	if client == "" {
		return
	}
	dsn := testdeps.StartPostgres(t)
	if dsn == "" {
		return
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg := flagConfig(static(u.Host), TCP)
	cfg.Upstream.HealthCheck.Type = CheckPostgres
	r := start(t, cfg)
	testdeps.WaitFor(t, "the server healthy", func() bool {
		e, _ := r.endpoint("up", u.Host)
		return e.Health == "healthy" && e.Usable
	})
	u.Host = r.addr("up")
	out, err := exec.Command(client, u.String(), "-tAc", "SELECT 40 + 2").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("psql through the broker: %q, %v", out, err)
	}
}
