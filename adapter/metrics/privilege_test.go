package metrics

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/adapter/internal/adaptertest"
	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/internal/testdeps"
)

// has reports whether fams has a sample of name whose labels include want.
func has(fams map[string]*familyT, name string, want map[string]string) bool {
	f, ok := fams[name]
	if !ok {
		return false
	}
next:
	for _, s := range f.samples {
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return true
	}
	return false
}

// TestMySQLCollectorFailsAlone: an account without SLAVE MONITOR (the
// replication privilege of MariaDB 10.5+) fails the slave_status
// collector alone, as mysqld_exporter does: mysql_up stays 1, status and
// variables are still exported, the failure is counted with reason
// permission (not auth), and a GRANT on the running server fixes it.
func TestMySQLCollectorFailsAlone(t *testing.T) {
	admin, ok := adaptertest.MariaDB(t)
	if !ok {
		return
	}
	adaptertest.SQLAdmin(t, admin, testdeps.MariaDBPassword, "CREATE USER 'exporter'@'%' IDENTIFIED BY 'exp0rter'")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("exp0rter\n"), 0o600)
	base, logs := startAdapter(t, Config{Listen: "127.0.0.1:0", MySQL: []string{"exporter@tcp(" + admin.Addr + ")/"}, MySQLPasswordFile: pwFile, Timeout: 10 * time.Second})
	text := scrape(t, base)
	fams := parseText(t, text)
	l := map[string]string{"addr": admin.Addr}
	if got := value(t, fams, "mysql_up", l); got != 1 {
		t.Fatalf("mysql_up = %v with only the replication privilege missing, want 1", got)
	}
	// A server started a moment ago may report an uptime of 0: what
	// counts is that the status collector's series are there.
	if !has(fams, "mysql_global_status_uptime", l) {
		t.Fatalf("no mysql_global_status_uptime: the global status collector exported nothing")
	}
	if got := value(t, fams, "mysql_global_status_uptime", l); got < 0 {
		t.Fatalf("mysql_global_status_uptime = %v", got)
	}
	if got := value(t, fams, "mysql_global_variables_max_connections", l); got < 1 {
		t.Fatalf("max_connections = %v", got)
	}
	for collector, want := range map[string]float64{"global_status": 1, "global_variables": 1, "slave_status": 0} {
		if got := value(t, fams, "mysql_exporter_collector_success", map[string]string{"addr": admin.Addr, "collector": "collect." + collector}); got != want {
			t.Errorf("mysql_exporter_collector_success{collector=collect.%s} = %v, want %v", collector, got, want)
		}
		if got := value(t, fams, "podkit_metrics_collector_success", map[string]string{"source": "mysql", "target": admin.Addr, "collector": collector}); got != want {
			t.Errorf("podkit_metrics_collector_success{collector=%s} = %v, want %v", collector, got, want)
		}
	}
	if !has(fams, "mysql_exporter_collector_duration_seconds", map[string]string{"addr": admin.Addr, "collector": "collect.slave_status"}) {
		t.Errorf("no mysql_exporter_collector_duration_seconds{collector=collect.slave_status}")
	}
	if got := value(t, fams, "podkit_metrics_scrape_errors_total", map[string]string{"target": admin.Addr, "reason": "permission"}); got != 1 {
		t.Errorf(`podkit_metrics_scrape_errors_total{reason="permission"} = %v, want 1`, got)
	}
	if has(fams, "podkit_metrics_scrape_errors_total", map[string]string{"target": admin.Addr, "reason": "auth"}) &&
		value(t, fams, "podkit_metrics_scrape_errors_total", map[string]string{"target": admin.Addr, "reason": "auth"}) != 0 {
		t.Errorf("a missing privilege was counted as auth")
	}
	if !strings.Contains(logs.String(), `"collector":"slave_status"`) || !strings.Contains(logs.String(), `"reason":"permission"`) ||
		!strings.Contains(logs.String(), "SLAVE MONITOR") {
		t.Errorf("the collector failure is not logged with its collector, reason and error:\n%s", logs)
	}
	lint(t, text)

	adaptertest.SQLAdmin(t, admin, testdeps.MariaDBPassword, "GRANT SLAVE MONITOR ON *.* TO 'exporter'@'%'")
	testdeps.WaitFor(t, "slave_status to succeed after the GRANT", func() bool {
		return value(t, parseText(t, scrape(t, base)), "mysql_exporter_collector_success", map[string]string{"addr": admin.Addr, "collector": "collect.slave_status"}) == 1
	})
}

