package testdeps

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// dial connects to addr with a deadline for the whole exchange.
func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

// resp sends one RESP command and returns the reply: a status, error or
// integer line as is, a bulk string as its contents.
func resp(t *testing.T, c net.Conn, r *bufio.Reader, args ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	line := readLine(t, r)
	if !strings.HasPrefix(line, "$") || line == "$-1" {
		return line
	}
	data := readLine(t, r)
	return data
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading reply: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func TestStartRedis(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		exchange [][2]string // command (space separated), reply
	}{
		{
			name: "default",
			exchange: [][2]string{
				{"PING", "+PONG"},
				{"SET podkit wire", "+OK"},
				{"GET podkit", "wire"},
			},
		},
		{
			name: "extra args",
			args: []string{"--requirepass", "s3cret"},
			exchange: [][2]string{
				{"PING", "-NOAUTH Authentication required."},
				{"AUTH s3cret", "+OK"},
				{"PING", "+PONG"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := StartRedis(t, tc.args...)
			if !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Fatalf("addr = %q, want a loopback address", addr)
			}
			c, r := dial(t, addr)
			for _, x := range tc.exchange {
				if got := resp(t, c, r, strings.Fields(x[0])...); got != x[1] {
					t.Fatalf("%s: got %q, want %q", x[0], got, x[1])
				}
			}
		})
	}
}

