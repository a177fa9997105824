package shard

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestReloadUnderLoad changes the pool's servers while clients keep
// sending: no request fails, a bad file is refused with its line and the
// running configuration kept.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	a, b := testdeps.StartRedis(t), testdeps.StartRedis(t)
	if a == "" {
		return
	}
	file := filepath.Join(t.TempDir(), "nutcracker.yml")
	one := fmt.Sprintf("web:\n  listen: 127.0.0.1:0\n  redis: true\n  timeout: 5000\n  servers:\n   - %s:1\n", a)
	two := fmt.Sprintf("web:\n  listen: 127.0.0.1:0\n  redis: true\n  timeout: 5000\n  servers:\n   - %s:1\n   - %s:1\n", a, b)
	testdeps.ReplaceFile(t, file, one)
	cfg := DefaultConfig()
	cfg.ConfigFile = file
	cfg.WatchInterval = 50 * time.Millisecond
	r := start(t, cfg)
	addr := r.addr("web")

	var (
		stop     atomic.Bool
		requests atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRedis(t, addr)
			for i := 0; !stop.Load(); i++ {
				k := fmt.Sprintf("load:%d:%d", w, i%500)
				var batch []byte
				for range 8 {
					batch = append(batch, cmd("SET", k, "v")...)
					batch = append(batch, cmd("GET", k)...)
				}
				c.send(batch)
				for range 16 {
					got, err := c.tryRead()
					requests.Add(1)
					if err != nil || strings.HasPrefix(got, "-") {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%q %v", got, err))
						mu.Unlock()
						return
					}
				}
			}
		}()
	}
	waitRequests := func(n int64) {
		target := requests.Load() + n
		eventually(t, "load running", func() string {
			if requests.Load() < target {
				return "not enough requests"
			}
			return ""
		})
	}
	waitRequests(500)
	testdeps.ReplaceFile(t, file, two) // picked up by the file watch
	eventually(t, "two servers after the file changed", func() string {
		if n := len(r.px.pools()[0].servers); n != 2 {
			return fmt.Sprintf("%d servers", n)
		}
		return ""
	})
	waitRequests(500)
	testdeps.ReplaceFile(t, file, two+"  bogus: 1\n")
	if err := r.px.Reload(); err == nil || !strings.Contains(err.Error(), `line 8: pool "web": unknown key "bogus"`) {
		t.Errorf("bad reload: %v", err)
	}
	if n := len(r.px.pools()[0].servers); n != 2 {
		t.Errorf("after a refused reload: %d servers, want the running 2", n)
	}
	waitRequests(500)
	testdeps.ReplaceFile(t, file, strings.Replace(one, a, b, 1))
	if err := r.px.Reload(); err != nil {
		t.Errorf("reload: %v", err)
	}
	waitRequests(500)
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failed requests during reloads, first: %s", len(failures), failures[0])
	}
	if r.px.PoolAddr("web").String() != addr {
		t.Error("listen address changed on reload")
	}
	if !strings.Contains(r.logs.String(), "configuration reload refused") {
		t.Error("refused reload not logged")
	}
}

// TestSIGHUP runs the command as a subprocess: SIGHUP rereads the file, a
// bad file is refused and the process keeps serving.
func TestSIGHUP(t *testing.T) {
	t.Parallel()
	a, b := testdeps.StartRedis(t), testdeps.StartRedis(t)
	if a == "" {
		return
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "nutcracker.yml")
	ln := freeAddr(t)
	admin := freeAddr(t)
	testdeps.ReplaceFile(t, file, fmt.Sprintf("web:\n  listen: %s\n  redis: true\n  servers:\n   - %s:1\n", ln, a))
	cmd := exec.Command(os.Args[0], "shard", "--config", file, "--watch-interval", "0", "--admin-addr", admin, "--log-format", "json", "--drain-delay", "0s")
	cmd.Env = append(os.Environ(), "PODKIT_SHARD_AS_COMMAND=1")
	var out testdeps.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	})
	eventually(t, "ready", func() string {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return resp.Status
		}
		return ""
	})
	testdeps.ReplaceFile(t, file, fmt.Sprintf("web:\n  listen: %s\n  redis: true\n  servers:\n   - %s:1\n   - %s:1\n", ln, a, b))
	cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "reloaded", func() string {
		if !strings.Contains(out.String(), "configuration reloaded") {
			return "no reload in the log"
		}
		return ""
	})
	testdeps.ReplaceFile(t, file, "web:\n  listen: [\n")
	cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "refused", func() string {
		if !strings.Contains(out.String(), "configuration reload refused") {
			return "no refusal in the log"
		}
		return ""
	})
	c := dialRedis(t, ln)
	if got := c.do("SET", "after", "1"); got != "+OK\r\n" {
		t.Fatalf("after a refused reload: %q", got)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`podkit_shard_reloads_total{result="error"} 1`,
		`podkit_shard_reloads_total{result="ok"} 1`,
		`podkit_shard_server_requests_total{pool="web",server=`,
		`podkit_shard_client_connections{pool="web"} 1`,
		`podkit_shard_server_request_duration_seconds_bucket{pool="web"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func freeAddr(t *testing.T) string {
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestReloadOutsideRun: Reload before Run has started the proxy, and
// after Run has returned, is an error that changes nothing; while it
// runs, Reload applies the file.
func TestReloadOutsideRun(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "nutcracker.yml")
	conf := "web:\n  listen: 127.0.0.1:0\n  redis: true\n  servers:\n   - 127.0.0.1:1:1\n"
	testdeps.ReplaceFile(t, file, conf)
	cfg := DefaultConfig()
	cfg.ConfigFile = file
	cfg.WatchInterval = 0
	px, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Reload(); !errors.Is(err, errNotRunning) {
		t.Fatalf("Reload before Run: %v, want %v", err, errNotRunning)
	}
	if px.PoolAddr("web") != nil || len(px.pools()) != 0 {
		t.Fatal("Reload before Run started a pool")
	}

	r := start(t, cfg)
	testdeps.ReplaceFile(t, file, conf+"   - 127.0.0.1:2:1\n")
	if err := r.px.Reload(); err != nil {
		t.Fatalf("Reload while running: %v", err)
	}
	if n := len(r.px.pools()[0].servers); n != 2 {
		t.Fatalf("%d servers after the reload, want 2", n)
	}
	r.stop()
	testdeps.ReplaceFile(t, file, conf)
	if err := r.px.Reload(); !errors.Is(err, errNotRunning) {
		t.Fatalf("Reload after Run returned: %v, want %v", err, errNotRunning)
	}
	if n := len(r.px.pools()[0].servers); n != 2 {
		t.Fatalf("%d servers after a Reload past Run, want the last 2", n)
	}
}
