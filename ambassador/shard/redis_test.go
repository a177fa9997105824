package shard

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

func redisConfig(servers ...string) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	for i, s := range servers {
		cfg.Servers = append(cfg.Servers, fmt.Sprintf("%s:1 shard%d", s, i))
	}
	return cfg
}

func TestRedisCommands(t *testing.T) {
	t.Parallel()
	a, b := testdeps.StartRedis(t), testdeps.StartRedis(t)
	if a == "" {
		return
	}
	cfg := redisConfig(a, b)
	cfg.HashTag = "{}"
	r := start(t, cfg)
	c := dialRedis(t, r.addr(""))
	tests := []struct {
		args []string
		want string // exact reply, or a prefix ending in "*"
	}{
		{[]string{"PING"}, "+PONG\r\n"},
		{[]string{"ping", "hi"}, bulk("hi")},
		{[]string{"ECHO", "x y"}, bulk("x y")},
		{[]string{"SELECT", "0"}, "+OK\r\n"},
		{[]string{"SELECT", "1"}, "-ERR podkit shard: SELECT 1 is not supported*"},
		{[]string{"COMMAND"}, "*0\r\n"},
		{[]string{"HELLO", "4"}, "-NOPROTO*"},
		{[]string{"HELLO", "2"}, "*14\r\n$6\r\nserver\r\n*"},
		{[]string{"SET", "k1", "v1"}, "+OK\r\n"},
		{[]string{"GET", "k1"}, bulk("v1")},
		{[]string{"GET", "missing"}, "$-1\r\n"},
		{[]string{"APPEND", "k1", "!"}, ":3\r\n"},
		{[]string{"INCR", "n"}, ":1\r\n"},
		{[]string{"INCRBY", "n", "41"}, ":42\r\n"},
		{[]string{"EXPIRE", "n", "100"}, ":1\r\n"},
		{[]string{"TTL", "n"}, ":100\r\n"},
		{[]string{"HSET", "h", "f", "1", "g", "2"}, ":2\r\n"},
		{[]string{"HGET", "h", "g"}, bulk("2")},
		{[]string{"HGETALL", "h"}, "*4\r\n*"},
		{[]string{"RPUSH", "l", "a", "b", "c"}, ":3\r\n"},
		{[]string{"LRANGE", "l", "0", "-1"}, "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"},
		{[]string{"SADD", "s", "x"}, ":1\r\n"},
		{[]string{"SISMEMBER", "s", "x"}, ":1\r\n"},
		{[]string{"ZADD", "z", "1", "one", "2", "two"}, ":2\r\n"},
		{[]string{"ZRANGE", "z", "0", "-1"}, "*2\r\n$3\r\none\r\n$3\r\ntwo\r\n"},
		{[]string{"TYPE", "z"}, "+zset\r\n"},
		{[]string{"MSET", "m1", "a", "m2", "b", "m3", "c", "m4", "d"}, "+OK\r\n"},
		{[]string{"MGET", "m1", "m2", "nope", "m3", "m4"}, "*5\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n$1\r\nc\r\n$1\r\nd\r\n"},
		{[]string{"EXISTS", "m1", "m2", "nope", "m3", "m4"}, ":4\r\n"},
		{[]string{"TOUCH", "m1", "m2"}, ":2\r\n"},
		{[]string{"DEL", "m1", "m2", "nope"}, ":2\r\n"},
		{[]string{"UNLINK", "m3", "m4"}, ":2\r\n"},
		{[]string{"SET", "{u1}:a", "1"}, "+OK\r\n"},
		{[]string{"RENAME", "{u1}:a", "{u1}:b"}, "+OK\r\n"},
		{[]string{"GET", "{u1}:b"}, bulk("1")},
		{[]string{"EVAL", "return redis.call('GET', KEYS[1])", "1", "{u1}:b"}, bulk("1")},
		{[]string{"EVAL", "return 1", "0"}, "-ERR podkit shard: EVAL without keys*"},
		{[]string{"SUNIONSTORE", "{t}:d", "{t}:a", "{t}:b"}, ":0\r\n"},
		{[]string{"KEYS", "*"}, "-ERR podkit shard: KEYS is not supported: it would see only one server's keys\r\n"},
		{[]string{"SCAN", "0"}, "-ERR podkit shard: SCAN is not supported*"},
		{[]string{"WATCH", "k"}, "-ERR podkit shard: WATCH is not supported: WATCH needs a server connection of its own, and podkit shard shares them; use MULTI/EXEC with keys in one hash tag, or a Lua script\r\n"},
		{[]string{"EXEC"}, "-ERR EXEC without MULTI\r\n"},
		{[]string{"BLPOP", "l", "0"}, "-ERR podkit shard: BLPOP is not supported*"},
		{[]string{"SUBSCRIBE", "ch"}, "-ERR podkit shard: SUBSCRIBE is not supported*"},
		{[]string{"FLUSHALL"}, "-ERR podkit shard: FLUSHALL is not supported*"},
		{[]string{"NOSUCHCMD", "x"}, "-ERR unknown command 'NOSUCHCMD'*"},
		{[]string{"GET"}, "-ERR wrong number of arguments for 'get' command\r\n"},
		{[]string{"AUTH", "x"}, "-ERR AUTH <password> called without any password configured*"},
		{[]string{"GET", "k1"}, bulk("v1!")},
	}
	for _, tt := range tests {
		got := c.do(tt.args...)
		if p, ok := strings.CutSuffix(tt.want, "*"); ok && tt.want != "*0\r\n" {
			if !strings.HasPrefix(got, p) {
				t.Errorf("%q = %q, want prefix %q", tt.args, got, p)
			}
		} else if got != tt.want {
			t.Errorf("%q = %q, want %q", tt.args, got, tt.want)
		}
	}
	// A cross-server RENAME is refused, naming the command.
	var k1, k2 string
	for i := 0; k2 == ""; i++ {
		k := fmt.Sprintf("x%d", i)
		switch {
		case k1 == "":
			k1 = k
		case r.px.pools()[0].pick([]byte(k)) != r.px.pools()[0].pick([]byte(k1)):
			k2 = k
		}
	}
	if got := c.do("RENAME", k1, k2); !strings.HasPrefix(got, "-ERR podkit shard: RENAME keys are on different servers") {
		t.Errorf("cross-server RENAME: %q", got)
	}
	if got := c.do("QUIT"); got != "+OK\r\n" {
		t.Errorf("QUIT: %q", got)
	}
	if _, err := c.tryRead(); err == nil {
		t.Error("connection still open after QUIT")
	}
}

