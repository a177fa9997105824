//go:build container

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/e2e/containertest"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue/client"
)

// queueBinary is the static podkit binary, to bind-mount into the peers
// image (which has the shell the worker's script needs; the podkit image
// has none).
func queueBinary(t *testing.T) string {
	t.Helper()
	return testdeps.BuildPodkit(t)
}

// TestPodWorkQueue: the coordinator with its store on a volume, its API
// open to the network with bearer tokens (the worker token may only
// lease, the producer's may enqueue and read counts), three worker
// containers running a shell script through `podkit worker` with the
// worker token; one worker is killed -9 in the middle of an item, and
// every item completes. (TestComposeQueue runs the example with mutual
// TLS.)
func TestPodWorkQueue(t *testing.T) {
	bin := queueBinary(t)
	os.Chmod(bin, 0o755)
	// Token files, readable by the containers' uid 65532 (0644: the
	// coordinator warns that they are world-readable, which is the
	// test's choice).
	secrets := t.TempDir()
	os.Chmod(secrets, 0o755)
	const workerTok, producerTok = "w0rker-token-0123456789", "pr0ducer-token-0123456789"
	for name, body := range map[string]string{
		"tokens":   "workers worker " + workerTok + "\nci producer,admin " + producerTok + "\n",
		"worker":   workerTok + "\n",
		"producer": producerTok + "\n",
	} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	network := containertest.NewNetwork(t, "queue")
	vol := containertest.NewVolume(t, "queue-data")
	queue := containertest.Run(t, containertest.Options{
		Name:    "queue",
		Image:   containertest.Image(),
		Cmd:     []string{"queue", "--listen", "0.0.0.0:8080", "--token-file", "/secrets/tokens", "--data-dir", "/tmp/queue", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s", "--backoff-base", "100ms", "--backoff-max", "500ms"},
		Network: network.Name,
		Aliases: []string{"queue"},
		// The volume at /tmp takes the image's ownership of /tmp (the
		// nonroot user) when first mounted.
		Volumes: []string{vol.Name + ":/tmp", secrets + ":/secrets:ro"},
		Publish: []string{"8080", "9901"},
	})
	api := "http://" + queue.Addr(t, "8080")
	waitHTTP(t, "http://"+queue.Addr(t, "9901")+"/readyz", 200)

	// Without a token: 401; with the worker's, enqueueing is 403.
	if code, body, err := get(api + "/queues/jobs"); err != nil || code != 401 {
		t.Errorf("GET /queues/jobs without a token: %d %v %s, want 401", code, err, body)
	}
	asWorker, err := container.APIClient{TokenFile: filepath.Join(secrets, "worker")}.Client(nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var refused *client.Error
	if _, err := client.New(api, asWorker).Enqueue(context.Background(), "jobs", []client.Item{{Payload: json.RawMessage(`{}`)}}); !errors.As(err, &refused) || refused.Status != 403 || refused.Role != "producer" {
		t.Errorf("enqueue with the worker's token: %v, want 403 naming role producer", err)
	}

	const n = 24
	hc, err := container.APIClient{TokenFile: filepath.Join(secrets, "producer")}.Client(nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(api, hc)
	var items []client.Item
	for i := range n {
		items = append(items, client.Item{Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), Timeout: "3s", MaxAttempts: 5})
	}
	if _, err := c.Enqueue(context.Background(), "jobs", items); err != nil {
		t.Fatal(err)
	}
	// Each item takes a second; the script checks what the adapter gives it.
	script := `payload=$(cat)
[ "$payload" = "$(cat "$PODKIT_ITEM_FILE")" ] || exit 9
[ -n "$PODKIT_ITEM_ID" ] && [ -n "$PODKIT_ATTEMPT" ] || exit 8
echo "working on item $PODKIT_ITEM_ID (attempt $PODKIT_ATTEMPT): $payload"
sleep 1`
	var workers []*containertest.Container
	for i := range 3 {
		workers = append(workers, containertest.Run(t, containertest.Options{
			Name:    fmt.Sprintf("worker%d", i),
			Image:   containertest.PeerImage(),
			User:    "65532:65532",
			Cmd:     []string{"/podkit", "worker", "--queue", "http://queue:8080/queues/jobs", "--token-file", "/secrets/worker", "--concurrency", "2", "--admin-addr", "off", "--drain-delay", "0s", "--wait", "2s", "--", "sh", "-c", script},
			Network: network.Name,
			Volumes: []string{bin + ":/podkit:ro", secrets + ":/secrets:ro"},
		}))
	}
	// Kill one worker while it holds items.
	eventually(t, "worker0 to start an item", func() bool {
		return strings.Contains(workers[0].Logs(t), "working on item")
	})
	workers[0].Kill(t, "KILL")

	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, _ := c.Drained(context.Background(), "jobs")
		if ok {
			break
		}
		if time.Now().After(deadline) {
			st, _ := c.Stats(context.Background(), "jobs")
			t.Fatalf("not drained within 60 s: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	st, err := c.Stats(context.Background(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if st.Done != n || st.Dead != 0 {
		t.Fatalf("done=%d dead=%d, want every one of %d items done", st.Done, st.Dead, n)
	}
	if st.Expired < 1 {
		t.Fatalf("no lease expired: the killed worker held nothing (stats %+v)", st)
	}
	// SIGTERM: the coordinator drains and exits 0.
	if code := queue.Stop(t, 20); code != 0 {
		t.Fatalf("queue exited %d on stop", code)
	}
}
