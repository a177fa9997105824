package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/worker"
)

// startQueue runs the work-queue coordinator (durable store in a temporary
// directory), two `podkit worker`s running a shell one-liner per item, and
// a producer that enqueues an item every half second.
func startQueue(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		idle := make(chan error, 1)
		go func() { <-ctx.Done(); idle <- nil }()
		return []Endpoint{{"queue", "not started: the demo's workers need sh, which is not in PATH", ""}}, idle, nil
	}
	ln, err := d.listen()
	if err != nil {
		return nil, nil, err
	}
	dir, err := d.tempDir("queue")
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	cfg := workqueue.DefaultConfig()
	cfg.Listen = ln.Addr().String() // what /info shows
	cfg.Listener = ln
	cfg.DataDir = dir
	cfg.BackoffBase = 500 * time.Millisecond
	cfg.BackoffMax = 5 * time.Second
	coord, err := workqueue.New(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	// The coordinator outlives its workers: it stops only once they have
	// finished (and acknowledged) what they were running, as a Deployment
	// of workers drained before its queue would.
	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	admin, coordErr, err := d.run(coordCtx, coord)
	if err != nil {
		stopCoord()
		ln.Close()
		return nil, nil, err
	}
	server := "http://" + ln.Addr().String()
	eps := []Endpoint{
		{"queue", "work queue coordinator: GET /queues/demo, POST /queues/demo/items", server + "/queues/demo"},
		{"queue", "its admin endpoints (metrics: podkit_queue_items, ...)", admin + "/metrics"},
	}
	workerCtx, stopWorkers := context.WithCancel(ctx)
	var workerErrs []<-chan error
	stopAll := func() {
		stopWorkers()
		for _, c := range workerErrs {
			<-c
		}
		stopCoord()
		<-coordErr
	}
	for i := range 2 {
		wcfg := worker.DefaultConfig()
		wcfg.Queue = server + "/queues/demo"
		wcfg.Concurrency = 2
		wcfg.Wait = 2 * time.Second
		// One item in ten fails (and is retried, then dead-lettered).
		wcfg.Command = []string{sh, "-c", `payload=$(cat); case "$payload" in *'"fail":true'*) echo "item $PODKIT_ITEM_ID: refusing on purpose" >&2; exit 1;; esac; sleep 0.3`}
		wcfg.Stdout, wcfg.Stderr = devNull{}, devNull{}
		instance := fmt.Sprintf("worker-%d", i+1)
		wcfg.ID = instance
		w, err := worker.New(wcfg)
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		wadmin, werr, err := d.run(workerCtx, w, "worker", instance)
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		workerErrs = append(workerErrs, werr)
		eps = append(eps, Endpoint{"worker", fmt.Sprintf("podkit worker %d (exec, concurrency 2): pause with POST /pause", i+1), wadmin + "/metrics"})
	}
	go produce(ctx, client.New(server, nil))
	out := make(chan error, 1)
	go func() {
		defer stopWorkers()
		var first error
		for _, c := range workerErrs {
			if e := <-c; e != nil && first == nil {
				first = e
			}
		}
		stopCoord()
		if e := <-coordErr; e != nil && first == nil {
			first = e
		}
		out <- first
	}()
	return eps, out, nil
}

// produce enqueues a generated item every half second.
func produce(ctx context.Context, c *client.Client) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p, _ := json.Marshal(map[string]any{"n": n, "fail": n%10 == 0})
		c.Enqueue(ctx, "demo", []client.Item{{Payload: p, MaxAttempts: 2}})
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }
