package election

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/podkit/podkit/internal/retry"
)

type stateKey struct{}

func withState(ctx context.Context, st State) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

// notifier POSTs every change to each --notify URL, in order, keeping only
// the latest state when a URL is slower than the changes. Each POST is
// tried notifyAttempts times (200ms after the first failure, doubling),
// and not again once a newer state is waiting.
type notifier struct {
	client  *http.Client
	log     *slog.Logger
	m       *metrics
	targets []*notifyTarget
	// stop ends the waits between attempts (a POST under way finishes).
	stop   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type notifyTarget struct {
	url  string
	next chan State // capacity 1: the latest state not yet sent
}

const notifyAttempts = 3

func newNotifier(urls []string, timeout time.Duration, log *slog.Logger, m *metrics) *notifier {
	n := &notifier{client: &http.Client{Timeout: timeout}, log: log, m: m}
	n.stop, n.cancel = context.WithCancel(context.Background())
	for _, u := range urls {
		t := &notifyTarget{url: u, next: make(chan State, 1)}
		n.targets = append(n.targets, t)
		n.wg.Add(1)
		go n.loop(t)
	}
	return n
}

func (n *notifier) send(st State) {
	for _, t := range n.targets {
		select {
		case <-t.next:
		default:
		}
		t.next <- st
	}
}

func (n *notifier) close() {
	n.cancel()
	n.wg.Wait()
}

func (n *notifier) loop(t *notifyTarget) {
	defer n.wg.Done()
	for {
		var st State
		select {
		case <-n.stop.Done():
			return
		case st = <-t.next:
		}
		body, _ := json.Marshal(toJSON(st))
		req := retry.Request{Client: n.client, URL: t.url, Body: body, Header: http.Header{"Content-Type": {"application/json"}}}
		var last error
		_, err := retry.Do(n.stop, retry.Policy{Attempts: notifyAttempts}, func(_ context.Context, attempt int) error {
			if attempt > 1 && len(t.next) > 0 {
				return retry.Permanent(last) // a newer state supersedes this one
			}
			last = req.Once(context.Background())
			return last
		})
		if err != nil && n.stop.Err() != nil {
			return
		}
		if err != nil {
			n.m.notify.WithLabelValues("error").Inc()
			n.log.Warn("notify failed", "url", t.url, "error", err)
			continue
		}
		n.m.notify.WithLabelValues("ok").Inc()
	}
}
