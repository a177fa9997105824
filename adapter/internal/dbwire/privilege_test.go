package dbwire

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

// adminQuery runs q on a fresh connection as the test server's superuser.
func adminQuery(t *testing.T, st SQLTarget, password, q string) {
	t.Helper()
	db, err := Open(st, password, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := db.Query(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestMariaDBPrivileges: a missing privilege is told apart from a refused
// login, and a connection that was refused a global privilege picks up a
// GRANT made afterwards (MariaDB applies global privileges to new
// connections only).
func TestMariaDBPrivileges(t *testing.T) {
	dsn := testdeps.StartMariaDB(t)
	if dsn == "" {
		return
	}
	admin, err := ParseMySQL(strings.Replace(dsn, ":"+testdeps.MariaDBPassword+"@", "@", 1))
	if err != nil {
		t.Fatal(err)
	}
	adminQuery(t, admin, testdeps.MariaDBPassword, "CREATE USER 'mon'@'%' IDENTIFIED BY 'mon-pw'")
	st, err := ParseMySQL(fmt.Sprintf("mon@tcp(%s)/", admin.Addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	bad, _ := Open(st, "wrong", nil)
	defer bad.Close()
	_, err = bad.Query(ctx, "SELECT 1")
	if err == nil || !IsAuthFailed(err) || IsPermissionDenied(err) {
		t.Fatalf("wrong password: %v; IsAuthFailed %v, IsPermissionDenied %v", err, IsAuthFailed(err), IsPermissionDenied(err))
	}

	db, err := Open(st, "mon-pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Query(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Query(ctx, "SHOW SLAVE STATUS")
	if err == nil || !IsPermissionDenied(err) || IsAuthFailed(err) {
		t.Fatalf("SHOW SLAVE STATUS without SLAVE MONITOR: %v; IsPermissionDenied %v, IsAuthFailed %v", err, IsPermissionDenied(err), IsAuthFailed(err))
	}
	_, err = db.Query(ctx, "SELECT * FROM mysql.user")
	if err == nil || !IsPermissionDenied(err) {
		t.Fatalf("SELECT from mysql.user: %v, want a permission error", err)
	}

	adminQuery(t, admin, testdeps.MariaDBPassword, "GRANT SLAVE MONITOR ON *.* TO 'mon'@'%'")
	if _, err := db.Query(ctx, "SHOW SLAVE STATUS"); err != nil {
		t.Fatalf("SHOW SLAVE STATUS after GRANT SLAVE MONITOR, same DB: %v", err)
	}
}

// TestPostgresPrivileges: insufficient_privilege is a permission error, a
// wrong password an auth error; a role granted afterwards is used by the
// same DB.
func TestPostgresPrivileges(t *testing.T) {
	dsn := testdeps.StartPostgres(t)
	if dsn == "" {
		return
	}
	admin, err := ParsePostgres(dsn)
	if err != nil {
		t.Fatal(err)
	}
	adminQuery(t, admin, "", "CREATE ROLE mon LOGIN")
	adminQuery(t, admin, "", "CREATE TABLE secret (x int)")
	st, err := ParsePostgres(strings.Replace(dsn, testdeps.PostgresUser+"@", "mon@", 1))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(st, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = db.Query(ctx, "SELECT * FROM secret")
	if err == nil || !IsPermissionDenied(err) || IsAuthFailed(err) {
		t.Fatalf("SELECT without the grant: %v; IsPermissionDenied %v", err, IsPermissionDenied(err))
	}
	adminQuery(t, admin, "", "GRANT SELECT ON secret TO mon")
	if _, err := db.Query(ctx, "SELECT * FROM secret"); err != nil {
		t.Fatalf("after GRANT: %v", err)
	}

	unknown, _ := ParsePostgres(strings.Replace(dsn, testdeps.PostgresUser+"@", "nobody@", 1))
	nodb, _ := Open(unknown, "", nil)
	defer nodb.Close()
	_, err = nodb.Query(ctx, "SELECT 1")
	if err == nil || !IsAuthFailed(err) || IsPermissionDenied(err) {
		t.Fatalf("unknown role: %v; IsAuthFailed %v", err, IsAuthFailed(err))
	}
}

// TestRedisPrivileges: NOPERM is a permission error, WRONGPASS an auth
// error.
func TestRedisPrivileges(t *testing.T) {
	addr := testdeps.StartRedis(t)
	if addr == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tg, _ := ParseRedisTarget(addr)
	c, err := DialRedis(ctx, tg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(ctx, "ACL", "SETUSER", "mon", "on", ">mon-pw", "+ping"); err != nil {
		t.Fatal(err)
	}
	tg.Username = "mon"
	if _, err := DialRedis(ctx, tg, "wrong"); err == nil || !IsAuthFailed(err) || IsPermissionDenied(err) {
		t.Fatalf("wrong password: %v", err)
	}
	mon, err := DialRedis(ctx, tg, "mon-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	_, err = mon.Do(ctx, "INFO", "replication")
	var re resp.Error
	if !errors.As(err, &re) || !IsPermissionDenied(err) || IsAuthFailed(err) {
		t.Fatalf("INFO without +info: %v", err)
	}
}
