package testdeps

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on how long a server may take. They are generous because a test
// binary built with -race on a busy two-core machine is slow; none of them
// is an assertion about speed.
const (
	readyTimeout = 60 * time.Second // from exec to answering on its port
	setupTimeout = 3 * time.Minute  // one-off setup such as initdb
	stopTimeout  = 30 * time.Second // from the stop signal to exit, then SIGKILL
	dialTimeout  = 2 * time.Second  // one readiness probe
	startTries   = 3                // fresh ports to try when a port is taken
)

// PortPlaceholder is replaced by the listen port in the configuration
// passed to StartNginx and StartNutcracker.
const PortPlaceholder = "{{PORT}}"

// DirPlaceholder is replaced by the server's private temporary directory in
// the configuration passed to StartNginx and StartNutcracker.
const DirPlaceholder = "{{DIR}}"

// StartRedis runs redis-server on a free loopback port with persistence off
// and its working directory in a temporary directory, and returns its
// address ("127.0.0.1:port"). Extra args are appended to the command line,
// for example "--requirepass", "secret" or "--slowlog-log-slower-than", "0".
// The server is stopped when the test ends.
func StartRedis(t testing.TB, args ...string) string {
	t.Helper()
	bin := Binary(t, "redis-server")
	if bin == "" {
		return ""
	}
	dir := t.TempDir()
	return run(t, spec{
		name: "redis-server",
		cmd: func(port int) *exec.Cmd {
			a := []string{
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--save", "",
				"--appendonly", "no",
				"--dir", dir,
				"--daemonize", "no",
				"--logfile", "",
			}
			return exec.Command(bin, append(a, args...)...)
		},
		probe: probeRedis,
	})
}

// probeRedis sends PING and accepts any reply but -LOADING: a server that
// demands a password still answers (-NOAUTH).
func probeRedis(c net.Conn) error {
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "-LOADING") || (line[0] != '+' && line[0] != '-') {
		return fmt.Errorf("PING: %q", strings.TrimSpace(line))
	}
	return nil
}

// RedisUser adds an ACL user with password and rules (e.g. "+ping") to
// the redis-server at addr (one StartRedis started, no password), or adds
// rules to an existing one, and returns a file holding the password as a
// --password-file flag reads it.
func RedisUser(t testing.TB, addr, user, password string, rules ...string) (passwordFile string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	args := append([]string{"ACL", "SETUSER", user, "on", ">" + password}, rules...)
	var req bytes.Buffer
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("ACL SETUSER %s: %v", user, err)
	}
	if !strings.HasPrefix(line, "+OK") {
		t.Fatalf("ACL SETUSER %s: %s", user, strings.TrimSpace(line))
	}
	passwordFile = filepath.Join(t.TempDir(), user+".password")
	if err := os.WriteFile(passwordFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return passwordFile
}

// StartMemcached runs memcached on a free loopback port (TCP only) and
// returns its address. Extra args are appended to the command line, for
// example "-m", "8". The server is stopped when the test ends.
func StartMemcached(t testing.TB, args ...string) string {
	t.Helper()
	bin := Binary(t, "memcached")
	if bin == "" {
		return ""
	}
	return run(t, spec{
		name: "memcached",
		cmd: func(port int) *exec.Cmd {
			a := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64"}
			if os.Geteuid() == 0 {
				a = append(a, "-u", "root") // memcached refuses root without -u
			}
			return exec.Command(bin, append(a, args...)...)
		},
		probe: func(c net.Conn) error {
			if _, err := io.WriteString(c, "version\r\n"); err != nil {
				return err
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, "VERSION ") {
				return fmt.Errorf("version: %q", strings.TrimSpace(line))
			}
			return nil
		},
	})
}