// TestPipeline sends 10k mixed commands in one pipeline and checks every
// reply arrives, in order.
func TestPipeline(t *testing.T) { testPipeline(t, 1) }

// testPipeline is TestPipeline with loops event loops (the default is 1).
func testPipeline(t *testing.T, loops int) {
	t.Parallel()
	a, b, c3 := testdeps.StartRedis(t), testdeps.StartRedis(t), testdeps.StartRedis(t)
	if a == "" {
		return
	}
	cfg := redisConfig(a, b, c3)
	cfg.EventLoops = loops
	r := start(t, cfg)
	c := dialRedis(t, r.addr(""))
	const n = 10000
	var out []byte
	var want []string
	for i := range n {
		k := fmt.Sprintf("p:%d", i)
		switch i % 5 {
		case 0:
			out = append(out, cmd("SET", k, k)...)
			want = append(want, "+OK\r\n")
		case 1:
			out = append(out, cmd("GET", fmt.Sprintf("p:%d", i-1))...)
			want = append(want, bulk(fmt.Sprintf("p:%d", i-1)))
		case 2:
			out = append(out, cmd("INCR", k)...)
			want = append(want, ":1\r\n")
		case 3:
			out = append(out, cmd("MGET", fmt.Sprintf("p:%d", i-3), fmt.Sprintf("p:%d", i-1), "p:none")...)
			want = append(want, "*3\r\n"+bulk(fmt.Sprintf("p:%d", i-3))+bulk("1")+"$-1\r\n")
		case 4:
			out = append(out, cmd("PING")...)
			want = append(want, "+PONG\r\n")
		}
	}
	go c.send(out)
	for i, w := range want {
		if got := c.read(); got != w {
			t.Fatalf("reply %d = %q, want %q", i, got, w)
		}
	}
}

