package shard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestNutcrackerDifferential runs the real nutcracker and podkit on the
// same servers with the same pool settings: keys written through one are
// read back through the other, for several hash and distribution
// settings. All the podkit pools come from one nutcracker.yml, served by
// one process.
func TestNutcrackerDifferential(t *testing.T) {
	t.Parallel()
	addrs := []string{testdeps.StartRedis(t), testdeps.StartRedis(t), testdeps.StartRedis(t)}
	if addrs[0] == "" || testdeps.Binary(t, "nutcracker") == "" {
		return
	}
	combos := []struct {
		name, body string
	}{
		{"fnv1a_ketama", "hash: fnv1a_64\n  distribution: ketama\n  servers:\n   - %s:1\n   - %s:1\n   - %s:1\n"},
		{"murmur_modula_weights", "hash: murmur\n  distribution: modula\n  servers:\n   - %s:3\n   - %s:1\n   - %s:2\n"},
		{"md5_named_tag", "hash: md5\n  hash_tag: \"{}\"\n  distribution: ketama\n  servers:\n   - %s:1 alpha\n   - %s:2 beta\n   - %s:1 gamma\n"},
		{"crc32a_ketama_weights", "hash: crc32a\n  distribution: ketama\n  servers:\n   - %s:5\n   - %s:1\n   - %s:1\n"},
	}
	var podkitConf strings.Builder
	for _, c := range combos {
		fmt.Fprintf(&podkitConf, "%s:\n  listen: 127.0.0.1:0\n  redis: true\n  "+c.body, c.name, addrs[2], addrs[0], addrs[1])
	}
	file := filepath.Join(t.TempDir(), "nutcracker.yml")
	if err := os.WriteFile(file, []byte(podkitConf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ConfigFile = file
	r := start(t, cfg)
	for i, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			nconf := fmt.Sprintf("pool:\n  listen: 127.0.0.1:%s\n  redis: true\n  "+c.body, testdeps.PortPlaceholder, addrs[2], addrs[0], addrs[1])
			nut, _ := testdeps.StartNutcracker(t, nconf)
			pk := r.addr(c.name)
			for _, dir := range []struct{ name, w, rd string }{{"nutcracker->podkit", nut, pk}, {"podkit->nutcracker", pk, nut}} {
				prefix := fmt.Sprintf("d%d%s:", i, dir.name[:3])
				const n = 1500
				var sets, gets []byte
				for k := range n {
					key := fmt.Sprintf("%s%d", prefix, k)
					if k%3 == 0 {
						key = fmt.Sprintf("%s{user%d}:%d", prefix, k%17, k)
					}
					sets = append(sets, cmd("SET", key, "v"+key)...)
					gets = append(gets, cmd("GET", key)...)
				}
				w := dialRedis(t, dir.w)
				go w.send(sets)
				for k := range n {
					if got := w.read(); got != "+OK\r\n" {
						t.Fatalf("%s: SET %d: %q", dir.name, k, got)
					}
				}
				rd := dialRedis(t, dir.rd)
				go rd.send(gets)
				miss := 0
				for k := range n {
					got := rd.read()
					if !strings.HasPrefix(got, "$") || got == "$-1\r\n" {
						if miss++; miss < 5 {
							t.Errorf("%s: GET %d: %q", dir.name, k, got)
						}
					}
				}
				if miss > 0 {
					t.Fatalf("%s: %d of %d keys not found", dir.name, miss, n)
				}
			}
		})
	}
}

var _ = resp.AppendCommand
