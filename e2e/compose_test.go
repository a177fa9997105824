//go:build container

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
	"github.com/podkit/podkit/internal/testdeps"
)

// The compose tests bring each example under deploy/compose up as its
// README comment says, with every Compose tool installed here —
// docker-compose 1.29 (Debian's) and the Compose v2 plugin (docker
// compose) — and check what the file's header comment promises against
// the running containers. Each run has a project name of its own and every
// published port set to 0 (a free port of 127.0.0.1), so runs never
// collide; `down -v` removes the containers, networks and volumes after.

// composeTool is one way of running Compose.
type composeTool struct {
	name string   // "docker-compose" or "docker compose"
	argv []string // the command before the compose arguments
}

// composeTools returns the Compose tools installed here. With none, the
// test skips, or fails under PODKIT_REQUIRE_DEPS=1.
func composeTools(t *testing.T) []composeTool {
	t.Helper()
	testdeps.Docker(t)
	if t.Skipped() || t.Failed() {
		t.FailNow()
	}
	var tools []composeTool
	for _, c := range []composeTool{
		{"docker-compose", []string{"docker-compose"}},
		{"docker compose", []string{"docker", "compose"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, c.argv[0], append(c.argv[1:], "version")...).CombinedOutput()
		cancel()
		if err == nil {
			t.Logf("%s: %s", c.name, strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
			tools = append(tools, c)
		}
	}
	if len(tools) == 0 {
		msg := "neither docker-compose nor the docker compose plugin is installed"
		if testdeps.Require() {
			t.Fatalf("%s; %s=1 requires one", msg, testdeps.RequireEnv)
		}
		t.Skip("skipping: " + msg)
	}
	return tools
}

// composeProject is one example brought up with one tool.
type composeProject struct {
	tool    composeTool
	file    string // absolute path of compose.yaml
	project string
	env     []string
}

// portVar matches the published-port variables of the compose files:
// "127.0.0.1:${TLS_PROXY_HTTPS_PORT:-8443}:8443".
var portVar = regexp.MustCompile(`\$\{([A-Z0-9_]+_PORT):-[0-9]+\}`)

// composeDir is the example's directory under deploy/compose.
func composeDir(t *testing.T, example string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "deploy", "compose", example))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// forEachCompose runs f as a subtest per Compose tool, each with the
// example in dir (deploy/compose/<example> or a copy of it) brought up
// with `up -d` and taken down with `down -v` after.
//
// The compose tests run in parallel with each other (-parallel bounds
// how many): their projects, networks and ports never collide.
func forEachCompose(t *testing.T, example string, dir func(t *testing.T) string, extraEnv func(t *testing.T) []string, f func(t *testing.T, p *composeProject)) {
	t.Parallel()
	for _, tool := range composeTools(t) {
		t.Run(strings.ReplaceAll(tool.name, " ", "-"), func(t *testing.T) {
			testdeps.DockerImage(t, containertest.Image())
			testdeps.DockerImage(t, containertest.PeerImage())
			if t.Skipped() || t.Failed() {
				return
			}
			d := composeDir(t, example)
			if dir != nil {
				d = dir(t)
			}
			var extra []string
			if extraEnv != nil {
				extra = extraEnv(t)
			}
			p := upCompose(t, tool, example, filepath.Join(d, "compose.yaml"), extra)
			f(t, p)
		})
	}
}

// upCompose runs `up -d` on file under a new project name, with the images
// under test and every published port free, and registers `down -v`.
func upCompose(t *testing.T, tool composeTool, example, file string, extra []string) *composeProject {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	p := &composeProject{
		tool:    tool,
		file:    file,
		project: "podkit-test-" + example + "-" + hex.EncodeToString(suffix),
	}
	p.env = append(os.Environ(),
		containertest.ImageEnv+"="+containertest.Image(),
		containertest.PeerImageEnv+"="+containertest.PeerImage(),
	)
	for _, m := range portVar.FindAllStringSubmatch(string(b), -1) {
		p.env = append(p.env, m[1]+"=0")
	}
	p.env = append(p.env, extra...)
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := p.run(2*time.Minute, "logs", "--no-color"); err == nil {
				if len(out) > 16384 {
					out = out[len(out)-16384:]
				}
				t.Logf("%s logs:\n%s", tool.name, out)
			}
		}
		if out, err := p.run(5*time.Minute, "down", "-v", "--remove-orphans", "-t", "10"); err != nil {
			t.Errorf("%s down -v: %v\n%s", tool.name, err, out)
		}
	})
	if out, err := p.run(10*time.Minute, "up", "-d"); err != nil {
		t.Fatalf("%s -f %s -p %s up -d: %v\n%s", tool.name, file, p.project, err, out)
	}
	return p
}