// TestMultiKeySplit checks that MSET spreads keys over the servers as the
// ring says, and that MGET, EXISTS and DEL merge the servers' replies.
func TestMultiKeySplit(t *testing.T) { testMultiKeySplit(t, 1) }

// testMultiKeySplit is TestMultiKeySplit with loops event loops (the default is 1).
func testMultiKeySplit(t *testing.T, loops int) {
	t.Parallel()
	addrs := []string{testdeps.StartRedis(t), testdeps.StartRedis(t), testdeps.StartRedis(t)}
	if addrs[0] == "" {
		return
	}
	cfg := redisConfig(addrs...)
	cfg.Hash = "murmur" // twemproxy's fnv1a_64 clusters keys like split:N
	cfg.EventLoops = loops
	r := start(t, cfg)
	c := dialRedis(t, r.addr(""))
	args := []string{"MSET"}
	mget := []string{"MGET"}
	for i := range 300 {
		args = append(args, fmt.Sprintf("split:%d", i), fmt.Sprint(i))
		mget = append(mget, fmt.Sprintf("split:%d", i))
	}
	if got := c.do(args...); got != "+OK\r\n" {
		t.Fatalf("MSET: %q", got)
	}
	pl := r.px.pools()[0]
	seen := map[string]int{}
	for _, a := range addrs {
		for k := range keysOn(t, a, "split:") {
			if want := pl.pick([]byte(k)).cfg.Addr; want != a {
				t.Errorf("key %s on %s, ring says %s", k, a, want)
			}
			seen[a]++
		}
	}
	if len(seen) != 3 {
		t.Fatalf("keys on %d servers, want 3: %v", len(seen), seen)
	}
	var want strings.Builder
	fmt.Fprintf(&want, "*300\r\n")
	for i := range 300 {
		want.WriteString(bulk(fmt.Sprint(i)))
	}
	if got := c.do(mget...); got != want.String() {
		t.Fatalf("MGET: %q", got)
	}
	mget[0] = "EXISTS"
	if got := c.do(mget...); got != ":300\r\n" {
		t.Fatalf("EXISTS: %q", got)
	}
	mget[0] = "DEL"
	if got := c.do(mget...); got != ":300\r\n" {
		t.Fatalf("DEL: %q", got)
	}
}

