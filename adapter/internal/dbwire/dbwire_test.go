package dbwire

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestParseRedisTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RedisTarget
		err  string
	}{
		{"127.0.0.1:6380", RedisTarget{Network: "tcp", Addr: "127.0.0.1:6380"}, ""},
		{"cache", RedisTarget{Network: "tcp", Addr: "cache:6379"}, ""},
		{"redis://default@cache:7000/2", RedisTarget{Network: "tcp", Addr: "cache:7000", Username: "default", DB: 2}, ""},
		{"unix:///run/redis.sock?db=1", RedisTarget{Network: "unix", Addr: "/run/redis.sock", DB: 1}, ""},
		{"redis://:pw@cache", RedisTarget{}, "carries a password"},
		{"redis://cache/x", RedisTarget{}, "database \"x\""},
		{"http://cache", RedisTarget{}, "unknown scheme"},
		{"cache:0", RedisTarget{}, "port \"0\""},
		{"", RedisTarget{}, "empty"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRedisTarget(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), ":pw@") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestRedisReal(t *testing.T) {
	addr := testdeps.StartRedis(t, "--requirepass", "pw")
	if addr == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg, _ := ParseRedisTarget("redis://" + addr + "/3")
	if _, err := DialRedis(ctx, tg, "wrong"); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("wrong password: %v", err)
	}
	c, err := DialRedis(ctx, tg, "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(ctx, "SET", "k", "v\r\nwith CRLF"); err != nil {
		t.Fatal(err)
	}
	v, err := c.Do(ctx, "GET", "k")
	if err != nil || v.Str != "v\r\nwith CRLF" {
		t.Fatalf("GET = %+v, %v", v, err)
	}
	v, _ = c.Do(ctx, "CLIENT", "INFO")
	if !strings.Contains(v.Str, "db=3") {
		t.Fatalf("not on db 3: %q", v.Str)
	}
	var re resp.Error
	if _, err := c.Do(ctx, "NOSUCHCOMMAND"); !errors.As(err, &re) {
		t.Fatalf("error reply: %v", err)
	}
}

func TestSQLReal(t *testing.T) {
	t.Run("mariadb", func(t *testing.T) {
		dsn := testdeps.StartMariaDB(t)
		if dsn == "" {
			return
		}
		if _, err := ParseMySQL(dsn); err == nil {
			t.Fatal("a DSN with a password was accepted")
		}
		st, err := ParseMySQL(strings.Replace(dsn, ":"+testdeps.MariaDBPassword+"@", "@", 1))
		if err != nil {
			t.Fatal(err)
		}
		db, err := Open(st, testdeps.MariaDBPassword, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkQuery(t, db, "SELECT 1 AS one, NULL AS nothing")
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testdeps.StartPostgres(t)
		if dsn == "" {
			return
		}
		st, err := ParsePostgres(dsn)
		if err != nil {
			t.Fatal(err)
		}
		db, err := Open(st, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkQuery(t, db, "SELECT 1 AS one, NULL AS nothing")
	})
}

func checkQuery(t *testing.T, db DB, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := db.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0][0].String != "1" || res.Rows[0][1].Valid || res.Column("ONE") != 0 {
		t.Fatalf("result %+v", res)
	}
	if _, err := db.Query(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("a bad query succeeded")
	}
	if _, err := db.Query(ctx, "SELECT 2"); err != nil {
		t.Fatalf("query after an error: %v", err)
	}
}
