//go:build container

package e2e

import (
	"encoding/json"
	"testing"

	"github.com/podkit/podkit/e2e/containertest"
)

// mariadbScript initialises MariaDB in the peer image, writes the health
// user's password to the shared secret volume, and runs the server on
// the pod's loopback. The grant is the deployment examples': SLAVE
// MONITOR, which SHOW SLAVE STATUS needs on MariaDB 10.5.9 and later
// (REPLICATION CLIENT no longer does).
const mariadbScript = `set -e
printf 'h3alth-pw\n' > /secrets/password
chmod 0644 /secrets/password
mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
cat > /tmp/init.sql <<SQL
CREATE USER IF NOT EXISTS 'health'@'127.0.0.1' IDENTIFIED BY 'h3alth-pw';
GRANT SLAVE MONITOR ON *.* TO 'health'@'127.0.0.1';
SQL
exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=127.0.0.1 --port=3306 --socket=/tmp/mysqld.sock --pid-file=/tmp/mysqld.pid --skip-name-resolve --init-file=/tmp/init.sql`

// TestPodMariaDBHealth: MariaDB and `podkit health` in one pod, the
// adapter's /readyz being the readiness probe of the database, with the
// Kubernetes example's --max-lag: readiness turns 200 only if the account
// can read the replication status. A pause container owns the pod's
// network namespace, so that the database can be killed while the
// adapter keeps answering.
func TestPodMariaDBHealth(t *testing.T) {
	pod, db, secrets := mariadbPod(t, "health-secrets", mariadbScript, "8008", "9901")
	containertest.Run(t, containertest.Options{
		Name:  "health",
		Image: containertest.Image(),
		Cmd: []string{"health", "--mysql", "health@tcp(127.0.0.1:3306)/", "--password-file", "/secrets/password",
			"--query", "SELECT @@version", "--expect", "/MariaDB/",
			"--max-lag", "30s",
			// Probed from the host through the published port, without a
			// credential, as a kubelet probes it.
			"--listen", "0.0.0.0:8008", "--insecure-listen", "--admin-addr", "0.0.0.0:9901", "--period", "1s", "--timeout", "1s", "--drain-delay", "0s"},
		Volumes:   []string{secrets.Name + ":/secrets:ro"},
		NetworkOf: pod,
	})
	health := "http://" + pod.Addr(t, "8008")
	admin := "http://" + pod.Addr(t, "9901")
	waitHTTP(t, health+"/livez", 200)
	waitHTTP(t, health+"/readyz", 200)
	waitHTTP(t, health+"/startupz", 200)
	// The replication status was read: a primary, lag 0, with a tighter
	// limit too.
	code, body, err := get(health + "/readyz?lag=5s")
	var ready struct {
		Status string `json:"status"`
		Last   struct {
			Replica  bool     `json:"replica"`
			Lag      *float64 `json:"replication_lag_seconds"`
			LagError string   `json:"replication_lag_error"`
		} `json:"last"`
		Warning string `json:"warning"`
	}
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &ready) != nil {
		t.Fatalf("/readyz?lag=5s: %d %v\n%s", code, err, body)
	}
	if ready.Last.Lag == nil || *ready.Last.Lag != 0 || ready.Last.Replica || ready.Last.LagError != "" || ready.Warning != "" {
		t.Fatalf("/readyz?lag=5s: the replication status was not read:\n%s", body)
	}
	_, body, _ = get(admin + "/metrics")
	if metricValue(body, "podkit_health_up") != 1 {
		t.Fatalf("podkit_health_up is not 1:\n%s", body)
	}
	if metricValue(body, "podkit_health_replication_lag_seconds") != 0 {
		t.Fatalf("podkit_health_replication_lag_seconds is not 0:\n%s", body)
	}
	if v := metricValue(body, `podkit_health_check_failures_total{reason="permission"}`); v != 0 {
		t.Fatalf(`podkit_health_check_failures_total{reason="permission"} = %v:\n%s`, v, body)
	}

	// The database dies: readiness fails, the adapter and its metrics stay up.
	db.Kill(t, "KILL")
	waitHTTP(t, health+"/readyz", 503)
	code, body, err = get(admin + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("admin /metrics after the kill: %d %v", code, err)
	}
	if metricValue(body, "podkit_health_up") != 0 {
		t.Fatalf("podkit_health_up is not 0 after the kill:\n%s", body)
	}
	if code, _, _ := get(health + "/livez"); code != 200 {
		t.Fatalf("/livez after the kill: %d", code)
	}
}

// mariadbPod starts a pod whose network namespace a pause container owns
// (publishing ports), and in it MariaDB running script, which writes the
// adapter's password to /secrets/password on the returned volume; it
// returns once that file exists.
func mariadbPod(t *testing.T, secretsName, script string, ports ...string) (pod, db *containertest.Container, secrets *containertest.Volume) {
	t.Helper()
	pod = containertest.Run(t, containertest.Options{
		Name:    "db-pod",
		Image:   containertest.PeerImage(),
		Cmd:     []string{"sleep", "infinity"},
		Publish: ports,
	})
	secrets = containertest.NewVolume(t, secretsName)
	db = containertest.Run(t, containertest.Options{
		Name:      "mariadb",
		Image:     containertest.PeerImage(),
		Cmd:       []string{"sh", "-c", script},
		Volumes:   []string{secrets.Name + ":/secrets"},
		NetworkOf: pod,
	})
	eventually(t, "the password file", func() bool {
		_, err := db.Exec(t, "test", "-s", "/secrets/password")
		return err == nil
	})
	return pod, db, secrets
}