// TestProtocolErrors checks that a malformed or oversized frame gets a
// protocol error on its own connection, after the replies to what came
// before it, and that other clients are not disturbed.
func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	a := testdeps.StartRedis(t)
	if a == "" {
		return
	}
	cfg := redisConfig(a)
	cfg.MaxBulk = 1024
	r := start(t, cfg)
	other := dialRedis(t, r.addr(""))
	other.send(cmd("SET", "other", "1"))
	tests := []struct{ name, in, want string }{
		{"bad length", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"not bulk", "*1\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
		{"oversized", "*2\r\n$3\r\nSET\r\n$2000\r\n", "-ERR Protocol error: frame too large: bulk string of 2000 bytes, the limit is 1024 (--max-bulk)\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRedis(t, r.addr(""))
			c.send(append(cmd("PING"), tt.in...))
			if got := c.read(); got != "+PONG\r\n" {
				t.Fatalf("reply before the bad frame: %q", got)
			}
			if got := c.read(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if _, err := c.tryRead(); err == nil {
				t.Fatal("connection still open")
			}
		})
	}
	if got := other.read(); got != "+OK\r\n" {
		t.Fatalf("other client: %q", got)
	}
	if got := other.do("GET", "other"); got != bulk("1") {
		t.Fatalf("other client: %q", got)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	a := testdeps.StartRedis(t, "--requirepass", "s3cret")
	if a == "" {
		return
	}
	pw := t.TempDir() + "/pw"
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	cfg := redisConfig(a)
	cfg.PasswordFile = pw
	r := start(t, cfg)
	c := dialRedis(t, r.addr(""))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "k"}, "-NOAUTH Authentication required.\r\n"},
		{[]string{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{[]string{"AUTH", "s3cret"}, "+OK\r\n"},
		{[]string{"SET", "k", "v"}, "+OK\r\n"},
		{[]string{"GET", "k"}, bulk("v")},
	} {
		if got := c.do(tt.args...); got != tt.want {
			t.Errorf("%q = %q, want %q", tt.args, got, tt.want)
		}
	}
	c2 := dialRedis(t, r.addr(""))
	if got := c2.do("HELLO", "2", "AUTH", "default", "s3cret"); !strings.HasPrefix(got, "*14\r\n") {
		t.Errorf("HELLO AUTH: %q", got)
	}
	if got := c2.do("GET", "k"); got != bulk("v") {
		t.Errorf("after HELLO AUTH: %q", got)
	}
	// A RESP3 client: its server connections authenticate with HELLO 3 AUTH.
	c3 := dialRedis(t, r.addr(""))
	if got := c3.do("HELLO", "3", "AUTH", "default", "s3cret"); !strings.HasPrefix(got, "%7\r\n") {
		t.Errorf("HELLO 3 AUTH: %q", got)
	}
	if got := c3.do("GET", "k"); got != bulk("v") {
		t.Errorf("RESP3 GET after HELLO 3 AUTH: %q", got)
	}
	if got := c3.do("GET", "nothing"); got != "_\r\n" {
		t.Errorf("RESP3 GET of a missing key: %q", got)
	}
	if strings.Contains(r.logs.String(), "s3cret") {
		t.Error("password in the log")
	}
	resp, err := http.Get(r.admin + "/info")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(info), "s3cret") || !strings.Contains(string(info), `"redis_auth": "[redacted]"`) {
		t.Errorf("/info shows the password or no pool: %s", info)
	}
}

// TestSlowReader: a client that does not read its large replies for a
// while must not hold up the server connection it shares with others, and
// gets every byte once it reads. The test is ordered by events, not
// timed: the proxy has read every large reply from the server (so it holds
// them for a client that is not reading) before the other client asks,
// and the other client's requests are answered before the slow one reads
// anything. A proxy that let the slow client block the connection would
// never answer them (the deadlines only bound that hang).
func TestSlowReader(t *testing.T) { testSlowReader(t, 1) }

// testSlowReader is TestSlowReader with loops event loops (the default is 1).
func testSlowReader(t *testing.T, loops int) {
	t.Parallel()
	a := testdeps.StartRedis(t)
	if a == "" {
		return
	}
	cfg := redisConfig(a)
	cfg.Timeout = 0 // what is tested is who waits, not how long redis takes to send 16 MiB on a loaded machine
	cfg.EventLoops = loops
	r := start(t, cfg)
	big := strings.Repeat("0123456789abcdef", 128<<10) // 2 MiB
	setup := dialRedis(t, r.addr(""))
	if got := setup.do("SET", "big", big); got != "+OK\r\n" {
		t.Fatalf("SET big = %q", got)
	}
	if got := setup.do("SET", "small", "x"); got != "+OK\r\n" {
		t.Fatalf("SET small = %q", got)
	}
	srv := r.px.pools()[0].servers[0]
	before := srv.requests.Load()

	slow := dialRedis(t, r.addr(""))
	const n = 8
	var pipe []byte
	for range n {
		pipe = append(pipe, cmd("GET", "big")...)
	}
	slow.send(pipe) // 16 MiB of replies, far more than the socket buffers hold
	testdeps.WaitForWithin(t, 2*time.Minute, fmt.Sprintf("the server to answer the %d large GETs", n), func() bool {
		return srv.requests.Load() >= before+n
	})

	// The proxy now holds replies the slow client is not reading.
	// Meanwhile another client, on the same server connection, is answered.
	other := dialRedis(t, r.addr(""))
	for i := range 20 {
		other.send(cmd("GET", "small"))
		other.nc.SetReadDeadline(time.Now().Add(time.Minute))
		got, err := other.rd.ReadReply()
		if err != nil {
			t.Fatalf("GET small #%d while another client was not reading: %v", i, err)
		}
		if string(got) != bulk("x") {
			t.Fatalf("GET small #%d = %q", i, got)
		}
	}

	for i := range n {
		if got := slow.read(); got != bulk(big) {
			t.Fatalf("GET big #%d: %d bytes, want %d", i, len(got), len(bulk(big)))
		}
	}
	if got := slow.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING after the large replies = %q", got)
	}
}

