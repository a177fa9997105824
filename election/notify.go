package election

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

type stateKey struct{}

func withState(ctx context.Context, st State) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

// notifier POSTs every change to each --notify URL, in order, keeping only
// the latest state when a URL is slower than the changes.
type notifier struct {
	client  *http.Client
	log     *slog.Logger
	m       *metrics
	targets []*notifyTarget
	wg      sync.WaitGroup
}

type notifyTarget struct {
	url  string
	next chan State // capacity 1: the latest state not yet sent
	done chan struct{}
}

const notifyAttempts = 3

func newNotifier(urls []string, timeout time.Duration, log *slog.Logger, m *metrics) *notifier {
	n := &notifier{client: &http.Client{Timeout: timeout}, log: log, m: m}
	for _, u := range urls {
		t := &notifyTarget{url: u, next: make(chan State, 1), done: make(chan struct{})}
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
	for _, t := range n.targets {
		close(t.done)
	}
	n.wg.Wait()
}

func (n *notifier) loop(t *notifyTarget) {
	defer n.wg.Done()
	for {
		var st State
		select {
		case <-t.done:
			return
		case st = <-t.next:
		}
		body, _ := json.Marshal(toJSON(st))
		var err error
		for attempt := 1; attempt <= notifyAttempts; attempt++ {
			if err = n.post(t.url, body); err == nil {
				break
			}
			select {
			case <-t.done:
				return
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
			if len(t.next) > 0 {
				break // a newer state supersedes this one
			}
		}
		if err != nil {
			n.m.notify.WithLabelValues("error").Inc()
			n.log.Warn("notify failed", "url", t.url, "error", err)
			continue
		}
		n.m.notify.WithLabelValues("ok").Inc()
	}
}

func (n *notifier) post(u string, body []byte) error {
	resp, err := n.client.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s answered %s", u, resp.Status)
	}
	return nil
}
