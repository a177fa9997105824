//go:build container

package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/podkit/podkit/e2e/containertest"
)

// nginxStatusConf adds a stub_status server on :8080 to the peer image's
// nginx, as the seed's nginx + nginx-prometheus-exporter pod does.
const nginxStatusConf = `server {
	listen 8080;
	location = /stub_status { stub_status; }
	location / { return 200 "ok\n"; }
}`

// metricValue returns the value of the sample named by prefix (name and
// labels) in a /metrics body, or -1.
func metricValue(body, prefix string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `(?:\{[^}]*\})? (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestPodNginxMetrics: nginx and `podkit metrics` in one pod (shared
// network namespace). The adapter serves nginx-prometheus-exporter's
// metrics on :9113, scraped from nginx's stub_status over loopback.
func TestPodNginxMetrics(t *testing.T) {
	nginx := containertest.Run(t, containertest.Options{
		Name:    "nginx",
		Image:   containertest.PeerImage(),
		Cmd:     []string{"sh", "-c", "printf '%s' \"$CONF\" > /etc/nginx/conf.d/status.conf && exec nginx -g 'daemon off;'"},
		Env:     []string{"CONF=" + nginxStatusConf},
		Publish: []string{"8080", "9113", "9901"},
	})
	adapter := containertest.Run(t, containertest.Options{
		Name:      "metrics",
		Image:     containertest.Image(),
		Cmd:       []string{"metrics", "--nginx", "http://127.0.0.1:8080/stub_status", "--listen", "0.0.0.0:9113", "--insecure-listen", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s"},
		NetworkOf: nginx,
	})
	app := "http://" + nginx.Addr(t, "8080")
	metrics := "http://" + nginx.Addr(t, "9113") + "/metrics"
	waitHTTP(t, "http://"+nginx.Addr(t, "9901")+"/readyz", 200)
	eventually(t, "nginx_up 1", func() bool {
		code, body, err := get(metrics)
		return err == nil && code == 200 && metricValue(body, "nginx_up") == 1
	})
	for range 5 {
		if code, _, err := get(app + "/"); err != nil || code != 200 {
			t.Fatalf("nginx: %d %v", code, err)
		}
	}
	_, body, _ := get(metrics)
	if n := metricValue(body, "nginx_http_requests_total"); n < 5 {
		t.Fatalf("nginx_http_requests_total = %v after 5 requests:\n%s", n, body)
	}
	for _, name := range []string{"nginx_connections_active", "nginx_connections_accepted", "nginx_connections_handled",
		"nginx_connections_reading", "nginx_connections_writing", "nginx_connections_waiting", "podkit_metrics_scrape_duration_seconds"} {
		if metricValue(body, name) < 0 {
			t.Errorf("no %s in /metrics", name)
		}
	}
	// SIGTERM: drain and exit 0.
	if code := adapter.Stop(t, 20); code != 0 {
		t.Fatalf("metrics exited %d on stop", code)
	}
}

// mariadbExporterScript runs MariaDB with an exporter account that lacks
// the replication privilege (SLAVE MONITOR), on the pod's loopback.
const mariadbExporterScript = `set -e
printf 'exp0rter\n' > /secrets/password
chmod 0644 /secrets/password
mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
cat > /tmp/init.sql <<SQL
CREATE USER IF NOT EXISTS 'exporter'@'127.0.0.1' IDENTIFIED BY 'exp0rter';
SQL
exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=127.0.0.1 --port=3306 --socket=/tmp/mysqld.sock --pid-file=/tmp/mysqld.pid --skip-name-resolve --init-file=/tmp/init.sql`

// TestPodMariaDBMetrics: MariaDB and `podkit metrics` in one pod, the
// exporter account without SLAVE MONITOR. Only the slave_status collector
// fails (mysql_up 1, status still exported, reason permission); a GRANT
// on the running server makes it succeed without restarting the adapter.
func TestPodMariaDBMetrics(t *testing.T) {
	pod, db, secrets := mariadbPod(t, "exporter-secrets", mariadbExporterScript, "9104")
	containertest.Run(t, containertest.Options{
		Name:  "metrics",
		Image: containertest.Image(),
		Cmd: []string{"metrics", "--mysql", "exporter@tcp(127.0.0.1:3306)/", "--mysql-password-file", "/secrets/password",
			"--listen", "0.0.0.0:9104", "--insecure-listen", "--admin-addr", "off", "--drain-delay", "0s"},
		Volumes:   []string{secrets.Name + ":/secrets:ro"},
		NetworkOf: pod,
	})
	metrics := "http://" + pod.Addr(t, "9104") + "/metrics"
	const slave = `mysql_exporter_collector_success{addr="127.0.0.1:3306",collector="collect.slave_status"}`
	var body string
	eventually(t, "mysql_up 1", func() bool {
		var code int
		var err error
		code, body, err = get(metrics)
		return err == nil && code == 200 && metricValue(body, "mysql_up") == 1
	})
	if v := metricValue(body, slave); v != 0 {
		t.Fatalf("%s = %v without SLAVE MONITOR, want 0:\n%s", slave, v, body)
	}
	// A server up for less than a second reports an uptime of 0: what
	// counts is that the status collector's series are there.
	if !strings.Contains(body, "\nmysql_global_status_uptime{") {
		t.Fatalf("no mysql_global_status_uptime while only slave_status fails:\n%s", body)
	}
	if v := metricValue(body, `podkit_metrics_scrape_errors_total{reason="permission",source="mysql",target="127.0.0.1:3306"}`); v < 1 {
		t.Fatalf("permission errors = %v:\n%s", v, body)
	}
	if out, err := db.Exec(t, "mariadb", "--socket=/tmp/mysqld.sock", "-uroot", "-e", "GRANT SLAVE MONITOR ON *.* TO 'exporter'@'127.0.0.1'"); err != nil {
		t.Fatalf("GRANT: %v\n%s", err, out)
	}
	eventually(t, slave+" 1 after the GRANT", func() bool {
		_, body, err := get(metrics)
		return err == nil && metricValue(body, slave) == 1
	})
}
