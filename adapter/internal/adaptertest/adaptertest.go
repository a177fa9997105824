// Package adaptertest holds what the adapters' tests share (health and
// metrics run the same way): running an adapter in-process under the
// container contract, and setting up accounts on a test database. It is
// imported by tests only; general test helpers are in internal/testdeps,
// and checking a secured API against its roles is in container/containertest.
package adaptertest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// Run runs c under the container contract in-process until the test ends,
// and returns its log (JSON, debug level). The admin listener is adminLn,
// or off when adminLn is nil; there is no drain delay. The test fails if c
// stops with an error or does not stop within 20 s of the test's end.
func Run(t testing.TB, c container.Component, adminLn net.Listener) *testdeps.Buffer {
	t.Helper()
	logs := &testdeps.Buffer{}
	o := container.DefaultOptions()
	o.AdminAddr = "off"
	if adminLn != nil {
		o.AdminListener = adminLn
		o.AdminAddr = adminLn.Addr().String()
	}
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, c, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s stopped with %v", c.Name(), err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", c.Name())
		}
	})
	return logs
}

// Listen returns a listener on a free loopback port, closed when the test
// ends (if the component has not closed it).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// SplitDSN moves the password out of dsn into a file, as the adapters
// take it (--password-file), and returns the DSN without it and the file.
func SplitDSN(t testing.TB, dsn, password string) (string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(dsn, ":"+password+"@", "@", 1), file
}

// MariaDB starts a MariaDB server (testdeps.StartMariaDB) and returns its
// superuser's target, without the password (testdeps.MariaDBPassword).
// ok is false when no server can run here.
func MariaDB(t testing.TB) (admin dbwire.SQLTarget, ok bool) {
	t.Helper()
	dsn := testdeps.StartMariaDB(t)
	if dsn == "" {
		return dbwire.SQLTarget{}, false
	}
	admin, err := dbwire.ParseMySQL(strings.Replace(dsn, ":"+testdeps.MariaDBPassword+"@", "@", 1))
	if err != nil {
		t.Fatal(err)
	}
	return admin, true
}

// SQLAdmin runs statements on the database st as the account whose
// password is given (the test server's superuser), each on the same
// connection, failing the test at the first error.
func SQLAdmin(t testing.TB, st dbwire.SQLTarget, password string, stmts ...string) {
	t.Helper()
	db, err := dbwire.Open(st, password, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, q := range stmts {
		if _, err := db.Query(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