// nginxConf is the frame around the server blocks passed to StartNginx.
const nginxConf = `daemon off;
master_process on;
worker_processes 1;
{{USER}}
pid {{DIR}}/nginx.pid;
error_log stderr notice;
events {
	worker_connections 256;
}
http {
	access_log {{DIR}}/access.log;
	client_body_temp_path {{DIR}}/client_body;
	proxy_temp_path {{DIR}}/proxy;
	fastcgi_temp_path {{DIR}}/fastcgi;
	uwsgi_temp_path {{DIR}}/uwsgi;
	scgi_temp_path {{DIR}}/scgi;
	default_type application/octet-stream;
{{SERVERS}}
}
`

// defaultNginxServer is used when StartNginx is given no server block.
const defaultNginxServer = `server {
	listen 127.0.0.1:{{PORT}};
	location / {
		return 200 "ok\n";
	}
}`

// StartNginx runs nginx in the foreground with a complete nginx.conf written
// to a temporary directory, and returns the address of its listen port.
//
// servers is the text that goes inside the http block: one or more server
// blocks, in which {{PORT}} is replaced by the free port chosen for the test
// (listen on 127.0.0.1:{{PORT}}) and {{DIR}} by nginx's temporary directory.
// An empty servers serves 200 "ok" on every path. The server is stopped when
// the test ends.
func StartNginx(t testing.TB, servers string) string {
	t.Helper()
	bin := Binary(t, "nginx")
	if bin == "" {
		return ""
	}
	if servers == "" {
		servers = defaultNginxServer
	}
	if !strings.Contains(servers, PortPlaceholder) {
		t.Fatalf("testdeps: StartNginx: server blocks must listen on 127.0.0.1:%s", PortPlaceholder)
		return ""
	}
	dir := t.TempDir()
	userLine := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody and could not use dir.
		userLine = "user root;"
	}
	return run(t, spec{
		name: "nginx",
		cmd: func(port int) *exec.Cmd {
			conf := strings.NewReplacer(
				"{{SERVERS}}", servers,
				"{{USER}}", userLine,
			).Replace(nginxConf)
			conf = expandPlaceholders(conf, port, dir)
			path := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatalf("testdeps: %v", err)
			}
			return exec.Command(bin, "-p", dir, "-e", "stderr", "-c", path)
		},
		probe: func(net.Conn) error { return nil }, // accepting is enough
	})
}

// StartNutcracker runs nutcracker (twemproxy) with the YAML configuration
// yamlConfig and returns the address of its pool's listen port and of its
// stats port.
//
// In yamlConfig, {{PORT}} is replaced by the free port chosen for the test
// (write listen: 127.0.0.1:{{PORT}}) and {{DIR}} by a temporary directory.
// Backends are whatever the configuration names, typically servers started
// with StartRedis or StartMemcached. The proxy is stopped when the test
// ends.
func StartNutcracker(t testing.TB, yamlConfig string) (addr, statsAddr string) {
	t.Helper()
	bin := Binary(t, "nutcracker")
	if bin == "" {
		return "", ""
	}
	if !strings.Contains(yamlConfig, PortPlaceholder) {
		t.Fatalf("testdeps: StartNutcracker: the pool must listen on 127.0.0.1:%s", PortPlaceholder)
		return "", ""
	}
	dir := t.TempDir()
	addr = run(t, spec{
		name: "nutcracker",
		cmd: func(port int) *exec.Cmd {
			statsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
			path := filepath.Join(dir, "nutcracker.yml")
			conf := expandPlaceholders(yamlConfig, port, dir)
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatalf("testdeps: %v", err)
			}
			_, sport, _ := net.SplitHostPort(statsAddr)
			return exec.Command(bin,
				"-c", path,
				"-a", "127.0.0.1",
				"-s", sport,
				"-p", filepath.Join(dir, "nutcracker.pid"),
				"-o", "/dev/stderr", // Debian's default is a file in /var/log
			)
		},
		probe: func(net.Conn) error {
			// The stats port answers with a JSON document and closes.
			c, err := net.DialTimeout("tcp", statsAddr, dialTimeout)
			if err != nil {
				return fmt.Errorf("stats port: %w", err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(dialTimeout))
			b, err := io.ReadAll(c)
			if err != nil {
				return fmt.Errorf("stats port: %w", err)
			}
			if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
				return fmt.Errorf("stats port: not JSON: %q", b)
			}
			return nil
		},
	})
	return addr, statsAddr
}

