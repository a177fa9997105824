//go:build container

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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

// TestPodWorkQueue: the coordinator with its store on a volume, three
// worker containers running a shell script through `podkit worker`; one
// worker is killed -9 in the middle of an item, and every item completes.
func TestPodWorkQueue(t *testing.T) {
	bin := queueBinary(t)
	os.Chmod(bin, 0o755)
	network := containertest.NewNetwork(t, "queue")
	vol := containertest.NewVolume(t, "queue-data")
	queue := containertest.Run(t, containertest.Options{
		Name:    "queue",
		Image:   containertest.Image(),
		Cmd:     []string{"queue", "--listen", "0.0.0.0:8080", "--data-dir", "/tmp/queue", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s", "--backoff-base", "100ms", "--backoff-max", "500ms"},
		Network: network.Name,
		Aliases: []string{"queue"},
		// The volume at /tmp takes the image's ownership of /tmp (the
		// nonroot user) when first mounted.
		Volumes: []string{vol.Name + ":/tmp"},
		Publish: []string{"8080", "9901"},
	})
	api := "http://" + queue.Addr(t, "8080")
	waitHTTP(t, "http://"+queue.Addr(t, "9901")+"/readyz", 200)

	const n = 24
	c := client.New(api, nil)
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
			Cmd:     []string{"/podkit", "worker", "--queue", "http://queue:8080/queues/jobs", "--concurrency", "2", "--admin-addr", "off", "--drain-delay", "0s", "--wait", "2s", "--", "sh", "-c", script},
			Network: network.Name,
			Volumes: []string{bin + ":/podkit:ro"},
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
