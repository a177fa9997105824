//go:build container

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
)

// redisCmd sends one command in RESP and returns the first reply line.
func redisCmd(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// slowlogEvents returns the JSON events of the adapter's output (its own
// logs, on stderr, have no "body" field).
func slowlogEvents(logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil {
			if _, ok := ev["body"]; ok {
				out = append(out, ev)
			}
		}
	}
	return out
}

// TestPodRedisSlowlog: redis-server and `podkit logs --redis-slowlog` in
// one pod (shared network namespace). Each slow command appears once as
// a structured line; a real restart of Redis (DEBUG RESTART re-executes
// the server: new run_id, empty slowlog) is reported as an event and a
// metric; SIGTERM drains and exits 0.
func TestPodRedisSlowlog(t *testing.T) {
	redis := containertest.Run(t, containertest.Options{
		Name:  "redis",
		Image: containertest.PeerImage(),
		Cmd: []string{"/usr/bin/redis-server", "--bind", "0.0.0.0", "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--slowlog-log-slower-than", "0", "--slowlog-max-len", "64", "--enable-debug-command", "yes"},
		Publish: []string{"6379", "9901"},
	})
	adapter := containertest.Run(t, containertest.Options{
		Name:      "slowlog",
		Image:     containertest.Image(),
		Cmd:       []string{"logs", "--redis-slowlog", "127.0.0.1:6379", "--every", "200ms", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s"},
		NetworkOf: redis,
	})
	addr := redis.Addr(t, "6379")
	admin := "http://" + redis.Addr(t, "9901")
	waitHTTP(t, admin+"/readyz", 200)
	eventually(t, "redis", func() bool { r, err := redisCmd(addr, "PING"); return err == nil && strings.HasPrefix(r, "+PONG") })
	if _, err := redisCmd(addr, "SET", "pod-key", "pod value"); err != nil {
		t.Fatal(err)
	}
	count := func(body string) int {
		n := 0
		for _, ev := range slowlogEvents(adapter.Logs(t)) {
			if ev["body"] == body {
				n++
			}
		}
		return n
	}
	eventually(t, "the SET entry", func() bool { return count("SET pod-key pod value") == 1 })
	time.Sleep(time.Second) // several more polls
	if n := count("SET pod-key pod value"); n != 1 {
		t.Fatalf("entry written %d times", n)
	}

	redisCmd(addr, "DEBUG", "RESTART")
	eventually(t, "redis back", func() bool { r, err := redisCmd(addr, "PING"); return err == nil && strings.HasPrefix(r, "+PONG") })
	redisCmd(addr, "SET", "after", "restart")
	eventually(t, "the restart event", func() bool {
		restart := false
		for _, ev := range slowlogEvents(adapter.Logs(t)) {
			if attrs, ok := ev["attributes"].(map[string]any); ok && attrs["event"] == "redis.slowlog.restart" {
				restart = true
			}
		}
		return restart && count("SET after restart") == 1
	})
	eventually(t, "the restart metric", func() bool {
		_, body, err := get(admin + "/metrics")
		return err == nil && metricValue(body, "podkit_logs_slowlog_restarts_total") == 1 &&
			metricValue(body, "podkit_logs_slowlog_up") == 1
	})
	if code := adapter.Stop(t, 20); code != 0 {
		t.Fatalf("logs exited %d on stop", code)
	}
}
