//go:build container

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/podkit/podkit/e2e/containertest"
)

// TestPodShard: an app and `podkit shard` in one pod (shared network
// namespace), two Redis shards as their own containers reached by DNS.
// Keys written through the ambassador's localhost port spread over both
// shards; a stopped shard's keys get an error naming it (fail_closed)
// while the other shard's keys are served; SIGTERM drains and exits 0.
func TestPodShard(t *testing.T) {
	net := containertest.NewNetwork(t, "shard")
	var shards []*containertest.Container
	for i := range 2 {
		shards = append(shards, containertest.Run(t, containertest.Options{
			Name:    fmt.Sprintf("redis-%d", i),
			Image:   containertest.PeerImage(),
			Cmd:     []string{"redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"},
			Network: net.Name,
			Aliases: []string{fmt.Sprintf("redis-%d", i)},
		}))
	}
	conf := "app:\n  listen: 127.0.0.1:6379\n  redis: true\n  hash: fnv1a_64\n  hash_tag: \"{}\"\n  distribution: ketama\n" +
		"  timeout: 1000\n  fail_closed: true\n  server_failure_limit: 1\n  server_retry_timeout: 1000\n" +
		"  servers:\n   - redis-0:6379:1 shard-0\n   - redis-1:6379:1 shard-1\n"
	vol := containertest.NewVolume(t, "shard-conf")
	app := containertest.Run(t, containertest.Options{
		Name:    "app",
		Image:   containertest.PeerImage(),
		Cmd:     []string{"sh", "-c", "printf '%s' \"$CONF\" > /conf/nutcracker.yml && chmod 644 /conf/nutcracker.yml && exec sleep 3600"},
		Env:     []string{"CONF=" + conf},
		Network: net.Name,
		Publish: []string{"9901"},
		Volumes: []string{vol.Name + ":/conf"},
	})
	eventually(t, "config written", func() bool {
		out, err := app.Exec(t, "cat", "/conf/nutcracker.yml")
		return err == nil && strings.Contains(out, "shard-1")
	})
	amb := containertest.Run(t, containertest.Options{
		Name:      "shard",
		Image:     containertest.Image(),
		Cmd:       []string{"shard", "--config", "/conf/nutcracker.yml", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s"},
		NetworkOf: app,
		Volumes:   []string{vol.Name + ":/conf:ro"},
	})
	waitHTTP(t, "http://"+app.Addr(t, "9901")+"/readyz", 200)

	cli := func(args ...string) string {
		out, err := app.Exec(t, append([]string{"redis-cli", "-h", "127.0.0.1", "-p", "6379"}, args...)...)
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(out)
	}
	mset := []string{"MSET"}
	for i := range 200 {
		mset = append(mset, fmt.Sprintf("k%d", i), strconv.Itoa(i))
	}
	if got := cli(mset...); got != "OK" {
		t.Fatalf("MSET: %q", got)
	}
	total := 0
	for i, s := range shards {
		out, err := s.Exec(t, "redis-cli", "DBSIZE")
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		if err != nil || n == 0 {
			t.Fatalf("shard %d holds %q keys (%v): the keys were not spread", i, out, err)
		}
		total += n
	}
	if total != 200 {
		t.Fatalf("%d keys on the shards, want 200", total)
	}
	if got := cli("GET", "{user1}:name"); got != "" {
		t.Fatalf("GET missing key: %q", got)
	}

	// Stop shard-1: its keys fail, naming it; shard-0's keys are served.
	shards[1].Stop(t, 5)
	var onDead, onLive string
	for i := 0; onDead == "" || onLive == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		got := cli("GET", k)
		if strings.Contains(got, "shard-1") {
			onDead = k
		} else if got == strconv.Itoa(i) {
			onLive = k
		} else {
			t.Fatalf("GET %s with shard-1 down: %q", k, got)
		}
		if i > 199 {
			t.Fatalf("no key on each shard (dead %q, live %q)", onDead, onLive)
		}
	}
	if code := amb.Stop(t, 20); code != 0 {
		t.Fatalf("shard exited %d on SIGTERM", code)
	}
}
