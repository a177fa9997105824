package wireprobe

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/podkit/podkit/internal/testdeps"
)

// probeAddr dials addr and runs probe with a timeout generous enough for
// a loaded machine.
func probeAddr(t *testing.T, probe Probe, addr string) error {
	t.Helper()
	return probeAddrWithin(t, 20*time.Second, probe, addr)
}

// probeAddrWithin is probeAddr with a timeout of d.
func probeAddrWithin(t *testing.T, d time.Duration, probe Probe, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return probe(ctx, c)
}

func mariaDBAddr(t *testing.T, dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Addr
}

func postgresAddr(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestRealServers runs every probe against every real server: a probe
// passes against its own server and fails, with an error, against the
// others (the wrong server on the port).
func TestRealServers(t *testing.T) {
	servers := map[string]string{}
	servers["redis"] = testdeps.StartRedis(t)
	servers["mysql"] = mariaDBAddr(t, testdeps.StartMariaDB(t))
	servers["postgres"] = postgresAddr(t, testdeps.StartPostgres(t))
	httpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	t.Cleanup(httpSrv.Close)
	servers["http"] = strings.TrimPrefix(httpSrv.URL, "http://")

	for _, probeName := range []string{"redis", "mysql", "postgres"} {
		probe, ok := ByName(probeName)
		if !ok {
			t.Fatalf("ByName(%q) not found", probeName)
		}
		for server, addr := range servers {
			t.Run(probeName+"/"+server, func(t *testing.T) {
				t.Parallel()
				if server != probeName {
					// A server of another kind may wait for the probe to
					// say more: 3s for it to answer or hang up.
					err := probeAddrWithin(t, 3*time.Second, probe, addr)
					if err == nil {
						t.Fatalf("%s probe of a %s server succeeded", probeName, server)
					}
					if !strings.HasPrefix(err.Error(), probeName+" probe: ") {
						t.Errorf("error %q does not name the probe", err)
					}
					t.Logf("%s probe of %s: %v", probeName, server, err)
					return
				}
				err := probeAddr(t, probe, addr)
				if server == probeName {
					if err != nil {
						t.Fatalf("%s probe of a real %s server: %v", probeName, server, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("%s probe of a %s server succeeded", probeName, server)
				}
				if !strings.Contains(err.Error(), probeName+" probe") {
					t.Errorf("error %q does not name the probe", err)
				}
				t.Logf("%s probe of %s: %v", probeName, server, err)
			})
		}
	}
}

func TestRedisNoAuthIsAlive(t *testing.T) {
	addr := testdeps.StartRedis(t, "--requirepass", "sekret")
	if err := probeAddr(t, Redis, addr); err != nil {
		t.Fatalf("probe of a redis that wants a password: %v (NOAUTH means it is up)", err)
	}
}

func TestRedisMasterDown(t *testing.T) {
	// A replica of a primary that is not there, told not to serve stale
	// data: it answers MASTERDOWN.
	dead := testdeps.FreePort(t)
	host, port, _ := net.SplitHostPort(dead)
	addr := testdeps.StartRedis(t, "--replicaof", host, port, "--replica-serve-stale-data", "no")
	err := probeAddr(t, Redis, addr)
	if err == nil || !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "MASTERDOWN") {
		t.Fatalf("probe of a replica without its primary: %v, want an ErrUnhealthy naming MASTERDOWN", err)
	}
}

// fakeServer is a fake peer: it reads what the probe sends (n bytes) and
// answers reply.
func fakeServer(t *testing.T, n int, reply []byte) string {
	return testdeps.ServeTCP(t, func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
			return
		}
		c.Write(reply)
		io.Copy(io.Discard, c)
	}).Addr()
}