// TestPostgresCollectorFailsAlone: a role that may not connect to one
// database cannot read its size (pg_database_size needs CONNECT or
// pg_read_all_stats): the database collector fails alone, pg_up stays 1,
// and granting pg_monitor fixes it.
func TestPostgresCollectorFailsAlone(t *testing.T) {
	dsn := testdeps.StartPostgres(t)
	if dsn == "" {
		return
	}
	admin, _ := dbwire.ParsePostgres(dsn)
	adaptertest.SQLAdmin(t, admin, "", "CREATE DATABASE private", "REVOKE CONNECT ON DATABASE private FROM PUBLIC", "CREATE ROLE exporter LOGIN")
	user := strings.Replace(dsn, testdeps.PostgresUser+"@", "exporter@", 1)
	base, logs := startAdapter(t, Config{Listen: "127.0.0.1:0", Postgres: []string{user}, Timeout: 10 * time.Second})
	text := scrape(t, base)
	fams := parseText(t, text)
	l := map[string]string{"server": admin.Addr}
	if got := value(t, fams, "pg_up", l); got != 1 {
		t.Fatalf("pg_up = %v with only pg_database_size refused, want 1", got)
	}
	if got := value(t, fams, "pg_stat_database_numbackends", map[string]string{"server": admin.Addr, "datname": "postgres"}); got < 1 {
		t.Fatalf("numbackends = %v", got)
	}
	if got := value(t, fams, "pg_scrape_collector_success", map[string]string{"server": admin.Addr, "collector": "database"}); got != 0 {
		t.Errorf("pg_scrape_collector_success{collector=database} = %v, want 0", got)
	}
	for _, c := range []string{"stat_database", "replication", "postmaster"} {
		if got := value(t, fams, "pg_scrape_collector_success", map[string]string{"server": admin.Addr, "collector": c}); got != 1 {
			t.Errorf("pg_scrape_collector_success{collector=%s} = %v, want 1", c, got)
		}
	}
	if got := value(t, fams, "podkit_metrics_scrape_errors_total", map[string]string{"target": admin.Addr, "reason": "permission"}); got != 1 {
		t.Errorf(`podkit_metrics_scrape_errors_total{reason="permission"} = %v, want 1`, got)
	}
	if !strings.Contains(logs.String(), `"collector":"database"`) {
		t.Errorf("not logged:\n%s", logs)
	}
	lint(t, text)

	adaptertest.SQLAdmin(t, admin, "", "GRANT pg_monitor TO exporter")
	fams = parseText(t, scrape(t, base))
	if got := value(t, fams, "pg_scrape_collector_success", map[string]string{"server": admin.Addr, "collector": "database"}); got != 1 {
		t.Errorf("after GRANT pg_monitor: pg_scrape_collector_success{collector=database} = %v", got)
	}
	if got := value(t, fams, "pg_database_size_bytes", map[string]string{"server": admin.Addr, "datname": "private"}); got <= 0 {
		t.Errorf("pg_database_size_bytes{private} = %v", got)
	}
}

// TestRedisCollectorFailsAlone: an ACL user that may run INFO but not
// SLOWLOG keeps redis_up 1 and the INFO metrics; the slowlog collector
// fails alone with reason permission.
func TestRedisCollectorFailsAlone(t *testing.T) {
	addr := testdeps.StartRedis(t)
	if addr == "" {
		return
	}
	pwFile := testdeps.RedisUser(t, addr, "exporter", "pw", "+info")
	base, _ := startAdapter(t, Config{Listen: "127.0.0.1:0", Redis: []string{fmt.Sprintf("redis://exporter@%s", addr)}, RedisPasswordFile: pwFile, Timeout: 5 * time.Second})
	fams := parseText(t, scrape(t, base))
	l := map[string]string{"addr": addr}
	if got := value(t, fams, "redis_up", l); got != 1 {
		t.Fatalf("redis_up = %v without SLOWLOG, want 1", got)
	}
	if got := value(t, fams, "redis_connected_clients", l); got < 1 {
		t.Fatalf("redis_connected_clients = %v", got)
	}
	for collector, want := range map[string]float64{"info": 1, "slowlog": 0} {
		if got := value(t, fams, "podkit_metrics_collector_success", map[string]string{"source": "redis", "target": addr, "collector": collector}); got != want {
			t.Errorf("podkit_metrics_collector_success{collector=%s} = %v, want %v", collector, got, want)
		}
	}
	if got := value(t, fams, "podkit_metrics_scrape_errors_total", map[string]string{"target": addr, "reason": "permission"}); got != 1 {
		t.Errorf(`podkit_metrics_scrape_errors_total{reason="permission"} = %v, want 1`, got)
	}
	testdeps.RedisUser(t, addr, "exporter", "pw", "+slowlog") // grant what was missing
	fams = parseText(t, scrape(t, base))
	if got := value(t, fams, "podkit_metrics_collector_success", map[string]string{"source": "redis", "target": addr, "collector": "slowlog"}); got != 1 {
		t.Errorf("after +slowlog: slowlog collector = %v", got)
	}
	if !has(fams, "redis_slowlog_length", l) {
		t.Errorf("no redis_slowlog_length after +slowlog")
	}
}
