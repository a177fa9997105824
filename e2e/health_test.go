//go:build container

package e2e

import (
	"testing"

	"github.com/podkit/podkit/e2e/containertest"
)

// mariadbScript initialises MariaDB in the peer image, writes the health
// user's password to the shared secret volume, and runs the server on
// the pod's loopback.
const mariadbScript = `set -e
printf 'h3alth-pw\n' > /secrets/password
chmod 0644 /secrets/password
mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
cat > /tmp/init.sql <<SQL
CREATE USER IF NOT EXISTS 'health'@'127.0.0.1' IDENTIFIED BY 'h3alth-pw';
GRANT REPLICATION CLIENT ON *.* TO 'health'@'127.0.0.1';
SQL
exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=127.0.0.1 --port=3306 --socket=/tmp/mysqld.sock --pid-file=/tmp/mysqld.pid --skip-name-resolve --init-file=/tmp/init.sql`

// TestPodMariaDBHealth: MariaDB and `podkit health` in one pod, the
// adapter's /readyz being the readiness probe of the database. A pause
// container owns the pod's network namespace, so that the database can be
// killed while the adapter keeps answering.
func TestPodMariaDBHealth(t *testing.T) {
	pod := containertest.Run(t, containertest.Options{
		Name:    "db-pod",
		Image:   containertest.PeerImage(),
		Cmd:     []string{"sleep", "infinity"},
		Publish: []string{"8008", "9901"},
	})
	secrets := containertest.NewVolume(t, "health-secrets")
	db := containertest.Run(t, containertest.Options{
		Name:      "mariadb",
		Image:     containertest.PeerImage(),
		Cmd:       []string{"sh", "-c", mariadbScript},
		Volumes:   []string{secrets.Name + ":/secrets"},
		NetworkOf: pod,
	})
	eventually(t, "the password file", func() bool {
		_, err := db.Exec(t, "test", "-s", "/secrets/password")
		return err == nil
	})
	containertest.Run(t, containertest.Options{
		Name:  "health",
		Image: containertest.Image(),
		Cmd: []string{"health", "--mysql", "health@tcp(127.0.0.1:3306)/", "--password-file", "/secrets/password",
			"--query", "SELECT @@version", "--expect", "/MariaDB/",
			"--listen", "0.0.0.0:8008", "--admin-addr", "0.0.0.0:9901", "--period", "1s", "--timeout", "1s", "--drain-delay", "0s"},
		Volumes:   []string{secrets.Name + ":/secrets:ro"},
		NetworkOf: pod,
	})
	health := "http://" + pod.Addr(t, "8008")
	admin := "http://" + pod.Addr(t, "9901")
	waitHTTP(t, health+"/livez", 200)
	waitHTTP(t, health+"/readyz", 200)
	waitHTTP(t, health+"/startupz", 200)
	if _, body, _ := get(admin + "/metrics"); metricValue(body, "podkit_health_up") != 1 {
		t.Fatalf("podkit_health_up is not 1:\n%s", body)
	}

	// The database dies: readiness fails, the adapter and its metrics stay up.
	db.Kill(t, "KILL")
	waitHTTP(t, health+"/readyz", 503)
	code, body, err := get(admin + "/metrics")
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