func TestFakeReplies(t *testing.T) {
	pgErr := func(fields ...string) []byte {
		body := []byte{}
		for _, f := range fields {
			body = append(append(body, f...), 0)
		}
		body = append(body, 0)
		b := []byte{'E', 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
		return append(b, body...)
	}
	mysqlPacket := func(payload []byte) []byte {
		return append([]byte{byte(len(payload)), byte(len(payload) >> 8), 0, 0}, payload...)
	}
	tests := []struct {
		name    string
		probe   Probe
		read    int
		reply   []byte
		wantErr error    // nil: healthy
		want    []string // in the error
	}{
		{"redis PONG", Redis, len(pingCommand), []byte("+PONG\r\n"), nil, nil},
		{"redis bulk PONG", Redis, len(pingCommand), []byte("$4\r\nPONG\r\n"), nil, nil},
		{"redis WRONGPASS", Redis, len(pingCommand), []byte("-WRONGPASS invalid username-password pair\r\n"), nil, nil},
		{"redis LOADING", Redis, len(pingCommand), []byte("-LOADING Redis is loading the dataset in memory\r\n"), ErrUnhealthy, []string{"LOADING"}},
		{"redis BUSY", Redis, len(pingCommand), []byte("-BUSY Redis is busy running a script\r\n"), ErrUnhealthy, []string{"BUSY"}},
		{"redis OK", Redis, len(pingCommand), []byte("+OK\r\n"), ErrProtocol, []string{"+OK"}},
		{"redis integer", Redis, len(pingCommand), []byte(":1\r\n"), ErrProtocol, []string{":1"}},
		{"redis garbage", Redis, len(pingCommand), []byte("SSH-2.0-OpenSSH_9.2\r\n"), ErrProtocol, []string{"not a Redis reply"}},
		{"redis huge bulk", Redis, len(pingCommand), []byte("$999999999\r\n"), ErrProtocol, nil},
		{"mysql too many connections", MySQL, 0, mysqlPacket(append([]byte{0xff, 0x10, 0x04}, "Too many connections"...)), ErrUnhealthy, []string{"1040", "Too many connections"}},
		{"mysql host blocked", MySQL, 0, mysqlPacket(append([]byte{0xff, 0x69, 0x04}, "Host '10.0.0.1' is blocked because of many connection errors"...)), ErrUnhealthy, []string{"1129", "is blocked"}},
		{"mysql error with sql state", MySQL, 0, mysqlPacket(append([]byte{0xff, 0x10, 0x04, '#', '0', '8', '0', '0', '4'}, "Too many connections"...)), ErrUnhealthy, []string{"1040", "08004", "Too many connections"}},
		{"mysql protocol 9", MySQL, 0, mysqlPacket([]byte("\x093.20\x00")), ErrProtocol, []string{"version 9"}},
		{"mysql greeting too long", MySQL, 0, []byte{0xff, 0xff, 0xff, 0}, ErrProtocol, []string{"length 16777215"}},
		{"mysql wrong sequence", MySQL, 0, []byte{5, 0, 0, 3, 10, 'x', 0, 0, 0}, ErrProtocol, []string{"sequence 3"}},
		{"mysql no version terminator", MySQL, 0, mysqlPacket([]byte("\x0a5.5.5")), ErrProtocol, []string{"server version"}},
		{"mysql fake greeting", MySQL, 0, mysqlPacket([]byte("\x0a11.8.3-MariaDB\x00rest")), nil, nil},
		{"postgres S", Postgres, len(sslRequest), []byte("S"), nil, nil},
		{"postgres N", Postgres, len(sslRequest), []byte("N"), nil, nil},
		{"postgres v3 error", Postgres, len(sslRequest), pgErr("SFATAL", "VFATAL", "C53300", "Msorry, too many clients already"), ErrUnhealthy, []string{"FATAL", "53300", "too many clients"}},
		{"postgres v2 error", Postgres, len(sslRequest), []byte("Ecould not fork new process for connection: Resource temporarily unavailable\n\x00"), ErrUnhealthy, []string{"could not fork"}},
		{"postgres truncated error", Postgres, len(sslRequest), []byte{'E', 0, 0, 1, 0, 'S'}, ErrUnhealthy, []string{"truncated"}},
		{"postgres other byte", Postgres, len(sslRequest), []byte("H"), ErrProtocol, []string{"'H'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.read, tt.reply)
			if tt.name == "postgres truncated error" {
				// The fake closes after a partial message.
				addr = testdeps.ServeTCP(t, func(c net.Conn) {
					io.ReadFull(c, make([]byte, tt.read))
					c.Write(tt.reply)
				}).Addr()
			}
			err := probeAddr(t, tt.probe, addr)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("probe: %v, want healthy", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("probe: %v, want an error wrapping %q", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestSilentServer: a server that accepts and never answers fails every
// probe when ctx's deadline passes, and a cancelled ctx ends a probe too.
func TestSilentServer(t *testing.T) {
	addr := testdeps.SilentTCP(t)
	for _, name := range []string{"redis", "mysql", "postgres"} {
		probe, _ := ByName(name)
		t.Run(name+"/deadline", func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err = probe(ctx, c)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("probe of a silent server: %v, want context.DeadlineExceeded", err)
			}
			if !strings.Contains(err.Error(), "no answer in time") {
				t.Errorf("error %q does not say there was no answer", err)
			}
		})
		t.Run(name+"/cancel", func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			if err := probe(ctx, c); !errors.Is(err, context.Canceled) {
				t.Fatalf("probe with a cancelled context: %v, want context.Canceled", err)
			}
		})
	}
}

// TestClosedByServer: a server that closes at once gives an error that
// says so.
func TestClosedByServer(t *testing.T) {
	addr := testdeps.ServeTCP(t, func(c net.Conn) {}).Addr()
	for _, name := range []string{"redis", "mysql", "postgres"} {
		probe, _ := ByName(name)
		if err := probeAddr(t, probe, addr); err == nil {
			t.Errorf("%s probe of a server that hangs up: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestMariaDBTooManyConnections fills a real MariaDB's connection slots
// (max_connections, at least 10, plus the one reserved for
// administrators) and probes it: the server answers with error 1040 in
// place of the greeting. While only the administrator's slot is left,
// ordinary clients are refused after authenticating, which the probe
// cannot see: it then still passes.
func TestMariaDBTooManyConnections(t *testing.T) {
	dsn := testdeps.StartMariaDB(t)
	addr := mariaDBAddr(t, dsn)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	// The administrator may go past max_connections; an ordinary account
	// may not.
	for _, q := range []string{
		"CREATE USER 'plain'@'%' IDENTIFIED BY 'plain'",
		"SET GLOBAL max_connections = 10",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cfg, _ := mysql.ParseDSN(dsn)
	cfg.User, cfg.Passwd, cfg.DBName = "plain", "plain", ""
	plain, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Hold connections until the server refuses one (ordinary accounts,
	// then the administrator's extra slot); the probe must then see the
	// refusal in place of the greeting.
	for _, pool := range []*sql.DB{plain, db} {
		for i := 0; i < 20; i++ {
			c, err := pool.Conn(ctx)
			if err == nil {
				err = c.PingContext(ctx)
			}
			if err != nil {
				t.Logf("connection refused after %d held: %v", len(held), err)
				break
			}
			held = append(held, c)
		}
	}
	err = probeAddr(t, MySQL, addr)
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "1040") {
		t.Fatalf("probe of a full MariaDB: %v, want ErrUnhealthy naming error 1040", err)
	}
	t.Logf("full MariaDB: %v", err)
	for _, c := range held {
		c.Close()
	}
	held = nil
	testdeps.WaitFor(t, "MariaDB accepting again", func() bool {
		return probeAddr(t, MySQL, addr) == nil
	})
}
