package shard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A nutcracker.yml as twemproxy's README shows it, every key used.
const fullConfig = `alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: true
  redis: true
  server_retry_timeout: 2000
  server_failure_limit: 1
  servers:
   - 127.0.0.1:6379:1

beta:
  listen: 127.0.0.1:22122
  hash: fnv1a_64
  hash_tag: "{}"
  distribution: ketama
  auto_eject_hosts: false
  timeout: 400
  redis: true
  redis_auth: secret
  redis_db: 3
  backlog: 1024
  client_connections: 100
  tcpkeepalive: true
  preconnect: true
  server_connections: 2
  servers:
   - 127.0.0.1:6380:1 server1
   - 127.0.0.1:6381:1 server2

gamma:
  listen: /tmp/gamma.sock 0666
  hash: murmur
  distribution: modula
  servers:
   - 127.0.0.1:11211:1
   - /var/run/memcached.sock:2 local
`

func TestParseFull(t *testing.T) {
	pools, warns, err := Parse([]byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 3 {
		t.Fatalf("%d pools", len(pools))
	}
	b := pools[1]
	if b.Name != "beta" || b.Protocol != Redis || b.HashTag != "{}" || b.Timeout != 400*time.Millisecond ||
		b.RedisAuth != "secret" || b.RedisDB != 3 || !b.Preconnect || !b.TCPKeepalive || b.ServerConnections != 2 ||
		b.ClientConnections != 100 || b.ServerRetryTimeout != 30*time.Second || b.ServerFailureLimit != 2 {
		t.Errorf("beta: %+v", b)
	}
	if b.Servers[0].Name != "server1" || b.Servers[0].Addr != "127.0.0.1:6380" {
		t.Errorf("beta server: %+v", b.Servers[0])
	}
	g := pools[2]
	if g.Protocol != Memcache || g.Servers[0].Name != "127.0.0.1" || g.Servers[1].Network != "unix" || g.Servers[1].Name != "local" {
		t.Errorf("gamma: %+v", g)
	}
	if a := pools[0]; !a.AutoEjectHosts || a.ServerRetryTimeout != 2*time.Second || a.ServerFailureLimit != 1 || a.Timeout != 0 {
		t.Errorf("alpha: %+v", a)
	}
	if len(warns) != 1 || warns[0].Line != 22 || !strings.Contains(warns[0].Msg, "backlog") {
		t.Errorf("warnings: %v", warns)
	}
}

func TestRedisAuthFile(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("from-file\n"), 0o600)
	conf := "p:\n  listen: 127.0.0.1:1\n  redis: true\n  redis_auth_file: " + pw + "\n  servers:\n   - 127.0.0.1:2:1\n"
	pools, _, err := Parse([]byte(conf))
	if err != nil || pools[0].RedisAuth != "from-file" {
		t.Fatalf("%v %q", err, pools[0].RedisAuth)
	}
	_, _, err = Parse([]byte(strings.Replace(conf, pw, pw+".missing", 1)))
	if err == nil || !strings.Contains(err.Error(), `line 4: pool "p": redis_auth_file:`) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, conf, want string }{
		{"unknown key", "p:\n  listen: 127.0.0.1:1\n  hashes: md5\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 3: pool "p": unknown key "hashes"`},
		{"duplicate key", "p:\n  listen: 127.0.0.1:1\n  hash: md5\n  hash: crc32\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 4: pool "p": hash is a duplicate (first on line 3)`},
		{"bad hash", "p:\n  listen: 127.0.0.1:1\n  hash: sha1\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 3: pool "p": hash: unknown hash "sha1"`},
		{"bad distribution", "p:\n  listen: 127.0.0.1:1\n  distribution: consistent\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 3: pool "p": distribution: "consistent" is not ketama, modula or random`},
		{"bad bool", "p:\n  listen: 127.0.0.1:1\n  redis: yes\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 3: pool "p": redis: "yes" is not "true" or "false"`},
		{"bad number", "p:\n  listen: 127.0.0.1:1\n  timeout: -5\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 3: pool "p": timeout: "-5" is not a number`},
		{"bad tag", "p:\n  listen: 127.0.0.1:1\n  hash_tag: \"{\"\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 3: pool "p": hash_tag: "{" is not a hash tag of two characters`},
		{"zero weight", "p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:0\n",
			`line 4: pool "p": server "127.0.0.1:2:0": weight must be at least 1`},
		{"bad server", "p:\n  listen: 127.0.0.1:1\n  servers:\n   - localhost\n",
			`line 4: pool "p": server "localhost": not "hostname:port:weight [name]"`},
		{"no listen", "p:\n  servers:\n   - 127.0.0.1:2:1\n", `line 1: pool "p": listen is missing`},
		{"no servers", "p:\n  listen: 127.0.0.1:1\n", `line 1: pool "p" has no servers`},
		{"same name", "p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1 a\n   - 127.0.0.1:3:1 a\n",
			`pool "p" has servers with the same name "a"`},
		{"same listen", "p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1\nq:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1\n",
			`pools "p" and "q" have the same listen address "127.0.0.1:1"`},
		{"not a mapping", "- a\n- b\n", "line 1: want a mapping of pool names to pools"},
		{"nested", "p:\n  listen: 127.0.0.1:1\n  hash:\n    x: y\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 4: pool "p": hash must be a single value`},
		{"auth on memcache", "p:\n  listen: 127.0.0.1:1\n  redis_auth: x\n  servers:\n   - 127.0.0.1:2:1\n",
			`line 3: pool "p": redis_auth needs redis: true`},
		{"yaml syntax", "p:\n  listen: [\n", "line 2: YAML syntax error: "},
		{"empty", "", "no pools"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.conf))
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestParseSyntaxErrorLine: a YAML syntax error is reported on the line
// where it is, not on the line where the enclosing mapping starts (as the
// YAML library's message says).
func TestParseSyntaxErrorLine(t *testing.T) {
	const head = "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  hash: fnv1a_64\n"
	tests := []struct {
		name, conf string
		line       int
	}{
		{"sequence in a mapping", head + "  - x\n", 5},
		{"text after a quoted value", head + "  key: 'a' b\n", 5},
		{"bad indentation", head + "  servers:\n - a:1:1\n", 6},
		{"tab", head + "  servers:\n  - a:1:1\n\t- b:1:1\n", 7},
		{"unclosed flow sequence", head + "  distribution: [ketama\n  timeout: 400\n", 5},
		{"key indented too far", head + "  servers:\n   - a:1:1\n   hash: x\n", 7},
		{"unterminated quote", head + "  servers:\n   - a:1:1\n  x: \"abc\n", 7},
		{"unknown anchor", head + "  servers:\n   - *b\n", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.conf))
			if err == nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v, want a configuration error", err)
			}
			want := fmt.Sprintf("line %d", tt.line)
			if !strings.Contains(err.Error(), want+": YAML syntax error: ") {
				t.Fatalf("error %q, want it to say %q", err, want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"nothing", func(c *Config) {}, "--listen: required"},
		{"both", func(c *Config) { c.ConfigFile = "x"; c.Listen = "127.0.0.1:1" }, "--config and --listen/--server are exclusive"},
		{"bad server", func(c *Config) { c.Listen = "127.0.0.1:1"; c.Servers = []string{"x"} }, `--server "x"`},
		{"bad hash", func(c *Config) { c.Listen = "127.0.0.1:1"; c.Servers = []string{"a:1:1"}; c.Hash = "x" }, "--hash"},
		{"eject and fail closed", func(c *Config) {
			c.Listen = "127.0.0.1:1"
			c.Servers = []string{"a:1:1"}
			c.AutoEject, c.FailClosed = true, true
		}, "--auto-eject-hosts and --fail-closed are exclusive"},
		{"password on memcache", func(c *Config) {
			c.Listen = "127.0.0.1:1"
			c.Servers = []string{"a:1:1"}
			c.Protocol = Memcache
			c.PasswordFile = "/x"
		}, "--password-file: only for --protocol redis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{ConfigFile: filepath.Join(t.TempDir(), "none.yml"), MaxBulk: 1}); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestProtocolAlias: --protocol memcached is the obvious spelling of
// memcache; anything else is refused naming the flag.
func TestProtocolAlias(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"memcached", Memcache}, {"memcache", Memcache}, {"redis", Redis}, {"Memcached", Memcache},
	} {
		c := DefaultConfig()
		c.Listen, c.Servers, c.Protocol = "127.0.0.1:0", []string{"127.0.0.1:11211:1"}, tt.in
		if err := c.Validate(); err != nil {
			t.Fatalf("--protocol %s: %v", tt.in, err)
		}
		pools, _, err := c.pools()
		if err != nil || pools[0].Protocol != tt.want {
			t.Fatalf("--protocol %s: pools %+v, %v; want protocol %s", tt.in, pools, err, tt.want)
		}
	}
	c := DefaultConfig()
	c.Listen, c.Servers, c.Protocol = "127.0.0.1:0", []string{"127.0.0.1:11211:1"}, "mysql"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `--protocol: "mysql" is not redis or memcache (memcached)`) {
		t.Fatalf("--protocol mysql: %v", err)
	}
}

// FuzzParse checks that no nutcracker.yml panics the parser.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullConfig))
	f.Add([]byte("p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1\n"))
	f.Add([]byte("p: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pools, _, err := Parse(b)
		if err == nil && len(pools) == 0 {
			t.Fatal("no pools and no error")
		}
	})
}
