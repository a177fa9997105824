//go:build container

package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
)

func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// eventually polls f for up to a minute.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitHTTP(t *testing.T, url string, code int) {
	t.Helper()
	eventually(t, url+" to answer "+http.StatusText(code), func() bool {
		c, _, err := get(url)
		return err == nil && c == code
	})
}

// TestPodSidecarReadinessAndDrain: an app container and a podkit sidecar
// sharing its network and PID namespaces, as a Kubernetes pod. The
// sidecar's /readyz follows the app; `docker stop` makes it drain and
// exit 0.
func TestPodSidecarReadinessAndDrain(t *testing.T) {
	app := containertest.Run(t, containertest.Options{
		Name:    "app",
		Image:   containertest.Image(),
		Cmd:     []string{"sample-app", "--listen", "0.0.0.0:8080", "--admin-addr", "0.0.0.0:9902", "--drain-delay", "0s"},
		Publish: []string{"8080", "9901", "9902"},
	})
	sidecar := containertest.Run(t, containertest.Options{
		Name:      "sidecar",
		Image:     containertest.Image(),
		Cmd:       []string{"await", "--admin-addr", "0.0.0.0:9901", "--wait-for", "http://127.0.0.1:8080/", "--drain-delay", "1s", "--drain-timeout", "5s"},
		NetworkOf: app,
		PIDOf:     app,
	})
	admin := "http://" + app.Addr(t, "9901")
	waitHTTP(t, admin+"/readyz", 200)
	if _, info, err := get(admin + "/info"); err != nil || !strings.Contains(info, `"component": "await"`) {
		t.Fatalf("/info of the sidecar: %v %s", err, info)
	}
	// The loopback-only endpoints refuse callers from outside the pod.
	resp, err := http.Post(admin+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST /quitquitquit from outside the pod: %d, want 403", resp.StatusCode)
	}

	if code := sidecar.Stop(t, 20); code != 0 {
		t.Fatalf("sidecar exit code %d after docker stop, want 0", code)
	}
	logs := sidecar.Logs(t)
	for _, want := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("sidecar logs lack %s:\n%s", want, logs)
		}
	}
	// The app is untouched by its sidecar's stop.
	if c, _, err := get("http://" + app.Addr(t, "8080") + "/"); err != nil || c != 200 {
		t.Fatalf("app after the sidecar stopped: %d %v", c, err)
	}
	if code := app.Stop(t, 20); code != 0 {
		t.Fatalf("app exit code %d after docker stop, want 0", code)
	}
}

// TestPodJobCompletes: a Job-shaped pod without native sidecars. The job
// container runs its command under `podkit await`; when the command exits,
// await POSTs the sidecar's /quitquitquit, so the whole pod completes.
func TestPodJobCompletes(t *testing.T) {
	// The pod's infrastructure container owns the namespaces, as the pause
	// container does in Kubernetes: when PID 1 of a PID namespace exits, the
	// kernel kills every other process in it.
	infra := containertest.Run(t, containertest.Options{
		Name:  "infra",
		Image: containertest.Image(),
		Cmd:   []string{"await", "--admin-addr", "off"},
	})
	sidecar := containertest.Run(t, containertest.Options{
		Name:      "sidecar",
		Image:     containertest.Image(),
		NetworkOf: infra,
		PIDOf:     infra,
		Cmd:       []string{"sample-app", "--listen", "127.0.0.1:8080", "--admin-addr", "127.0.0.1:9902", "--drain-delay", "0s"},
	})
	job := containertest.Run(t, containertest.Options{
		Name:      "job",
		Image:     containertest.Image(),
		NetworkOf: infra,
		PIDOf:     infra,
		Cmd: []string{"await", "--admin-addr", "127.0.0.1:9901", "--drain-delay", "0s",
			"--wait-for", "http://127.0.0.1:8080/",
			"--notify", "http://127.0.0.1:9902/quitquitquit",
			"--", "/podkit", "sample-app", "--listen", "127.0.0.1:8081", "--admin-addr", "off", "--exit-after", "1s", "--exit-code", "0"},
	})
	if code := job.Wait(t, time.Minute); code != 0 {
		t.Fatalf("job exit code %d, want 0", code)
	}
	if code := sidecar.Wait(t, time.Minute); code != 0 {
		t.Fatalf("sidecar exit code %d, want 0 (stopped by the job's notify)", code)
	}
	if logs := job.Logs(t); !strings.Contains(logs, `"msg":"notified"`) {
		t.Errorf("job logs lack the notify:\n%s", logs)
	}
}