func TestStartRedisPersistenceOff(t *testing.T) {
	c, r := dial(t, StartRedis(t))
	for _, key := range []string{"save", "appendonly"} {
		if got := resp(t, c, r, "CONFIG", "GET", key); got != "*2" {
			t.Fatalf("CONFIG GET %s: %q", key, got)
		}
		readLine(t, r) // $len
		readLine(t, r) // key
		readLine(t, r) // $len
		want := map[string]string{"save": "", "appendonly": "no"}[key]
		if got := readLine(t, r); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

func TestStartRetriesTakenPort(t *testing.T) {
	// Another process takes the port between freePort and the server's
	// bind: the server exits with "Address already in use" and run tries
	// again on a new port.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	calls := 0
	nextPort = func(t testing.TB) int {
		calls++
		if calls == 1 {
			return takenPort
		}
		return freePort(t)
	}
	t.Cleanup(func() { nextPort = freePort })

	addr := StartRedis(t)
	if calls != 2 {
		t.Errorf("ports tried = %d, want 2", calls)
	}
	if addr == taken.Addr().String() {
		t.Fatalf("addr = %s, the taken port", addr)
	}
	c, r := dial(t, addr)
	if got := resp(t, c, r, "PING"); got != "+PONG" {
		t.Errorf("PING = %q", got)
	}
}

func TestStartMemcached(t *testing.T) {
	addr := StartMemcached(t)
	c, r := dial(t, addr)
	for _, x := range [][2]string{
		{"version", "VERSION "},
		{"set podkit 0 0 4\r\nwire", "STORED"},
		{"get podkit", "VALUE podkit 0 4"},
	} {
		if _, err := io.WriteString(c, x[0]+"\r\n"); err != nil {
			t.Fatal(err)
		}
		if got := readLine(t, r); !strings.HasPrefix(got, x[1]) {
			t.Fatalf("%q: got %q, want prefix %q", x[0], got, x[1])
		}
	}
	if got := readLine(t, r); got != "wire" {
		t.Errorf("get value = %q, want %q", got, "wire")
	}
	if got := readLine(t, r); got != "END" {
		t.Errorf("get end = %q, want END", got)
	}
}

func TestStartNginx(t *testing.T) {
	for _, tc := range []struct {
		name     string
		servers  string
		path     string
		wantCode int
		wantBody string
	}{
		{name: "default", path: "/anything", wantCode: 200, wantBody: "ok\n"},
		{
			name: "custom server",
			servers: `server {
	listen 127.0.0.1:{{PORT}};
	location = /hello { return 201 "hello from {{PORT}}"; }
	location = /stub_status { stub_status; }
}`,
			path:     "/hello",
			wantCode: 201,
			wantBody: "hello from ",
		},
		{
			name: "stub_status",
			servers: `server {
	listen 127.0.0.1:{{PORT}};
	location = /stub_status { stub_status; }
}`,
			path:     "/stub_status",
			wantCode: 200,
			wantBody: "Active connections: ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := StartNginx(t, tc.servers)
			res, err := http.Get("http://" + addr + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.wantCode {
				t.Errorf("status = %d, want %d", res.StatusCode, tc.wantCode)
			}
			if !strings.HasPrefix(string(body), tc.wantBody) {
				t.Errorf("body = %q, want prefix %q", body, tc.wantBody)
			}
			if got := res.Header.Get("Server"); !strings.HasPrefix(got, "nginx") {
				t.Errorf("Server header = %q, want nginx", got)
			}
		})
	}
}

func TestStartNginxNeedsPort(t *testing.T) {
	r := &recorder{TB: t}
	if addr := StartNginx(r, "server { listen 127.0.0.1:8080; }"); addr != "" {
		t.Errorf("addr = %q, want \"\"", addr)
	}
	if !strings.Contains(r.failed, PortPlaceholder) {
		t.Errorf("failure = %q, want it to name %s", r.failed, PortPlaceholder)
	}
}

func TestStartNutcracker(t *testing.T) {
	backend := StartRedis(t)
	addr, stats := StartNutcracker(t, `alpha:
  listen: 127.0.0.1:{{PORT}}
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  servers:
    - `+backend+`:1 backend
`)

	c, r := dial(t, addr)
	if got := resp(t, c, r, "SET", "via-proxy", "yes"); got != "+OK" {
		t.Fatalf("SET through nutcracker: %q", got)
	}
	if got := resp(t, c, r, "GET", "via-proxy"); got != "yes" {
		t.Fatalf("GET through nutcracker: %q", got)
	}

	// The value really is in the backend.
	bc, br := dial(t, backend)
	if got := resp(t, bc, br, "GET", "via-proxy"); got != "yes" {
		t.Fatalf("GET from the backend: %q", got)
	}

	sc, _ := dial(t, stats)
	b, err := io.ReadAll(sc)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("stats: %v: %q", err, b)
	}
	if _, ok := doc["alpha"]; !ok {
		t.Errorf("stats has no pool alpha: %s", b)
	}
}

func TestStartMariaDB(t *testing.T) {
	dsn := StartMariaDB(t)
	prefix := MariaDBUser + ":" + MariaDBPassword + "@tcp("
	if !strings.HasPrefix(dsn, prefix) || !strings.HasSuffix(dsn, ")/"+MariaDBDatabase) {
		t.Fatalf("dsn = %q, want %s<addr>)/%s", dsn, prefix, MariaDBDatabase)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(dsn, prefix), ")/"+MariaDBDatabase)

	c, _ := dial(t, addr)
	version, err := mysqlGreeting(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(version, "MariaDB") {
		t.Errorf("server version = %q, want MariaDB", version)
	}

	// The user and database in the DSN work over TCP.
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(Binary(t, "mariadb"), "--no-defaults", "--protocol=tcp",
		"--host="+host, "--port="+port, "--user="+MariaDBUser, "--password="+MariaDBPassword,
		"--batch", "--skip-column-names", MariaDBDatabase,
		"-e", "SELECT CONCAT(CURRENT_USER(), ' ', DATABASE())").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb client: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), MariaDBUser+"@% "+MariaDBDatabase; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
}

func TestMySQLGreeting(t *testing.T) {
	packet := func(body []byte) []byte {
		n := len(body)
		return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 0}, body...)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		want    string
		wantErr string
	}{
		{name: "handshake v10", in: packet([]byte("\x0a10.11.6-MariaDB\x00rest")), want: "10.11.6-MariaDB"},
		{name: "error packet", in: packet([]byte("\xff\x6a\x04Host is blocked")), wantErr: "server refused"},
		{name: "old protocol", in: packet([]byte("\x09old\x00")), wantErr: "protocol version 9"},
		{name: "unterminated", in: packet([]byte("\x0aabc")), wantErr: "unterminated"},
		{name: "short", in: []byte{5, 0}, wantErr: "greeting header"},
		{name: "truncated body", in: []byte{9, 0, 0, 0, 10}, wantErr: "greeting body"},
		{name: "empty length", in: []byte{0, 0, 0, 0}, wantErr: "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mysqlGreeting(bytes.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("mysqlGreeting = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestStartPostgres(t *testing.T) {
	dsn := StartPostgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "postgres" || u.User.Username() != PostgresUser || u.Path != "/postgres" {
		t.Fatalf("dsn = %q, want postgres://%s@host:port/postgres", dsn, PostgresUser)
	}

	c, r := dial(t, u.Host)
	if err := postgresStartup(c, PostgresUser, "postgres"); err != nil {
		t.Fatal(err)
	}
	// postgresStartup read through a bufio.Reader of its own, but nothing
	// follows ReadyForQuery until the next query, so r starts clean.
	if got := pgQuery(t, c, r, "SELECT 40 + 2"); got != "42" {
		t.Errorf("SELECT 40 + 2 = %q, want 42", got)
	}
}

// pgQuery runs a simple query returning one text column and returns the
// first row's value.
func pgQuery(t *testing.T, c net.Conn, r *bufio.Reader, query string) string {
	t.Helper()
	msg := []byte{'Q'}
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(query)+1))
	msg = append(append(msg, query...), 0)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	value := ""
	for {
		typ, err := r.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, n-4)
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		switch typ {
		case 'D': // DataRow: int16 columns, then int32 length + bytes each
			if len(payload) >= 6 {
				l := binary.BigEndian.Uint32(payload[2:6])
				value = string(payload[6 : 6+l])
			}
		case 'E':
			t.Fatalf("query %q: %s", query, pgErrorMessage(payload))
		case 'Z':
			return value
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defgh", "ijk"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := string(b.Bytes()), "defghijk"; got != want {
		t.Errorf("Bytes() = %q, want %q", got, want)
	}
	if got, want := tail([]byte("0123456789"), 4), "6789"; got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
}