// run runs the tool with -f and -p and returns its combined output.
func (p *composeProject) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append(append([]string{}, p.tool.argv[1:]...), "-f", p.file, "-p", p.project), args...)
	cmd := exec.CommandContext(ctx, p.tool.argv[0], argv...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs the tool and fails t if it fails.
func (p *composeProject) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(2*time.Minute, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", p.tool.name, strings.Join(args, " "), err, out)
	}
	return out
}

// addr returns the 127.0.0.1 host address that service's port is
// published on (`port SERVICE PORT`).
func (p *composeProject) addr(t *testing.T, service string, port int) string {
	t.Helper()
	out := p.must(t, "port", service, strconv.Itoa(port))
	for _, line := range strings.Split(out, "\n") {
		host, hp, err := net.SplitHostPort(strings.TrimSpace(line))
		if err == nil && host == "127.0.0.1" && hp != "0" {
			return net.JoinHostPort(host, hp)
		}
	}
	t.Fatalf("%s port %s %d: not published on 127.0.0.1: %q", p.tool.name, service, port, out)
	return ""
}

// exec runs a command in service's container (`exec -T`); a non-zero exit
// is returned, not fatal.
func (p *composeProject) exec(service string, cmd ...string) (string, error) {
	return p.run(2*time.Minute, append([]string{"exec", "-T", service}, cmd...)...)
}

// ids returns the container IDs of service (`ps -q SERVICE`).
func (p *composeProject) ids(t *testing.T, service string) []string {
	t.Helper()
	return strings.Fields(p.must(t, "ps", "-q", service))
}

// logs returns service's output so far.
func (p *composeProject) logs(t *testing.T, service string) string {
	t.Helper()
	return p.must(t, "logs", "--no-color", service)
}

// composeWait polls f until it returns nil; the bound only stops a hang
// (a cold MariaDB on a loaded machine takes a while).
func composeWait(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// want200 waits until GET url answers 200 and returns the body.
func want200(t *testing.T, url string) string {
	t.Helper()
	var body string
	composeWait(t, "GET "+url+" to answer 200", func() error {
		code, b, err := get(url)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("%d %s", code, b)
		}
		body = b
		return nil
	})
	return body
}

// waitMetric waits until GET url (a /metrics page) has the sample named by
// prefix with a value ok accepts, and returns that value.
func waitMetric(t *testing.T, url, prefix string, ok func(float64) bool) float64 {
	t.Helper()
	var v float64
	composeWait(t, url+" "+prefix, func() error {
		code, body, err := get(url)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("%d", code)
		}
		v = metricValue(body, prefix)
		if v == -1 || !ok(v) {
			return fmt.Errorf("%s = %v", prefix, v)
		}
		return nil
	})
	return v
}

func atLeast(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }

// TestComposeTLSProxy: HTTPS in front of nginx, HTTP redirected, readiness
// following the app, the proxy's metrics.
func TestComposeTLSProxy(t *testing.T) {
	forEachCompose(t, "tls-proxy", nil, nil, func(t *testing.T, p *composeProject) {
		https := "https://" + p.addr(t, "app", 8443) + "/"
		client := &http.Client{
			Timeout:       5 * time.Second,
			Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		var body string
		composeWait(t, "an HTTPS answer from the app", func() error {
			resp, err := client.Get(https)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.TLS == nil {
				return fmt.Errorf("%s %s", resp.Status, b)
			}
			body = string(b)
			return nil
		})
		if !strings.HasPrefix(body, "legacy app over https from ") {
			t.Errorf("GET %s: %q, want the app's answer with X-Forwarded-Proto https", https, body)
		}

		resp, err := client.Get("http://" + p.addr(t, "app", 8080) + "/x?y=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "https://") || !strings.HasSuffix(loc, "/x?y=1") {
			t.Errorf("plain HTTP: %s Location %q, want 301 to https://.../x?y=1", resp.Status, loc)
		}

		admin := "http://" + p.addr(t, "app", 9901)
		want200(t, admin+"/readyz")
		waitMetric(t, admin+"/metrics", "podkit_tlsproxy_connections_accepted_total", atLeast(1))
	})
}

// TestComposeConfigSync: a change to ./config/nginx.conf reaches nginx
// through config-sync's SIGHUP, without a restart of nginx. The example
// runs from a copy, so the committed file stays as it is.
func TestComposeConfigSync(t *testing.T) {
	copyDir := func(t *testing.T) string {
		dst := filepath.Join(t.TempDir(), "config-sync")
		src := composeDir(t, "config-sync")
		for _, rel := range []string{"compose.yaml", "config/nginx.conf"} {
			b, err := os.ReadFile(filepath.Join(src, rel))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// Readable by the containers' uid 65532 (TempDir is 0700).
		os.Chmod(filepath.Join(dst, "config"), 0o755)
		return dst
	}
	forEachCompose(t, "config-sync", copyDir, nil, func(t *testing.T, p *composeProject) {
		url := "http://" + p.addr(t, "app", 8080) + "/"
		if got := want200(t, url); got != "version 1\n" {
			t.Fatalf("GET %s = %q, want version 1", url, got)
		}
		app := p.ids(t, "app")
		if len(app) != 1 {
			t.Fatalf("app containers: %v", app)
		}
		started := strings.TrimSpace(dockerOut(t, "inspect", "-f", "{{.State.StartedAt}} {{.RestartCount}}", app[0]))

		conf := filepath.Join(filepath.Dir(p.file), "config", "nginx.conf")
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		// As sed -i does: a new file renamed over the old one.
		tmp := conf + ".new"
		if err := os.WriteFile(tmp, []byte(strings.Replace(string(b), "version 1", "version 2", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, conf); err != nil {
			t.Fatal(err)
		}
		composeWait(t, "nginx to serve version 2", func() error {
			code, body, err := get(url)
			if err != nil {
				return err
			}
			if code != 200 || body != "version 2\n" {
				return fmt.Errorf("%d %q", code, body)
			}
			return nil
		})
		if now := strings.TrimSpace(dockerOut(t, "inspect", "-f", "{{.State.StartedAt}} {{.RestartCount}}", app[0])); now != started {
			t.Errorf("nginx's container restarted (start and restarts %q, then %q): the change should have been a reload", started, now)
		}
		waitMetric(t, "http://"+p.addr(t, "app", 9901)+"/metrics", `podkit_configsync_reloads_total{result="ok"}`, atLeast(1))
	})
}

// dockerOut runs the docker CLI and fails t if it fails.
func dockerOut(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestComposeElect: the three electors agree on a leader, every replica's
// proxy reaches the leader's application, and when the leader's replica
// is killed the other two elect another.
func TestComposeElect(t *testing.T) {
	forEachCompose(t, "elect", nil, nil, func(t *testing.T, p *composeProject) {
		ids := []string{"a", "b", "c"}
		api := map[string]string{}
		proxy := map[string]string{}
		for _, id := range ids {
			api[id] = "http://" + p.addr(t, "app-"+id, 4040) + "/leader"
			proxy[id] = "http://" + p.addr(t, "app-"+id, 8081) + "/"
		}
		agree := func(among []string, not string) string {
			var leader string
			composeWait(t, fmt.Sprintf("replicas %v to agree on a leader other than %q", among, not), func() error {
				seen := map[string]bool{}
				for _, id := range among {
					code, body, err := get(api[id])
					if err != nil {
						return err
					}
					var l electLeader
					if code != 200 || json.Unmarshal([]byte(body), &l) != nil {
						return fmt.Errorf("%s: %d %s", id, code, body)
					}
					seen[l.Leader] = true
					leader = l.Leader
				}
				if len(seen) != 1 || leader == "" || leader == not {
					return fmt.Errorf("leaders seen: %v", seen)
				}
				return nil
			})
			return leader
		}
		proxied := func(among []string, leader string) {
			for _, id := range among {
				composeWait(t, "replica "+id+"'s proxy to reach leader "+leader, func() error {
					code, body, err := get(proxy[id])
					if err != nil {
						return err
					}
					if code != 200 || !strings.Contains(body, "replica "+leader) {
						return fmt.Errorf("%d %q", code, body)
					}
					return nil
				})
			}
		}

		first := agree(ids, "")
		proxied(ids, first)

		p.must(t, "kill", "app-"+first, "elect-"+first)
		var rest []string
		for _, id := range ids {
			if id != first {
				rest = append(rest, id)
			}
		}
		second := agree(rest, first)
		proxied(rest, second)
		t.Logf("leader %s, then %s after %s was killed", first, second, first)
	})
}

// TestComposeMariaDBHealth: the adapter's readiness follows the database
// (and makes the database's healthcheck healthy), the health user's grant
// allows SHOW SLAVE STATUS, and liveness does not depend on the database:
// with MariaDB frozen, /readyz fails and /livez still answers.
func TestComposeMariaDBHealth(t *testing.T) {
	forEachCompose(t, "mariadb-health", nil, nil, func(t *testing.T, p *composeProject) {
		health := "http://" + p.addr(t, "mariadb", 8008)
		admin := "http://" + p.addr(t, "mariadb", 9901)
		want200(t, health+"/readyz")
		db := p.ids(t, "mariadb")
		if len(db) != 1 {
			t.Fatalf("mariadb containers: %v", db)
		}
		composeWait(t, "the database's healthcheck to turn healthy", func() error {
			if s := strings.TrimSpace(dockerOut(t, "inspect", "-f", "{{.State.Health.Status}}", db[0])); s != "healthy" {
				return fmt.Errorf("health status %s", s)
			}
			return nil
		})
		waitMetric(t, admin+"/metrics", "podkit_health_up", func(v float64) bool { return v == 1 })

		out, err := p.exec("mariadb", "sh", "-c", `mariadb -h 127.0.0.1 -u health -p"$(cat /run/secrets/health-password)" -e 'SHOW SLAVE STATUS; SELECT 1 AS granted'`)
		if err != nil || !strings.Contains(out, "granted") {
			t.Errorf("SHOW SLAVE STATUS as the health user: %v\n%s", err, out)
		}

		// Freeze the database: readiness fails, liveness stays.
		dockerOut(t, "pause", db[0])
		paused := true
		defer func() {
			if paused {
				exec.Command("docker", "unpause", db[0]).Run()
			}
		}()
		composeWait(t, "/readyz to fail with the database frozen", func() error {
			code, _, err := get(health + "/readyz")
			if err != nil {
				return err
			}
			if code != 503 {
				return fmt.Errorf("%d", code)
			}
			return nil
		})
		if code, body, err := get(health + "/livez"); err != nil || code != 200 {
			t.Errorf("/livez with the database frozen: %d %v %s", code, err, body)
		}
		dockerOut(t, "unpause", db[0])
		paused = false
		want200(t, health+"/readyz")
	})
}

// TestComposeNginxMetrics: nginx answers, and the adapter serves
// nginx-prometheus-exporter's metrics from its stub_status.
func TestComposeNginxMetrics(t *testing.T) {
	forEachCompose(t, "nginx-metrics", nil, nil, func(t *testing.T, p *composeProject) {
		if got := want200(t, "http://"+p.addr(t, "nginx", 80)+"/"); got != "hello\n" {
			t.Errorf("nginx: %q", got)
		}
		metrics := "http://" + p.addr(t, "nginx", 9113) + "/metrics"
		waitMetric(t, metrics, "nginx_up", func(v float64) bool { return v == 1 })
		waitMetric(t, metrics, "nginx_http_requests_total", atLeast(1))
		waitMetric(t, metrics, "nginx_connections_active", atLeast(1))
		want200(t, "http://"+p.addr(t, "nginx", 9901)+"/readyz")
	})
}

// TestComposeQueue: the example runs over mutual TLS. The one-shot certs
// service makes the certificates; three workers, each with the worker
// certificate, drain what the producer pushes through the cli service;
// every item is acked once. From the host, with the CA: a request without
// a client certificate is refused with 401, one with a certificate from
// the same CA but outside the allow-list with 403, the worker's
// certificate may not read the counts (403, role admin), the producer's
// may.
func TestComposeQueue(t *testing.T) {
	const items = 30
	var bin string
	parent := t
	binEnv := func(t *testing.T) []string {
		if bin == "" {
			// Removed when the whole test ends, not with the first
			// tool's subtest: the next tool's run mounts it too.
			bin = imageBinary(t, parent)
		}
		return []string{"PODKIT_BIN=" + bin}
	}
	forEachCompose(t, "queue", nil, binEnv, func(t *testing.T, p *composeProject) {
		if w := p.ids(t, "worker"); len(w) != 3 {
			t.Errorf("worker containers: %d, want 3 (deploy.replicas)", len(w))
		}
		want200(t, "http://"+p.addr(t, "queue", 9901)+"/readyz")
		server := "https://" + p.addr(t, "queue", 8080)

		// The certificates the certs service wrote, copied out of its
		// stopped container, and one more client certificate from the
		// same CA (podkit certs uses the CA it finds) that the
		// coordinator's allow-list does not name.
		certs := filepath.Join(t.TempDir(), "certs")
		id := strings.TrimSpace(dockerOut(t, "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+p.project, "--filter", "label=com.docker.compose.service=certs"))
		if id == "" || strings.Contains(id, "\n") {
			t.Fatalf("certs containers: %q, want one", id)
		}
		dockerOut(t, "cp", id+":/tmp/.", certs)
		if out, err := exec.Command(bin, "certs", "--dir", certs, "--client", "outsider").CombinedOutput(); err != nil {
			t.Fatalf("podkit certs --client outsider: %v\n%s", err, out)
		}
		for _, f := range []string{"ca.crt", "server.crt", "worker.crt", "producer.crt", "producer.key"} {
			if _, err := os.Stat(filepath.Join(certs, f)); err != nil {
				t.Fatalf("the certs service did not write %s: %v", f, err)
			}
		}
		as := func(name string) *http.Client {
			pool := x509.NewCertPool()
			b, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
			if err != nil || !pool.AppendCertsFromPEM(b) {
				t.Fatalf("ca.crt: %v", err)
			}
			tc := &tls.Config{RootCAs: pool, ServerName: "localhost"}
			if name != "" {
				c, err := tls.LoadX509KeyPair(filepath.Join(certs, name+".crt"), filepath.Join(certs, name+".key"))
				if err != nil {
					t.Fatal(err)
				}
				tc.Certificates = []tls.Certificate{c}
			}
			return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		}
		status := func(c *http.Client, method, url string) (int, string, error) {
			req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
			resp, err := c.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), nil
		}
		stats := server + "/queues/default"
		composeWait(t, "the producer's certificate to read the counts over mTLS", func() error {
			code, body, err := status(as("producer"), "GET", stats)
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		for _, c := range []struct {
			who, method, path string
			want              int
			reason            string
		}{
			{"", "GET", "/queues/default", 401, "no_credential"},
			{"", "POST", "/queues/default/lease", 401, "no_credential"},
			{"outsider", "GET", "/queues/default", 403, "cert_not_allowed"},
			{"outsider", "POST", "/queues/default/lease", 403, "cert_not_allowed"},
			{"worker", "GET", "/queues/default", 403, "wrong_role"},
		} {
			code, body, err := status(as(c.who), c.method, server+c.path)
			if err != nil || code != c.want || !strings.Contains(body, c.reason) {
				t.Errorf("%s %s with certificate %q: %d %v %s; want %d (%s)", c.method, c.path, c.who, code, err, body, c.want, c.reason)
			}
		}
		// Plain HTTP to the TLS port is not served.
		if code, body, err := get("http://" + p.addr(t, "queue", 8080) + "/queues/default"); err == nil && code == 200 {
			t.Errorf("plain HTTP to the queue's API: %d %s, want a refusal", code, body)
		}

		// Push as the example's header says: through the cli service,
		// with the producer's certificate.
		var in strings.Builder
		for i := 1; i <= items; i++ {
			fmt.Fprintf(&in, "%d\n", i)
		}
		if out, err := p.runStdin(2*time.Minute, in.String(), "run", "--rm", "-T", "cli", "queue", "push", "--queue", "default", "--raw", "-"); err != nil {
			t.Fatalf("%s run --rm -T cli queue push: %v\n%s", p.tool.name, err, out)
		}
		composeWait(t, "the queue to drain", func() error {
			code, body, err := status(as("producer"), "GET", stats)
			if err != nil {
				return err
			}
			var s struct {
				Ready, Leased, Dead int
				Acked               int `json:"acked_total"`
				Enqueued            int `json:"enqueued_total"`
			}
			if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
				return fmt.Errorf("%d %s", code, body)
			}
			if s.Enqueued != items || s.Acked != items || s.Ready != 0 || s.Leased != 0 || s.Dead != 0 {
				return fmt.Errorf("%s", body)
			}
			return nil
		})
		seen := map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(p.logs(t, "worker")))
		re := regexp.MustCompile(`item \S+ attempt \d+: (\d+)$`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				seen[m[1]] = true
			}
		}
		if len(seen) != items {
			t.Errorf("the workers' output shows %d distinct payloads, want %d", len(seen), items)
		}
		// The refusals were counted.
		waitMetric(t, "http://"+p.addr(t, "queue", 9901)+"/metrics", `podkit_queue_api_denied_total{reason="cert_not_allowed",role="worker"}`, atLeast(1))
	})
}

// runStdin is run with stdin.
func (p *composeProject) runStdin(timeout time.Duration, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append(append([]string{}, p.tool.argv[1:]...), "-f", p.file, "-p", p.project), args...)
	cmd := exec.CommandContext(ctx, p.tool.argv[0], argv...)
	cmd.Env = p.env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// imageBinary copies the podkit binary out of the image under test, for
// the queue example's workers (bind-mounted) and for pushing items; it
// is removed when owner ends.
func imageBinary(t, owner *testing.T) string {
	t.Helper()
	id := strings.TrimSpace(dockerOut(t, "create", containertest.Image()))
	defer dockerOut(t, "rm", id)
	dir, err := os.MkdirTemp("", "podkit-compose-bin-")
	if err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "podkit")
	dockerOut(t, "cp", id+":/podkit", bin)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// redisSlow runs DEBUG SLEEP in the redis service, through redis-cli on
// its loopback with the example's password.
func redisSlow(t *testing.T, p *composeProject) {
	t.Helper()
	composeWait(t, "DEBUG SLEEP", func() error {
		out, err := p.exec("redis", "sh", "-c", `redis-cli --no-auth-warning -a "$(cat /run/secrets/redis-password)" DEBUG SLEEP 0.05`)
		if err != nil || strings.TrimSpace(out) != "OK" {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

// waitSlowlogLine waits until the slowlog service has written the DEBUG
// SLEEP entry as a JSON line.
func waitSlowlogLine(t *testing.T, p *composeProject) {
	t.Helper()
	composeWait(t, "the SLOWLOG entry on the adapter's output", func() error {
		for _, ev := range slowlogEvents(stripComposePrefix(p.logs(t, "slowlog"))) {
			if b, _ := json.Marshal(ev); strings.Contains(strings.ToUpper(string(b)), "DEBUG") {
				return nil
			}
		}
		return fmt.Errorf("no DEBUG entry yet")
	})
}

// stripComposePrefix removes the "service-1  | " prefix that `logs` puts
// before each line.
func stripComposePrefix(logs string) string {
	var b strings.Builder
	for _, line := range strings.Split(logs, "\n") {
		if _, rest, ok := strings.Cut(line, "| "); ok {
			line = rest
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// TestComposeRedisSlowlog: a slow command appears on the adapter's output
// as a JSON line, and in its metrics.
func TestComposeRedisSlowlog(t *testing.T) {
	forEachCompose(t, "redis-slowlog", nil, nil, func(t *testing.T, p *composeProject) {
		admin := "http://" + p.addr(t, "redis", 9901)
		want200(t, admin+"/readyz")
		redisSlow(t, p)
		waitSlowlogLine(t, p)
		waitMetric(t, admin+"/metrics", "podkit_logs_slowlog_entries_total", atLeast(1))
	})
}

// TestComposeRedisSlowlogMetrics: redis_exporter's metrics, the slow
// command counted in them, and the same entry on the slowlog adapter's
// output.
func TestComposeRedisSlowlogMetrics(t *testing.T) {
	forEachCompose(t, "redis-slowlog-metrics", nil, nil, func(t *testing.T, p *composeProject) {
		metrics := "http://" + p.addr(t, "redis", 9121) + "/metrics"
		waitMetric(t, metrics, "redis_up", func(v float64) bool { return v == 1 })
		redisSlow(t, p)
		waitMetric(t, metrics, "redis_slowlog_length", atLeast(1))
		waitSlowlogLine(t, p)
		want200(t, "http://"+p.addr(t, "redis", 9901)+"/readyz")
	})
}

// TestComposeShard: the app's keys, written through the ambassador on its
// loopback, land on both Redis servers and read back through it.
func TestComposeShard(t *testing.T) {
	forEachCompose(t, "shard", nil, nil, func(t *testing.T, p *composeProject) {
		admin := "http://" + p.addr(t, "app", 9901)
		// /healthz includes the check that every server answers.
		want200(t, admin+"/healthz")
		args := []string{"redis-cli", "-p", "6379", "MSET"}
		// Keys that differ in more than their last characters: with
		// fnv1a_64, as twemproxy computes it, keys such as key:1, key:2,
		// ... hash close together and may all land on one server.
		for i := 0; i < 40; i++ {
			sum := sha256.Sum256([]byte(strconv.Itoa(i)))
			args = append(args, "key:"+hex.EncodeToString(sum[:6]), strconv.Itoa(i))
		}
		composeWait(t, "MSET through the ambassador", func() error {
			out, err := p.exec("app", args...)
			if err != nil || strings.TrimSpace(out) != "OK" {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		for i := 0; i < 40; i += 13 {
			if out, err := p.exec("app", "redis-cli", "-p", "6379", "GET", args[4+2*i]); err != nil || strings.TrimSpace(out) != strconv.Itoa(i) {
				t.Errorf("GET %s through the ambassador: %v %q, want %d", args[4+2*i], err, out, i)
			}
		}
		total := 0
		for _, s := range []string{"redis-0", "redis-1"} {
			out, err := p.exec(s, "redis-cli", "EVAL", "return #redis.call('KEYS', 'key:*')", "0")
			if err != nil {
				t.Fatalf("%s: %v %s", s, err, out)
			}
			n, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil {
				t.Fatalf("%s: %q", s, out)
			}
			if n == 0 {
				t.Errorf("%s holds none of the 40 keys: the keys are not sharded", s)
			}
			total += n
		}
		if total != 40 {
			t.Errorf("the two servers hold %d keys, want 40", total)
		}
		waitMetric(t, admin+"/metrics", "podkit_shard_server_requests_total", atLeast(1))
	})
}

// TestComposeTopz: topz, in the app's PID namespace, lists nginx's
// processes.
func TestComposeTopz(t *testing.T) {
	forEachCompose(t, "topz", nil, nil, func(t *testing.T, p *composeProject) {
		want200(t, "http://"+p.addr(t, "app", 80)+"/")
		topzFetch(t, "http://"+p.addr(t, "app", 8081)+"/topz", func(d topzDoc) string {
			nginx, self := 0, false
			for _, pr := range d.Processes {
				if strings.HasPrefix(pr.Command, "nginx") {
					nginx++
				}
				self = self || pr.Self
			}
			if nginx < 2 || !self {
				return fmt.Sprintf("%d nginx processes (want a master and a worker), self listed %v", nginx, self)
			}
			return ""
		})
		waitMetric(t, "http://"+p.addr(t, "app", 9901)+"/metrics", "podkit_topz_processes", atLeast(2))
	})
}
