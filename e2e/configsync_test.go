//go:build container

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
)

// csConfigMap writes a directory the way kubelet projects a ConfigMap:
// the files in a timestamped directory, "..data" pointing at it, each key
// a symlink through "..data"; update swaps "..data" atomically with a
// rename of "..data_tmp".
type csConfigMap struct {
	t   *testing.T
	dir string
	n   int
	cur string
}

func (c *csConfigMap) update(key, data string) {
	t := c.t
	c.n++
	ts := fmt.Sprintf("..2025_06_01_12_00_%02d.%09d", c.n, c.n)
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, ts, key), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(c.dir, key)); err != nil {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(c.dir, key)); err != nil {
			t.Fatal(err)
		}
	}
	if c.cur != "" {
		os.RemoveAll(filepath.Join(c.dir, c.cur))
	}
	c.cur = ts
}

// csNginxConf is a whole nginx configuration that runs as any user (pid and
// temp files in /tmp, logs to stderr, port 8080) and answers GET / with
// body.
func csNginxConf(body string) string {
	return `worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server {
        listen 8080;
        location / { return 200 "` + body + `\n"; }
    }
}
`
}

// csPoll GETs url with a fresh connection each time until check accepts the
// answer, for at most a minute.
func csPoll(t *testing.T, url string, check func(code int, body string) bool) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(time.Minute)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
			if check(resp.StatusCode, string(b)) {
				return string(b)
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("GET %s: after a minute, last answer %s", url, last)
	return ""
}

// TestConfigSyncSIGHUP is the seeds' dynamic-configuration pod: nginx and
// config-sync share a PID namespace and a volume. config-sync first runs
// as an init container (--once) so nginx starts with a configuration, then
// as a sidecar that follows a ConfigMap-style directory, publishes the new
// file atomically and sends SIGHUP to nginx, found by name. Both run as
// the same non-root user, so no capability is needed to signal.
func TestConfigSyncSIGHUP(t *testing.T) {
	root := t.TempDir()
	os.Chmod(filepath.Dir(root), 0o755)
	src, shared := filepath.Join(root, "config"), filepath.Join(root, "shared")
	for _, d := range []string{root, src, shared} {
		os.MkdirAll(d, 0o755)
		os.Chmod(d, 0o777) // the containers run as uid 65532
	}
	cm := &csConfigMap{t: t, dir: src}
	cm.update("nginx.conf", csNginxConf("version 1"))
	syncArgs := []string{"config-sync", "--source", "/config/nginx.conf", "--dest", "/shared/nginx.conf"}
	volumes := []string{src + ":/config:ro", shared + ":/shared"}

	// 1. The init container leaves a configuration for nginx to start with.
	init := containertest.Run(t, containertest.Options{
		Name:    "configsync-init",
		Image:   containertest.Image(),
		Cmd:     slices.Concat(syncArgs, []string{"--once", "--admin-addr", "off"}),
		Volumes: volumes,
	})
	if code := init.Wait(t, time.Minute); code != 0 {
		t.Fatalf("config-sync --once exited %d:\n%s", code, init.Logs(t))
	}

	// 2. The app.
	app := containertest.Run(t, containertest.Options{
		Name:    "configsync-app",
		Image:   containertest.PeerImage(),
		User:    "65532:65532",
		Cmd:     []string{"nginx", "-e", "stderr", "-c", "/shared/nginx.conf", "-g", "daemon off;"},
		Volumes: []string{shared + ":/shared"},
		Publish: []string{"8080", "9901"},
	})
	appURL := "http://" + app.Addr(t, "8080") + "/"
	csPoll(t, appURL, func(code int, body string) bool { return code == 200 && body == "version 1\n" })

	// 3. The sidecar, in the app's PID and network namespaces.
	sidecar := containertest.Run(t, containertest.Options{
		Name:      "configsync",
		Image:     containertest.Image(),
		Cmd:       slices.Concat(syncArgs, []string{"--process-name", "nginx", "--signal", "HUP", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s", "--poll-interval", "30s"}),
		Volumes:   volumes,
		NetworkOf: app,
		PIDOf:     app,
	})
	admin := "http://" + app.Addr(t, "9901")
	csPoll(t, admin+"/readyz", func(code int, _ string) bool { return code == 200 })

	// 4. A new ConfigMap version reaches nginx without a restart.
	for v := 2; v <= 3; v++ {
		want := fmt.Sprintf("version %d\n", v)
		cm.update("nginx.conf", csNginxConf(strings.TrimSpace(want)))
		csPoll(t, appURL, func(code int, body string) bool { return code == 200 && body == want })
	}
	if pid := strings.TrimSpace(csMust(app.Exec(t, "cat", "/tmp/nginx.pid"))); pid != "1" {
		t.Errorf("nginx master pid %q, want 1: it was restarted, not reloaded", pid)
	}
	metrics := csPoll(t, admin+"/metrics", func(code int, body string) bool {
		return strings.Contains(body, `podkit_configsync_reloads_total{result="ok"} 2`) &&
			strings.Contains(body, `podkit_configsync_syncs_total{result="published"} 2`)
	})
	if !strings.Contains(metrics, "podkit_configsync_content_info{sha256=") {
		t.Errorf("/metrics lacks the content hash:\n%s", metrics)
	}
	csLogged(t, sidecar, `"msg":"reloaded"`)
	if code := sidecar.Stop(t, 20); code != 0 {
		t.Errorf("config-sync exit code %d after docker stop, want 0", code)
	}
}

// csLogged waits (at most 30s: docker collects logs asynchronously) until
// the container's logs contain want.
func csLogged(t *testing.T, c *containertest.Container, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := c.Logs(t)
		if strings.Contains(logs, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s did not log %q:\n%s", c, want, logs)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func csMust(out string, err error) string {
	if err != nil {
		return "error: " + err.Error() + ": " + out
	}
	return out
}

// TestConfigSyncBindMountedFile: the destination is a single file
// bind-mounted into both containers (docker run -v FILE:FILE, a Kubernetes
// subPath mount). rename(2) over it fails with EBUSY, so config-sync
// rewrites it in place; nginx, which mounts the same file, reloads it.
func TestConfigSyncBindMountedFile(t *testing.T) {
	root := t.TempDir()
	os.Chmod(filepath.Dir(root), 0o755)
	src := filepath.Join(root, "config")
	for _, d := range []string{root, src} {
		os.MkdirAll(d, 0o755)
		os.Chmod(d, 0o777)
	}
	shared := filepath.Join(root, "nginx.conf") // one file, mounted as is
	if err := os.WriteFile(shared, []byte(csNginxConf("version 1")), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(shared, 0o666)
	cm := &csConfigMap{t: t, dir: src}
	cm.update("nginx.conf", csNginxConf("version 1"))

	app := containertest.Run(t, containertest.Options{
		Name:    "configsync-bind-app",
		Image:   containertest.PeerImage(),
		User:    "65532:65532",
		Cmd:     []string{"nginx", "-e", "stderr", "-c", "/etc/app/nginx.conf", "-g", "daemon off;"},
		Volumes: []string{shared + ":/etc/app/nginx.conf:ro"},
		Publish: []string{"8080", "9901"},
	})
	appURL := "http://" + app.Addr(t, "8080") + "/"
	csPoll(t, appURL, func(code int, body string) bool { return code == 200 && body == "version 1\n" })
	sidecar := containertest.Run(t, containertest.Options{
		Name:      "configsync-bind",
		Image:     containertest.Image(),
		Cmd:       []string{"config-sync", "--source", "/config/nginx.conf", "--dest", "/etc/app/nginx.conf", "--process-name", "nginx", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s"},
		Volumes:   []string{src + ":/config:ro", shared + ":/etc/app/nginx.conf"},
		NetworkOf: app,
		PIDOf:     app,
	})
	admin := "http://" + app.Addr(t, "9901")
	csPoll(t, admin+"/readyz", func(code int, _ string) bool { return code == 200 })
	cm.update("nginx.conf", csNginxConf("version 2"))
	csPoll(t, appURL, func(code int, body string) bool { return code == 200 && body == "version 2\n" })
	csPoll(t, admin+"/metrics", func(code int, body string) bool {
		return strings.Contains(body, "podkit_configsync_in_place_writes_total 1") &&
			strings.Contains(body, `podkit_configsync_reloads_total{result="ok"} 1`)
	})
	csLogged(t, sidecar, "EBUSY")
	if entries, _ := os.ReadDir(root); len(entries) != 2 {
		t.Errorf("%d entries next to the mounted file on the host, want 2 (config, nginx.conf)", len(entries))
	}
}