// MariaDB credentials created by StartMariaDB.
const (
	MariaDBUser     = "podkit"
	MariaDBPassword = "podkit"
	MariaDBDatabase = "podkit"
)

// StartMariaDB initialises a MariaDB data directory in a temporary
// directory, runs mariadbd on a free loopback port with its unix socket in
// that directory, creates the user MariaDBUser (password MariaDBPassword,
// all privileges) and the database MariaDBDatabase, and returns a DSN in the
// go-sql-driver/mysql form (the user may GRANT, so tests can give
// other accounts privileges):
//
//	podkit:podkit@tcp(127.0.0.1:PORT)/podkit
//
// The server is stopped when the test ends.
func StartMariaDB(t testing.TB) (dsn string) {
	t.Helper()
	server := Binary(t, "mariadbd")
	if server == "" {
		return ""
	}
	installDB := Binary(t, "mariadb-install-db")
	if installDB == "" {
		return ""
	}
	client := Binary(t, "mariadb")
	if client == "" {
		return ""
	}
	dir := shortTempDir(t, "mariadb", nil)
	data := filepath.Join(dir, "data")
	socket := filepath.Join(dir, "mysqld.sock")
	osUser := "root"
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("testdeps: %v", err)
			return ""
		}
		osUser = u.Username
	}

	setup(t, "mariadb-install-db", exec.Command(installDB,
		"--no-defaults",
		"--datadir="+data,
		"--user="+osUser,
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
	))

	addr := run(t, spec{
		name: "mariadbd",
		cmd: func(port int) *exec.Cmd {
			return exec.Command(server,
				"--no-defaults",
				"--datadir="+data,
				"--socket="+socket,
				"--port="+strconv.Itoa(port),
				"--bind-address=127.0.0.1",
				"--pid-file="+filepath.Join(dir, "mysqld.pid"),
				"--tmpdir="+dir,
				"--user="+osUser,
				"--skip-name-resolve",
				"--innodb-buffer-pool-size=32M",
				"--innodb-log-file-size=16M",
				"--innodb-flush-log-at-trx-commit=0",
			)
		},
		probe: func(c net.Conn) error {
			_, err := mysqlGreeting(c)
			return err
		},
	})

	sql := fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s`; "+
		"CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; "+
		"GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION; FLUSH PRIVILEGES;",
		MariaDBDatabase, MariaDBUser, MariaDBPassword, MariaDBUser)
	setup(t, "mariadb (create user)", exec.Command(client,
		"--no-defaults", "--protocol=socket", "--socket="+socket, "--user=root", "--batch", "-e", sql))

	return fmt.Sprintf("%s:%s@tcp(%s)/%s", MariaDBUser, MariaDBPassword, addr, MariaDBDatabase)
}

// mysqlGreeting reads the server's initial handshake packet and returns the
// server version it announces. It fails on an error packet (0xff), which is
// what a server that refuses the connection sends instead.
func mysqlGreeting(r io.Reader) (version string, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("greeting header: %w", err)
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n < 2 || n > 1<<16 {
		return "", fmt.Errorf("greeting length %d out of range", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("greeting body: %w", err)
	}
	switch body[0] {
	case 10:
	case 0xff:
		return "", fmt.Errorf("server refused: %q", body[min(len(body), 3):])
	default:
		return "", fmt.Errorf("protocol version %d, want 10", body[0])
	}
	v, _, ok := bytes.Cut(body[1:], []byte{0})
	if !ok {
		return "", errors.New("greeting: unterminated server version")
	}
	return string(v), nil
}

// PostgresUser is the superuser StartPostgres creates; it authenticates by
// trust on loopback.
const PostgresUser = "podkit"

// StartPostgres initialises a PostgreSQL cluster in a temporary directory
// and runs postgres on a free loopback port, with its unix socket in that
// directory, and returns a DSN in URL form:
//
//	postgres://podkit@127.0.0.1:PORT/postgres?sslmode=disable
//
// The superuser is PostgresUser and authentication is trust. PostgreSQL
// refuses to run as root, so when the test runs as root the cluster belongs
// to, and the server runs as, the "postgres" system user, which the Debian
// package creates. The server is stopped when the test ends.
func StartPostgres(t testing.TB) (dsn string) {
	t.Helper()
	initdb := Binary(t, "initdb")
	if initdb == "" {
		return ""
	}
	server := Binary(t, "postgres")
	if server == "" {
		return ""
	}
	var owner *user.User // nil: the current user
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			unmet(t, "system user postgres not found: "+err.Error(), "apt-get install postgresql")
			return ""
		}
		owner = u
	}
	dir := shortTempDir(t, "postgres", owner)
	data := filepath.Join(dir, "data")

	cmd := exec.Command(initdb,
		"--pgdata="+data,
		"--username="+PostgresUser,
		"--auth=trust",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	)
	if err := runAs(cmd, owner, dir); err != nil {
		t.Fatalf("testdeps: initdb: %v", err)
		return ""
	}
	setup(t, "initdb", cmd)

	addr := run(t, spec{
		name:     "postgres",
		stopWith: os.Interrupt, // "fast" shutdown; SIGTERM waits for clients
		cmd: func(port int) *exec.Cmd {
			cmd := exec.Command(server,
				"-D", data,
				"-h", "127.0.0.1",
				"-p", strconv.Itoa(port),
				"-k", dir,
				"-F", // fsync off
				"-c", "shared_buffers=16MB",
				"-c", "max_connections=50",
				"-c", "logging_collector=off",
			)
			if err := runAs(cmd, owner, dir); err != nil {
				t.Fatalf("testdeps: postgres: %v", err)
			}
			return cmd
		},
		probe: func(c net.Conn) error {
			return postgresStartup(c, PostgresUser, "postgres")
		},
	})
	return fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable", PostgresUser, addr)
}

// postgresStartup sends a protocol 3.0 StartupMessage and reads replies
// until ReadyForQuery, failing on an ErrorResponse (for example "the
// database system is starting up").
func postgresStartup(c net.Conn, user, database string) error {
	var body bytes.Buffer
	binary.Write(&body, binary.BigEndian, int32(196608)) // protocol 3.0
	for _, s := range []string{"user", user, "database", database, ""} {
		body.WriteString(s)
		body.WriteByte(0)
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(body.Len()+4))
	msg = append(msg, body.Bytes()...)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for {
		typ, err := r.ReadByte()
		if err != nil {
			return err
		}
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return err
		}
		if n < 4 || n > 1<<20 {
			return fmt.Errorf("message %q: length %d out of range", typ, n)
		}
		payload := make([]byte, n-4)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		switch typ {
		case 'E':
			return fmt.Errorf("postgres: %s", pgErrorMessage(payload))
		case 'R':
			if len(payload) < 4 || binary.BigEndian.Uint32(payload) != 0 {
				return fmt.Errorf("postgres asks for authentication %v; want trust", payload)
			}
		case 'Z':
			return nil
		}
	}
}

// pgErrorMessage extracts the 'M' (message) field of an ErrorResponse.
func pgErrorMessage(payload []byte) string {
	for _, f := range bytes.Split(payload, []byte{0}) {
		if len(f) > 0 && f[0] == 'M' {
			return string(f[1:])
		}
	}
	return fmt.Sprintf("%q", payload)
}

// expandPlaceholders replaces {{PORT}} and {{DIR}} in a configuration.
func expandPlaceholders(conf string, port int, dir string) string {
	return strings.NewReplacer(PortPlaceholder, strconv.Itoa(port), DirPlaceholder, dir).Replace(conf)
}

// shortTempDir makes a temporary directory under the system temporary
// directory, owned by owner (nil: the current user), and removes it when the
// test ends. Servers with unix sockets need a short path (a socket path is
// limited to about 100 bytes, and t.TempDir's names are long), and a server
// running as another user needs every parent to be traversable, which
// t.TempDir's parent is not.
func shortTempDir(t testing.TB, name string, owner *user.User) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "podkit-"+name+"-")
	if err != nil {
		t.Fatalf("testdeps: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if owner != nil {
		uid, err1 := strconv.Atoi(owner.Uid)
		gid, err2 := strconv.Atoi(owner.Gid)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("testdeps: user %s: %v", owner.Username, err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("testdeps: %v", err)
		}
	}
	return dir
}

// setup runs a one-off command to completion and fails the test, showing
// its output, if it does not succeed within setupTimeout.
func setup(t testing.TB, name string, cmd *exec.Cmd) {
	t.Helper()
	var out tailBuffer
	out.max = 1 << 16
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testdeps: %s: %v", name, err)
		return
	}
	timer := time.AfterFunc(setupTimeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		err = fmt.Errorf("killed after %v", setupTimeout)
	}
	if err != nil {
		t.Fatalf("testdeps: %s failed: %v\n%s", name, err, tail(out.Bytes(), 4096))
	}
}

// spec describes a server to run.
type spec struct {
	name     string
	cmd      func(port int) *exec.Cmd // the command listening on 127.0.0.1:port
	probe    func(net.Conn) error     // nil error: the server answers
	stopWith os.Signal                // default SIGTERM
}

// run starts the server described by s on a free port and waits until a
// connection to it passes the probe. A server that exits before answering
// because its port was taken in the meantime is retried on a new port. The
// server is stopped when the test ends; if the test failed, its output is
// logged first.
func run(t testing.TB, s spec) string {
	t.Helper()
	for try := 1; ; try++ {
		port := nextPort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := launch(s.cmd(port), s.stopWith)
		if err != nil {
			t.Fatalf("testdeps: starting %s: %v", s.name, err)
			return ""
		}
		shown := false // the output is already in a failure message
		t.Cleanup(func() {
			p.stop()
			if t.Failed() && !shown {
				t.Logf("%s output:\n%s", s.name, tail(p.output(), 8192))
			}
		})
		err = p.waitReady(addr, s.probe)
		if err == nil {
			return addr
		}
		out := p.output()
		if p.exited() && try < startTries && bytes.Contains(bytes.ToLower(out), []byte("in use")) {
			shown = true // a retried attempt's output is noise
			continue
		}
		shown = true
		t.Fatalf("testdeps: %s on %s not ready: %v\n%s", s.name, addr, err, tail(out, 4096))
		return ""
	}
}

// nextPort picks the port for each attempt to start a server; tests replace
// it to make a port collide.
var nextPort = freePort

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testdeps: finding a free port: %v", err)
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a running server.
type process struct {
	cmd      *exec.Cmd
	stopWith os.Signal
	out      *tailBuffer
	done     chan struct{} // closed when the process has exited
	err      error         // Wait's result, valid after done
}

// launch starts cmd in its own process group with its output captured.
func launch(cmd *exec.Cmd, stopWith os.Signal) (*process, error) {
	if stopWith == nil {
		stopWith = syscall.SIGTERM
	}
	p := &process{cmd: cmd, stopWith: stopWith, out: &tailBuffer{max: 1 << 16}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	ownGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) output() []byte { return p.out.Bytes() }

// waitReady dials addr until probe passes on a connection, the process
// exits, or readyTimeout passes.
func (p *process) waitReady(addr string, probe func(net.Conn) error) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("exited before answering: %v", p.err)
		}
		c, err := net.DialTimeout("tcp", addr, dialTimeout)
		if err == nil {
			c.SetDeadline(time.Now().Add(dialTimeout))
			err = probe(c)
			c.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer within %v: %v", readyTimeout, last)
}

// stop signals the process and waits for it to exit; after stopTimeout it
// kills the process group.
func (p *process) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(p.stopWith)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		killGroup(p.cmd)
		<-p.done
	}
}

// tailBuffer is an io.Writer, safe for concurrent use, that keeps the last
// max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf)
}

// tail returns at most the last n bytes of b, as text.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
