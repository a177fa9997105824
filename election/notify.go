package election

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/retry"
)

// notifyPrefix prefixes the --notify client's flags: --notify-ca,
// --notify-cert, --notify-key, --notify-token-file.
const notifyPrefix = "notify-"

type stateKey struct{}

func withState(ctx context.Context, st State) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

// notifier POSTs every change to each --notify URL, in order, keeping only
// the latest state when a URL is slower than the changes. Each POST is
// tried notifyAttempts times (200ms after the first failure, doubling),
// and not again once a newer state is waiting. A 401 or 403 is not tried
// again: the target refused the credential, and trying the same one
// again a moment later cannot help; the next change is sent with the
// credential files as they are then (they are read again when they
// change).
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

func newNotifier(urls []string, timeout time.Duration, creds container.APIClient, log *slog.Logger, m *metrics) (*notifier, error) {
	client, err := creds.Client(nil, timeout)
	if err != nil {
		return nil, err
	}
	if creds.TokenFile != "" {
		for _, u := range urls {
			if pu, err := url.Parse(u); err == nil && pu.Scheme == "http" && !container.IsLoopbackAddr(net.JoinHostPort(pu.Hostname(), "0")) {
				log.Warn("--notify-token-file: the token is sent in plaintext to an http:// URL on another host; use https", "url", u)
			}
		}
	}
	n := &notifier{client: client, log: log, m: m}
	n.stop, n.cancel = context.WithCancel(context.Background())
	for _, u := range urls {
		t := &notifyTarget{url: u, next: make(chan State, 1)}
		n.targets = append(n.targets, t)
		n.wg.Add(1)
		go n.loop(t)
	}
	return n, nil
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
			if refused(last) != nil {
				return retry.Permanent(last)
			}
			return last
		})
		if err != nil && n.stop.Err() != nil {
			return
		}
		if se := refused(err); se != nil {
			n.m.notify.WithLabelValues("denied").Inc()
			n.log.Error("notify failed: the target refused the credential (not retried; fix --notify-token-file or --notify-cert, the next change is sent with the files as they are then)",
				"url", t.url, "status", se.Status, "error", refusalText(se.Body), "epoch", st.Epoch)
			continue
		}
		if err != nil {
			n.m.notify.WithLabelValues("error").Inc()
			n.log.Warn("notify failed", "url", t.url, "error", err)
			continue
		}
		n.m.notify.WithLabelValues("ok").Inc()
	}
}

// refused returns err's answer if it is a 401 or 403.
func refused(err error) *retry.StatusError {
	var se *retry.StatusError
	if errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden) {
		return se
	}
	return nil
}

// refusalText is what a refusal's body says: its JSON "error" (podkit's
// APIs answer {"error": ..., "role": ...}), else the body itself.
func refusalText(body []byte) string {
	var j struct {
		Error string `json:"error"`
		Role  string `json:"role"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		if j.Role != "" && !strings.Contains(j.Error, j.Role) {
			return j.Error + " (needs role " + j.Role + ")"
		}
		return j.Error
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return s
	}
	return "(no body)"
}
