package shard

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// readStats connects to a twemproxy stats port and reads its document to
// the end: the server closes the connection after it.
func readStats(t *testing.T, addr string) map[string]any {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c) // ends only if the server closes
	if err != nil {
		t.Fatalf("stats from %s: %v (read %q)", addr, err, b)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("stats from %s are not JSON: %v\n%s", addr, err, b)
	}
	return doc
}

// keyPaths lists every key of a JSON document as a path ("pool/server/requests").
func keyPaths(prefix string, doc map[string]any) []string {
	var out []string
	for k, v := range doc {
		out = append(out, prefix+k)
		if m, ok := v.(map[string]any); ok {
			out = append(out, keyPaths(prefix+k+"/", m)...)
		}
	}
	slices.Sort(out)
	return out
}

// TestStatsMatchNutcracker runs the real nutcracker and podkit with the
// same pools: the JSON documents on their stats ports have the same keys,
// at every level (pools, servers, counters), and the same types.
func TestStatsMatchNutcracker(t *testing.T) {
	t.Parallel()
	ra, rb := testdeps.StartRedis(t), testdeps.StartRedis(t)
	ma := testdeps.StartMemcached(t)
	if ra == "" || ma == "" || testdeps.Binary(t, "nutcracker") == "" {
		return
	}
	_, mport, _ := net.SplitHostPort(ma)
	pools := fmt.Sprintf(`  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: true
  servers:
   - %s:1
   - %s:1 beta
cache:
  listen: 127.0.0.1:%%s
  hash: md5
  servers:
   - 127.0.0.1:%s:1
`, ra, rb, mport)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, cachePort, _ := net.SplitHostPort(free.Addr().String())
	free.Close()
	nut, nutStats := testdeps.StartNutcracker(t, "alpha:\n  listen: 127.0.0.1:"+testdeps.PortPlaceholder+"\n"+fmt.Sprintf(pools, cachePort))
	file := filepath.Join(t.TempDir(), "nutcracker.yml")
	if err := os.WriteFile(file, []byte("alpha:\n  listen: 127.0.0.1:0\n"+fmt.Sprintf(pools, "0")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ConfigFile = file
	r := start(t, cfg)

	// Some traffic through both, so that the servers have connections.
	for _, addr := range []string{nut, r.addr("alpha")} {
		c := dialRedis(t, addr)
		if got := c.do("SET", "k", "v"); got != "+OK\r\n" {
			t.Fatalf("SET through %s: %q", addr, got)
		}
	}

	want := readStats(t, nutStats)
	got := readStats(t, r.px.StatsAddr().String())
	wantKeys, gotKeys := keyPaths("", want), keyPaths("", got)
	if !slices.Equal(wantKeys, gotKeys) {
		var missing, extra []string
		for _, k := range wantKeys {
			if !slices.Contains(gotKeys, k) {
				missing = append(missing, k)
			}
		}
		for _, k := range gotKeys {
			if !slices.Contains(wantKeys, k) {
				extra = append(extra, k)
			}
		}
		t.Fatalf("podkit's stats keys differ from nutcracker's:\nmissing: %v\nextra: %v", missing, extra)
	}
	var types func(path string, w, g map[string]any)
	types = func(path string, w, g map[string]any) {
		for k, wv := range w {
			gv := g[k]
			if fmt.Sprintf("%T", wv) != fmt.Sprintf("%T", gv) {
				t.Errorf("%s%s: nutcracker has %T %v, podkit %T %v", path, k, wv, wv, gv, gv)
			}
			if wm, ok := wv.(map[string]any); ok {
				if gm, ok := gv.(map[string]any); ok {
					types(path+k+"/", wm, gm)
				}
			}
		}
	}
	types("", want, got)
	if got["service"] != "nutcracker" {
		t.Errorf("service %v", got["service"])
	}
	// podkit's values are current: the SET above is counted.
	beta := got["alpha"].(map[string]any)
	var requests float64
	for _, name := range []string{ra, "beta"} {
		srv := beta[name].(map[string]any)
		requests += srv["requests"].(float64)
		if srv["requests"].(float64) > 0 && (srv["request_bytes"].(float64) == 0 || srv["responses"].(float64) == 0 || srv["server_connections"].(float64) != 1) {
			t.Errorf("server %s: %v", name, srv)
		}
	}
	if requests != 1 {
		t.Errorf("alpha: %v requests, want 1 (the SET)", requests)
	}
	if n := got["alpha"].(map[string]any)["client_connections"].(float64); n != 1 {
		t.Errorf("alpha client_connections %v, want 1", n)
	}
	if !strings.Contains(r.logs.String(), "twemproxy stats listening") {
		t.Error("no log line for the stats listener")
	}
}

// TestStatsCounters checks what twemproxy's counters say after events
// that move each of them.
func TestStatsCounters(t *testing.T) {
	t.Parallel()
	live, victim := newRedisProc(t), newRedisProc(t)
	if live == nil {
		return
	}
	cfg := redisConfig(live.addr(), victim.addr())
	cfg.AutoEject, cfg.FailureLimit, cfg.RetryTimeout = true, 1, time.Hour
	r := start(t, cfg)
	pool := func() map[string]any {
		return readStats(t, r.px.StatsAddr().String())["default"].(map[string]any)
	}
	num := func(m map[string]any, k string) float64 { return m[k].(float64) }

	c := dialRedis(t, r.addr(""))
	k0, k1 := keyOn(t, r, live.addr(), "st:"), keyOn(t, r, victim.addr(), "st:")
	if got := c.do("MGET", k0, k1); got != "*2\r\n$-1\r\n$-1\r\n" {
		t.Fatalf("MGET: %q", got)
	}
	if got := c.do("QUIT"); got != "+OK\r\n" {
		t.Fatalf("QUIT: %q", got)
	}
	bad := dialRedis(t, r.addr(""))
	bad.send([]byte("*1\r\n$x\r\n"))
	if got, _ := bad.tryRead(); !strings.HasPrefix(got, "-ERR Protocol error") {
		t.Fatalf("bad frame: %q", got)
	}
	eventually(t, "client_eof 1, client_err 1, fragments 2", func() string {
		p := pool()
		if num(p, "client_eof") != 1 || num(p, "client_err") != 1 || num(p, "fragments") != 2 || num(p, "client_connections") != 0 {
			return fmt.Sprintf("%v", p)
		}
		return ""
	})

	victim.stop()
	c2 := dialRedis(t, r.addr(""))
	// The first GET may find the connection the server just closed
	// and fail without a failed connection attempt; the next dials.
	eventually(t, "server ejected", func() string {
		if got := c2.do("GET", k1); !strings.HasPrefix(got, "-ERR podkit shard: server shard1") && got != "$-1\r\n" {
			t.Fatalf("GET on the dead server: %q", got)
		}
		if p := pool(); num(p, "server_ejects") != 1 {
			return fmt.Sprintf("%v", p)
		}
		return ""
	})
	p := pool()
	srv := p["shard1"].(map[string]any)
	if num(p, "server_ejects") != 1 || num(p, "forward_error") < 1 || num(srv, "server_ejected_at") < float64(time.Now().Add(-time.Minute).UnixMicro()) {
		t.Errorf("after an ejection: %v", p)
	}
	if num(srv, "server_eof")+num(srv, "server_err") < 1 || num(srv, "server_connections") != 0 {
		t.Errorf("dead server: %v", srv)
	}
	if s0 := p["shard0"].(map[string]any); num(s0, "requests") != 1 || num(s0, "responses") != 1 ||
		num(s0, "in_queue") != 0 || num(s0, "out_queue") != 0 || num(s0, "server_connections") != 1 {
		t.Errorf("live server: %v", s0)
	}
}