// TestTransaction checks MULTI/EXEC on keys that share a hash tag: the
// transaction runs on their server, atomically, and keys on two servers
// abort it before anything is sent.
func TestTransaction(t *testing.T) { testTransaction(t, 1) }

// testTransaction is TestTransaction with loops event loops (the default is 1).
func testTransaction(t *testing.T, loops int) {
	t.Parallel()
	addrs := []string{testdeps.StartRedis(t), testdeps.StartRedis(t)}
	if addrs[0] == "" {
		return
	}
	cfg := redisConfig(addrs...)
	cfg.HashTag = "{}"
	cfg.EventLoops = loops
	r := start(t, cfg)
	pl := r.px.pools()[0]
	// Two tags on different servers.
	tags := map[string]string{}
	for i := 0; len(tags) < 2; i++ {
		tag := fmt.Sprintf("user%d", i)
		tags[pl.pick([]byte(tag)).cfg.Addr] = tag
	}
	a, b := tags[addrs[0]], tags[addrs[1]]
	c := dialRedis(t, r.addr(""))
	steps := []struct {
		cmd  []string
		want string
	}{
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"SET", "{" + a + "}:name", "ann"}, "+QUEUED\r\n"},
		{[]string{"INCR", "{" + a + "}:visits"}, "+QUEUED\r\n"},
		{[]string{"MGET", "{" + a + "}:name", "{" + a + "}:visits"}, "+QUEUED\r\n"},
		{[]string{"LPUSH", "{" + a + "}:name", "x"}, "+QUEUED\r\n"}, // fails at EXEC: wrong type
		{[]string{"EXEC"}, "*4\r\n+OK\r\n:1\r\n*2\r\n$3\r\nann\r\n$1\r\n1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"MULTI"}, "-ERR MULTI calls can not be nested\r\n"},
		{[]string{"INCR", "{" + a + "}:visits"}, "+QUEUED\r\n"},
		{[]string{"INCR", "{" + b + "}:visits"}, "-ERR podkit shard: the keys of a transaction must all be on one server; put the shared part of the keys in the hash tag, e.g. {...}\r\n"},
		{[]string{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors.\r\n"},
		{[]string{"GET", "{" + a + "}:visits"}, "$1\r\n1\r\n"}, // the aborted INCR never ran
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"SET", "{" + b + "}:k", "v"}, "+QUEUED\r\n"},
		{[]string{"DISCARD"}, "+OK\r\n"},
		{[]string{"EXISTS", "{" + b + "}:k"}, ":0\r\n"},
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"PING"}, "-ERR podkit shard: PING inside MULTI is not supported: only commands with keys, all on one server, can be queued\r\n"},
		{[]string{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors.\r\n"},
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"EXEC"}, "*0\r\n"},
	}
	for _, s := range steps {
		if got := c.do(s.cmd...); got != s.want {
			t.Fatalf("%v: got %q, want %q", s.cmd, got, s.want)
		}
	}
	// The transaction ran on a's server.
	if got := keysOn(t, addrs[0], "{"+a+"}"); len(got) != 2 {
		t.Errorf("keys of the transaction on %s: %v", addrs[0], got)
	}
	// Pipelined transactions from several clients interleave on the
	// shared server connection without mixing.
	var wg sync.WaitGroup
	for i := range 8 {
		cc := dialRedis(t, r.addr(""))
		key := fmt.Sprintf("{%s}:n%d", a, i)
		var batch []byte
		for range 50 {
			batch = append(batch, cmd("MULTI")...)
			batch = append(batch, cmd("INCR", key)...)
			batch = append(batch, cmd("INCR", key)...)
			batch = append(batch, cmd("EXEC")...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cc.nc.Write(batch); err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			for j := range 50 {
				want := []string{"+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", fmt.Sprintf("*2\r\n:%d\r\n:%d\r\n", 2*j+1, 2*j+2)}
				for _, w := range want {
					if got, err := cc.tryRead(); got != w {
						t.Errorf("client %d transaction %d: got %q (%v), want %q", i, j, got, err, w)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestRESP3 checks that a client that negotiates RESP3 gets the servers'
// RESP3 replies (maps, nulls, doubles) through, multi-key commands
// merged, while RESP2 clients on the same pool keep RESP2; and that HELLO
// 2 switches back.
func TestRESP3(t *testing.T) {
	t.Parallel()
	addrs := []string{testdeps.StartRedis(t), testdeps.StartRedis(t)}
	if addrs[0] == "" {
		return
	}
	cfg := redisConfig(addrs...)
	cfg.Hash = "murmur"
	r := start(t, cfg)
	pl := r.px.pools()[0]
	on := map[string]string{} // a key on each server
	for i := 0; len(on) < 2; i++ {
		k := fmt.Sprintf("a%d", i)
		on[pl.pick([]byte(k)).cfg.Addr] = k
	}
	a1, a2 := on[addrs[0]], on[addrs[1]]
	c3 := dialRedis(t, r.addr(""))
	c2 := dialRedis(t, r.addr(""))
	if got := c3.do("HELLO", "3"); !strings.HasPrefix(got, "%7\r\n$6\r\nserver\r\n") || !strings.Contains(got, "$5\r\nproto\r\n:3\r\n") {
		t.Fatalf("HELLO 3: %q", got)
	}
	steps := []struct {
		c    *redisConn
		cmd  []string
		want string
	}{
		{c3, []string{"HSET", "h", "f", "1"}, ":1\r\n"},
		{c3, []string{"HGETALL", "h"}, "%1\r\n$1\r\nf\r\n$1\r\n1\r\n"},
		{c2, []string{"HGETALL", "h"}, "*2\r\n$1\r\nf\r\n$1\r\n1\r\n"},
		{c3, []string{"GET", "missing"}, "_\r\n"},
		{c2, []string{"GET", "missing"}, "$-1\r\n"},
		{c3, []string{"ZADD", "z", "1.5", "m"}, ":1\r\n"},
		{c3, []string{"ZSCORE", "z", "m"}, ",1.5\r\n"},
		{c3, []string{"MSET", a1, "x", a2, "y"}, "+OK\r\n"},
		{c3, []string{"MGET", a1, "nope", a2}, "*3\r\n$1\r\nx\r\n_\r\n$1\r\ny\r\n"},
		{c2, []string{"MGET", a1, "nope"}, "*2\r\n$1\r\nx\r\n$-1\r\n"},
		{c3, []string{"EXISTS", a1, a2, "nope"}, ":2\r\n"},
		{c3, []string{"HELLO", "2"}, "*14\r\n*"},
		{c3, []string{"HGETALL", "h"}, "*2\r\n$1\r\nf\r\n$1\r\n1\r\n"},
	}
	for _, s := range steps {
		got := s.c.do(s.cmd...)
		if w, ok := strings.CutSuffix(s.want, "*"); ok && strings.HasPrefix(got, w) {
			continue
		}
		if got != s.want {
			t.Fatalf("%v: got %q, want %q", s.cmd, got, s.want)
		}
	}
	// The keys are on both servers, so MGET was split.
	if !keysOn(t, addrs[0], a1)[a1] || !keysOn(t, addrs[1], a2)[a2] {
		t.Errorf("%s and %s not on their servers", a1, a2)
	}
}

// TestThreeLoops runs the main tests again with three event loops, where
// clients and server connections are spread over the loops.
func TestThreeLoops(t *testing.T) {
	for name, test := range map[string]func(*testing.T, int){
		"Pipeline":      testPipeline,
		"MultiKeySplit": testMultiKeySplit,
		"Transaction":   testTransaction,
		"SlowReader":    testSlowReader,
		"MemcacheMulti": testMemcacheMultiGet,
	} {
		t.Run(name, func(t *testing.T) { test(t, 3) })
	}
}
