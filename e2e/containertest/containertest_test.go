//go:build container

package containertest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The tests use the peer image (make peer-image): nginx and busybox are
// enough to see shared namespaces, published ports and partitions. Its
// busybox wget crashes when given -T, so timeouts come from timeout(1).

func TestPodSharesNamespaces(t *testing.T) {
	app := Run(t, Options{
		Name:    "app",
		Image:   PeerImage(),
		Cmd:     []string{"nginx", "-g", "daemon off;"},
		Publish: []string{"80"},
	})
	side := Run(t, Options{
		Name:      "side",
		Image:     PeerImage(),
		Cmd:       []string{"sleep", "300"},
		NetworkOf: app,
		PIDOf:     app,
	})

	// The published port reaches nginx from the host.
	addr := app.Addr(t, "80")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q, want 127.0.0.1:<port>", addr)
	}
	body := httpGet(t, "http://"+addr+"/")
	if !strings.Contains(body, "nginx") {
		t.Errorf("GET / from the host: %q, want the nginx welcome page", body)
	}

	// The sidecar reaches nginx on localhost: one network namespace.
	out, err := side.Exec(t, "timeout", "10", "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:80/")
	if err != nil || !strings.Contains(out, "nginx") {
		t.Errorf("wget from the sidecar: %v: %q", err, out)
	}

	// The sidecar sees nginx's processes: one PID namespace.
	out, err = side.Exec(t, "busybox", "ps", "-o", "pid,args")
	if err != nil || !strings.Contains(out, "nginx: master process") {
		t.Errorf("ps in the sidecar: %v: %q", err, out)
	}
}

func TestStopReturnsExitCode(t *testing.T) {
	c := Run(t, Options{
		Name:  "stop",
		Image: PeerImage(),
		Cmd:   []string{"sh", "-c", `trap 'echo got TERM; exit 3' TERM; echo started; while :; do sleep 0.2; done`},
	})
	waitForLog(t, c, "started")
	if !c.Running(t) {
		t.Fatal("container is not running")
	}
	if code := c.Stop(t, 20); code != 3 {
		t.Errorf("Stop = %d, want 3 (the trap's exit code)", code)
	}
	if logs := c.Logs(t); !strings.Contains(logs, "got TERM") {
		t.Errorf("logs = %q, want the trap's message", logs)
	}
	if c.Running(t) {
		t.Error("container still running after Stop")
	}
}

func TestWaitAndLogs(t *testing.T) {
	c := Run(t, Options{
		Name:  "logs",
		Image: PeerImage(),
		Cmd:   []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"},
		Env:   []string{"UNUSED=1"},
	})
	if code := c.Wait(t, time.Minute); code != 7 {
		t.Errorf("Wait = %d, want 7", code)
	}
	if code := c.ExitCode(t); code != 7 {
		t.Errorf("ExitCode = %d, want 7", code)
	}
	logs := c.Logs(t)
	for _, want := range []string{"to-stdout", "to-stderr"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs = %q, want %q", logs, want)
		}
	}
	if got := c.Inspect(t, `{{index .Config.Labels "podkit.test"}}`); got != "1" {
		t.Errorf("label podkit.test = %q, want 1", got)
	}
}

func TestNetworkPartition(t *testing.T) {
	net := NewNetwork(t, "part")
	web := Run(t, Options{
		Name:    "web",
		Image:   PeerImage(),
		Cmd:     []string{"nginx", "-g", "daemon off;"},
		Network: net.Name,
		Aliases: []string{"web"},
	})
	client := Run(t, Options{
		Name:    "client",
		Image:   PeerImage(),
		Cmd:     []string{"sleep", "300"},
		Network: net.Name,
	})
	if ip := web.IP(t, net); ip == "" {
		t.Fatal("web has no IP on the network")
	}

	reach := func() error {
		_, err := client.Exec(t, "timeout", "5", "busybox", "wget", "-q", "-O", "/dev/null", "http://web/")
		return err
	}
	if err := reach(); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	net.Disconnect(t, web)
	if err := reach(); err == nil {
		t.Fatal("web still reachable after Disconnect")
	}
	net.Connect(t, web, "web")
	if err := reach(); err != nil {
		t.Fatalf("after healing the partition: %v", err)
	}
}

func TestSharedVolume(t *testing.T) {
	vol := NewVolume(t, "shared")
	w := Run(t, Options{
		Name:    "writer",
		Image:   PeerImage(),
		Cmd:     []string{"sh", "-c", "echo hello > /shared/msg"},
		Volumes: []string{vol.Name + ":/shared"},
	})
	if code := w.Wait(t, time.Minute); code != 0 {
		t.Fatalf("writer exited %d: %s", code, w.Logs(t))
	}
	r := Run(t, Options{
		Name:    "reader",
		Image:   PeerImage(),
		Cmd:     []string{"cat", "/shared/msg"},
		Volumes: []string{vol.Name + ":/shared:ro"},
	})
	if code := r.Wait(t, time.Minute); code != 0 {
		t.Fatalf("reader exited %d", code)
	}
	if got := strings.TrimSpace(r.Logs(t)); got != "hello" {
		t.Errorf("reader saw %q, want hello", got)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := http.Get(url)
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

func waitForLog(t *testing.T, c *Container, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if strings.Contains(c.Logs(t), want) {
			return
		}
	}
	t.Fatalf("%s never logged %q; logs:\n%s", c, want, c.Logs(t))
}
