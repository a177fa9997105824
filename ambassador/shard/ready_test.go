package shard

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"
)

// scrape returns podkit_shard_server_up for each server, and /readyz's
// status.
func scrapeUp(t *testing.T, r *running) (map[string]string, int) {
	t.Helper()
	resp, err := http.Get(r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	up := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^podkit_shard_server_up\{pool="[^"]*",server="([^"]*)"\} (\S+)$`).FindAllStringSubmatch(string(body), -1) {
		up[m[1]] = m[2]
	}
	resp, err = http.Get(r.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return up, resp.StatusCode
}

// TestReadinessWithDeadServer kills one redis of two (under
// auto_eject_hosts, fail_closed, or neither) and samples /readyz and
// podkit_shard_server_up many times across several retry cycles, with
// traffic: the proxy stays ready (it can serve the pool) and the dead
// server reads 0 in every sample. With both dead the proxy is not ready,
// in every sample; with one back it is ready again. Readiness follows the
// check, which probes idle servers every probePeriod: the waits for a
// change of /readyz are that long.
func TestReadinessWithDeadServer(t *testing.T) {
	for _, mode := range []string{"auto_eject_hosts", "fail_closed", "neither"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			live, victim := newRedisProc(t), newRedisProc(t)
			if live == nil {
				return
			}
			cfg := redisConfig(live.addr(), victim.addr())
			cfg.AutoEject, cfg.FailClosed = mode == "auto_eject_hosts", mode == "fail_closed"
			cfg.FailureLimit = 1
			cfg.RetryTimeout = 150 * time.Millisecond
			cfg.Timeout = 10 * time.Second
			r := start(t, cfg)
			eventually(t, "ready with both servers up", func() string {
				if up, code := scrapeUp(t, r); code != 200 || up["shard0"] != "1" || up["shard1"] != "1" {
					return fmt.Sprintf("/readyz %d, server_up %v", code, up)
				}
				return ""
			})

			// Traffic on keys of both servers, so that every retry cycle
			// tries the dead server again.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dialRedis(t, r.addr(""))
				k0, k1 := keyOn(t, r, live.addr(), "rd:"), keyOn(t, r, victim.addr(), "rd:")
				for {
					select {
					case <-stop:
						return
					default:
					}
					c.send(append(cmd("GET", k0), cmd("GET", k1)...))
					if _, err := c.tryRead(); err != nil {
						return
					}
					if _, err := c.tryRead(); err != nil {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			defer func() { close(stop); wg.Wait() }()

			victim.stop()
			eventually(t, "dead server seen", func() string {
				if up, _ := scrapeUp(t, r); up["shard1"] != "0" {
					return fmt.Sprintf("server_up %v", up)
				}
				return ""
			})
			// ejections counts the retry cycles that have passed.
			ej := r.px.pools()[0].servers[1].ejections.Load
			first := ej()
			cycles := uint64(5)
			if mode == "neither" {
				cycles = 0 // every request tries the dead server; no retry cycle
			}
			for i := 0; i < 300 && (i < 60 || ej() < first+cycles); i++ {
				up, code := scrapeUp(t, r)
				if code != 200 || up["shard0"] != "1" || up["shard1"] != "0" {
					t.Fatalf("sample %d (%d retry cycles in): /readyz %d, server_up %v; want 200, shard0 1, shard1 0", i, ej()-first, code, up)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if ej() < first+min(cycles, 3) {
				t.Fatalf("only %d retry cycles while sampling", ej()-first)
			}

			live.stop()
			eventually(t, "not ready with no live server", func() string {
				if _, code := scrapeUp(t, r); code != 503 {
					return fmt.Sprintf("/readyz %d", code)
				}
				return ""
			})
			for i := range 60 {
				up, code := scrapeUp(t, r)
				if code != 503 || up["shard0"] != "0" || up["shard1"] != "0" {
					t.Fatalf("sample %d with both dead: /readyz %d, server_up %v; want 503, both 0", i, code, up)
				}
				time.Sleep(10 * time.Millisecond)
			}

			victim.start()
			eventually(t, "ready again with one server back", func() string {
				if up, code := scrapeUp(t, r); code != 200 || up["shard1"] != "1" || up["shard0"] != "0" {
					return fmt.Sprintf("/readyz %d, server_up %v", code, up)
				}
				return ""
			})
		})
	}
}
