package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/workqueue/client"
)

// queueHealth follows whether the worker's requests to the coordinator
// succeed. It is shared by every slot, so an outage is logged once for the
// worker: the first failure at once, then at most one line per interval
// with the count since the line before, and one line when a request
// succeeds again; lines are never closer than the interval but for the
// recovery. Its check is the worker's readiness check.
type queueHealth struct {
	log      *slog.Logger
	interval time.Duration
	errs     *prometheus.CounterVec // nil: not counted
	now      func() time.Time

	mu        sync.Mutex
	answered  chan struct{} // closed at the first outcome, success or failure
	failing   bool
	announced bool      // the current outage was logged
	since     time.Time // when the current outage began
	total     int       // failures in the current outage
	unlogged  int       // failures since the last line
	lastLine  time.Time
	lastErr   error
	lastOp    string
}

func newQueueHealth(log *slog.Logger, interval time.Duration, errs *prometheus.CounterVec) *queueHealth {
	return &queueHealth{log: log, interval: interval, errs: errs, now: time.Now, answered: make(chan struct{})}
}

// reason sorts an error talking to the coordinator for the errors metric:
// unreachable (no connection: refused, reset, DNS, TLS), timeout,
// server_error (5xx), unauthorized (401: no credential, or one the queue
// does not know), forbidden (403: the credential lacks the role),
// client_error (another 4xx) or bad_answer.
func reason(err error) string {
	var ae *client.Error
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		switch {
		case ae.Status >= 500:
			return "server_error"
		case ae.Status == http.StatusUnauthorized:
			return "unauthorized"
		case ae.Status == http.StatusForbidden:
			return "forbidden"
		}
		return "client_error"
	case errors.Is(err, client.ErrBadAnswer):
		return "bad_answer"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "unreachable"
}

// count counts an error in the metric only: an item-level refusal (a 4xx
// to an ack) says nothing about the queue.
func (q *queueHealth) count(err error) {
	if q.errs != nil {
		q.errs.WithLabelValues(reason(err)).Inc()
	}
}

func (q *queueHealth) markAnswered() {
	select {
	case <-q.answered:
	default:
		close(q.answered)
	}
}

// failure records a failed request (op: lease, heartbeat, ack, nack).
func (q *queueHealth) failure(op string, err error) {
	q.count(err)
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.markAnswered()
	q.lastErr, q.lastOp = err, op
	q.total++
	q.unlogged++
	if !q.failing {
		q.failing, q.since, q.announced = true, now, false
	}
	// Lines are at least an interval apart, so a queue that fails and
	// recovers over and over does not flood the log either: an outage that
	// starts within an interval of the last line is announced once the
	// interval has passed (if it lasts), and its recovery only if it was.
	if !q.lastLine.IsZero() && now.Sub(q.lastLine) < q.interval {
		return
	}
	attrs := []any{"op", op, "reason", reason(err), "error", err.Error()}
	var ae *client.Error
	if errors.As(err, &ae) && len(ae.NeededRoles()) > 0 {
		// Refused: say what the worker's --token-file or --cert lacks.
		attrs = append(attrs, "role", strings.Join(ae.NeededRoles(), " or "))
	}
	if !q.announced {
		q.log.Warn("queue requests failing; retrying", attrs...)
		q.announced = true
	} else {
		q.log.Warn("queue requests still failing", append(attrs,
			"failures", q.unlogged, "failures_total", q.total, "since", q.since.UTC().Format(time.RFC3339))...)
	}
	q.lastLine, q.unlogged = now, 0
}

// success records a request the coordinator answered as expected.
func (q *queueHealth) success() {
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.markAnswered()
	if !q.failing {
		return
	}
	if q.announced {
		q.log.Info("queue requests work again", "failures_total", q.total, "down_for", now.Sub(q.since).Round(time.Millisecond).String())
		q.lastLine = now
	}
	q.failing, q.announced, q.total, q.unlogged, q.lastErr = false, false, 0, 0, nil
}

// ok reports whether the last request succeeded (false also before any
// request finished).
func (q *queueHealth) ok() bool {
	select {
	case <-q.answered:
	default:
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.failing
}

// check is the readiness check: it fails while requests fail, and waits
// (up to ctx) for the first answer.
func (q *queueHealth) check(ctx context.Context) error {
	select {
	case <-q.answered:
	case <-ctx.Done():
		return errors.New("no answer from the queue yet")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failing {
		return fmt.Errorf("%s failing since %s (%d errors): %v", q.lastOp, q.since.UTC().Format(time.RFC3339), q.total, q.lastErr)
	}
	return nil
}
