// Package worker is `podkit worker`: the adapter that turns any program
// into a worker of podkit's work queue. It leases items from a coordinator
// (`podkit queue`) and, per item, either runs a command — the payload on
// stdin and in the file named by $PODKIT_ITEM_FILE, with $PODKIT_ITEM_ID,
// $PODKIT_ATTEMPT and $PODKIT_QUEUE set — or POSTs the payload to a worker
// process in the pod (--http). While the item runs it heartbeats the
// lease; exit 0 (or a 2xx answer) acks it, anything else nacks it with the
// tail of stderr (or of the answer); at the item's timeout the command is
// killed and the item nacked.
//
// Paused (POST /pause) or draining (SIGTERM), the worker stops leasing and
// finishes the items it holds. An ack or nack refused with 409 means the
// lease was no longer this worker's (it expired and the item went to
// another worker): it is logged as a stale completion and counted, never
// retried.
package worker

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/child"
	"github.com/podkit/podkit/internal/retry"
	"github.com/podkit/podkit/workqueue/client"
)

// Config configures a Worker.
type Config struct {
	// Queue is the queue's URL: http://host:port/queues/<name>.
	Queue string `json:"queue"`
	// Concurrency is how many items are processed at once.
	Concurrency int `json:"concurrency"`
	// Command runs once per item (mutually exclusive with HTTP).
	Command []string `json:"command"`
	// HTTP is the URL the payload is POSTed to instead of running a command.
	HTTP string `json:"http"`
	// Wait is how long one lease request waits for an item (long-poll).
	Wait time.Duration `json:"wait"`
	// KillGrace is how long a command has between SIGTERM and SIGKILL at
	// its timeout.
	KillGrace time.Duration `json:"kill_grace"`
	// StderrTail is how many bytes of the end of stderr go in a nack.
	StderrTail int `json:"stderr_tail"`
	// ID names this worker in its log lines (the "worker" attribute), in
	// $PODKIT_WORKER_ID and the Podkit-Worker-Id header; "" means
	// <hostname>/<pid>.
	ID string `json:"id"`
	// ErrorLogInterval is how often, at most, a continuing failure to talk
	// to the queue is logged again (the first failure and the recovery are
	// logged at once).
	ErrorLogInterval time.Duration `json:"error_log_interval"`
	// Client is what the worker presents to the queue on every request
	// (lease, heartbeat, ack, nack): a CA for an https:// queue, a client
	// certificate, a bearer token (--ca, --cert, --key, --token-file).
	Client container.APIClient `json:"client"`
	// Stdout and Stderr receive the command's streams (nil: the process's).
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Concurrency: 1, Wait: 20 * time.Second, KillGrace: 2 * time.Second, StderrTail: 4096, ErrorLogInterval: 30 * time.Second}
}

// RegisterFlags adds the worker's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Queue, "queue", c.Queue, "the queue to work on: `URL`/queues/<name>, e.g. http://queue:8080/queues/default")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "items processed at once")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "POST each payload to this `URL` (a worker process in the pod) instead of running a command")
	fs.DurationVar(&c.Wait, "wait", c.Wait, "how long one lease request waits for an item")
	fs.DurationVar(&c.KillGrace, "kill-grace", c.KillGrace, "at an item's timeout, time between SIGTERM and SIGKILL")
	fs.IntVar(&c.StderrTail, "stderr-tail", c.StderrTail, "bytes of the end of stderr sent with a nack")
	fs.StringVar(&c.ID, "worker-id", c.ID, "this worker's `name` in its log lines (attribute worker), $PODKIT_WORKER_ID and the Podkit-Worker-Id header (default <hostname>/<pid>)")
	fs.DurationVar(&c.ErrorLogInterval, "error-log-interval", c.ErrorLogInterval, "while requests to the queue keep failing, log at most one line per this interval (the first failure and the recovery are logged at once)")
	c.Client.RegisterFlags(fs, "", "the queue")
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.Queue == "" {
		errs = append(errs, errors.New("--queue: required (URL/queues/<name>)"))
	} else if _, _, err := client.ParseQueueURL(c.Queue); err != nil {
		errs = append(errs, fmt.Errorf("--queue: %v", err))
	} else if err := client.CheckTLS("--queue", c.Queue, c.Client.CAFile != "" || c.Client.CertFile != ""); err != nil {
		errs = append(errs, err)
	}
	if err := c.Client.Validate(""); err != nil {
		errs = append(errs, err)
	}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		errs = append(errs, fmt.Errorf("--concurrency: %d is not from 1 to 1024", c.Concurrency))
	}
	switch {
	case c.HTTP == "" && len(c.Command) == 0:
		errs = append(errs, errors.New("give a command after -- (or --http URL)"))
	case c.HTTP != "" && len(c.Command) > 0:
		errs = append(errs, errors.New("--http: give --http or a command, not both"))
	case c.HTTP != "":
		u, err := url.Parse(c.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--http %q: want an http:// or https:// URL", c.HTTP))
		}
	}
	if c.Wait <= 0 || c.Wait > 5*time.Minute {
		errs = append(errs, fmt.Errorf("--wait: %s is not from 1ns to 5m", c.Wait))
	}
	if c.KillGrace < 0 {
		errs = append(errs, fmt.Errorf("--kill-grace: %s is negative", c.KillGrace))
	}
	if c.ErrorLogInterval <= 0 {
		errs = append(errs, fmt.Errorf("--error-log-interval: %s must be positive", c.ErrorLogInterval))
	}
	if len(c.ID) > 256 || strings.ContainsFunc(c.ID, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		errs = append(errs, fmt.Errorf("--worker-id %q: want at most 256 printable characters", c.ID))
	}
	if c.StderrTail < 0 || c.StderrTail > 1<<20 {
		errs = append(errs, fmt.Errorf("--stderr-tail: %d is not from 0 to 1048576", c.StderrTail))
	}
	return errors.Join(errs...)
}

// Worker is the `podkit worker` component.
type Worker struct {
	cfg   Config
	base  string
	queue string
	c     *client.Client
	hc    *http.Client

	items   *prometheus.CounterVec
	busy    prometheus.Gauge
	stale   prometheus.Counter
	dur     *prometheus.HistogramVec
	errs    *prometheus.CounterVec
	staleMu sync.Mutex
	nStale  int

	health *queueHealth // set by Run
}

var (
	_ container.Component  = (*Worker)(nil)
	_ container.Configured = (*Worker)(nil)
)

// New validates cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, q, _ := client.ParseQueueURL(cfg.Queue)
	if cfg.ID == "" {
		cfg.ID = DefaultID()
	}
	// Every request to the queue presents the worker's credentials; the
	// --http worker process gets none of them.
	rt, err := cfg.Client.Transport(client.DefaultTransport(max(cfg.Concurrency, 2)))
	if err != nil {
		return nil, err
	}
	return &Worker{
		cfg: cfg, base: base, queue: q, c: client.New(base, &http.Client{Transport: rt}),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}},
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_worker_items_total", Help: "Items processed, by result: ack, nack, timeout, lost (the lease was no longer ours).",
		}, []string{"result"}),
		busy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_worker_busy", Help: "Items being processed now.",
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_worker_stale_completions_total", Help: "Heartbeats, acks and nacks the coordinator refused with 409 (the lease had moved on).",
		}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "podkit_worker_processing_duration_seconds", Help: "Time to process one item, by result.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 1800},
		}, []string{"result"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_worker_queue_errors_total", Help: "Requests to the queue (lease, heartbeat, ack, nack) that failed, by reason: unreachable, timeout, server_error (5xx), unauthorized (401), forbidden (403), client_error (other 4xx but 409), bad_answer.",
		}, []string{"reason"}),
	}, nil
}

// Command is the `podkit worker` subcommand. Every log line, the
// contract's own included, names the worker it came from.
func Command() cli.Command {
	return container.InvocationCommand("worker",
		"lease items from a podkit queue and run a command (or POST to a URL) for each; ack on success, nack with stderr otherwise",
		"--queue URL/queues/NAME [--concurrency N] [flags] -- CMD ARGS...   |   --queue URL/queues/NAME --http URL [flags]",
		func(fs *flag.FlagSet) func(*container.Invocation) (container.Component, error) {
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			return func(in *container.Invocation) (container.Component, error) {
				cfg.Command = in.Args
				w, err := New(cfg)
				if err != nil {
					return nil, err
				}
				in.Opts.LogOutput = orWriter(in.Stdio.Stdout, os.Stdout)
				in.Opts.LogAttrs = []any{"worker", w.cfg.ID}
				return w, nil
			}
		})
}

// DefaultID is the worker's name when Config.ID is empty:
// <hostname>/<pid> (in Kubernetes the host name is the pod's name).
func DefaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}

// Name implements container.Component.
func (w *Worker) Name() string { return "worker" }

// EffectiveConfig implements container.Configured.
func (w *Worker) EffectiveConfig() any {
	c := w.cfg
	c.Queue = container.RedactURL(c.Queue)
	c.HTTP = container.RedactURL(c.HTTP)
	return c
}

// StaleCompletions reports how many completions the coordinator refused
// with 409.
func (w *Worker) StaleCompletions() int {
	w.staleMu.Lock()
	defer w.staleMu.Unlock()
	return w.nStale
}

// Run implements container.Component.
func (w *Worker) Run(ctx context.Context, h *container.Host) error {
	h.Registerer().MustRegister(w.items, w.busy, w.stale, w.dur, w.errs)
	log := h.Logger()
	if !h.HasLogAttr("worker") {
		log = log.With("worker", w.cfg.ID)
	}
	log = log.With("queue", container.RedactURL(w.cfg.Queue))
	w.health = newQueueHealth(log, w.cfg.ErrorLogInterval, w.errs)
	h.AddCheck(container.Check{
		Name: "queue " + container.RedactURL(w.cfg.Queue), Ready: true,
		Period: time.Second, Timeout: 5 * time.Second, Func: w.health.check,
	})
	h.SetReady(true)
	log.Info("worker started", "concurrency", w.cfg.Concurrency, "mode", w.mode())
	var wg sync.WaitGroup
	for i := range w.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.slot(ctx, h, log.With("slot", i))
		}()
	}
	wg.Wait()
	h.SetReady(false)
	log.Info("worker stopped", "stale_completions", w.StaleCompletions())
	return nil
}

func (w *Worker) mode() string {
	if w.cfg.HTTP != "" {
		return "http " + container.RedactURL(w.cfg.HTTP)
	}
	return "exec " + w.cfg.Command[0]
}

// errPaused cancels a lease request when the worker is paused.
var errPaused = errors.New("paused")

// slot leases and processes items one at a time until ctx ends. While the
// queue's health is not known to be good (at the start, during an outage)
// a lease does not long-poll, so a coordinator that answers is seen at
// once.
func (w *Worker) slot(ctx context.Context, h *container.Host, log *slog.Logger) {
	backoff := retry.NewBackoff(leaseRetry)
	for ctx.Err() == nil {
		// The pause channel is taken before Paused is asked: a pause
		// that comes between the two closes it, and cancels the lease
		// below; taken after, it would be the next pause's channel, and
		// a paused worker could lease one more item.
		pc := h.PauseChanged()
		if h.Paused() {
			if h.WaitResumed(ctx) != nil {
				return
			}
			continue
		}
		wait := w.cfg.Wait
		if !w.health.ok() {
			wait = 0
		}
		// The request is bounded: a coordinator that accepts connections
		// but never answers is an outage too.
		lctx, cancel := context.WithCancelCause(ctx)
		tctx, cancelT := context.WithTimeout(lctx, wait+30*time.Second)
		go func() {
			select {
			case <-pc:
				cancel(errPaused)
			case <-lctx.Done():
			}
		}()
		leases, err := w.c.Lease(tctx, w.queue, 1, wait)
		paused := errors.Is(context.Cause(lctx), errPaused)
		cancelT()
		cancel(nil)
		if err != nil {
			if ctx.Err() != nil || paused {
				continue
			}
			w.health.failure("lease", err)
			d, _ := backoff.Next()
			retry.Sleep(ctx, d)
			continue
		}
		backoff.Reset()
		w.health.success()
		for _, l := range leases {
			w.process(h, log, l)
		}
	}
}

// leaseRetry spaces lease requests while the queue fails: 200ms,
// doubling, at most 5s.
var leaseRetry = retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}

// outcome of one item.
type outcome struct {
	ok      bool
	result  string // ack, nack, timeout, lost
	errText string
}

// process runs one leased item to its ack or nack. It is not bound to the
// component's context: a draining worker finishes its items, up to the
// drain deadline.
func (w *Worker) process(h *container.Host, log *slog.Logger, l client.Lease) {
	w.busy.Inc()
	defer w.busy.Dec()
	start := time.Now()
	log = log.With("item", l.ID, "attempt", l.Attempt)
	timeout := l.Timeout()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// lost closes when a heartbeat is refused: the item is someone else's.
	lost := make(chan struct{})
	hbCtx, stopHB := context.WithCancel(context.Background())
	var hbWG sync.WaitGroup
	hbWG.Add(1)
	go func() {
		defer hbWG.Done()
		w.heartbeat(hbCtx, log, l, timeout, lost)
	}()
	var out outcome
	if w.cfg.HTTP != "" {
		out = w.runHTTP(h, l, timeout, lost)
	} else {
		out = w.runExec(h, log, l, timeout, lost)
	}
	stopHB()
	hbWG.Wait()
	select {
	case <-lost:
		out = outcome{result: "lost"}
	default:
	}
	w.dur.WithLabelValues(out.result).Observe(time.Since(start).Seconds())
	w.items.WithLabelValues(out.result).Inc()
	if out.result == "lost" {
		log.Warn("lease lost while the item ran (it expired and went to another worker); result dropped")
		return
	}
	w.complete(h, log, l, out)
}

// heartbeat extends the lease every third of the timeout.
func (w *Worker) heartbeat(ctx context.Context, log *slog.Logger, l client.Lease, timeout time.Duration, lost chan struct{}) {
	every := max(timeout/3, 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, every)
		_, err := w.c.Heartbeat(hctx, l.Token)
		cancel()
		if errors.Is(err, client.ErrStale) {
			w.health.success()
			w.countStale(log, "heartbeat", err)
			close(lost)
			return
		}
		switch {
		case err == nil:
			w.health.success()
		case ctx.Err() == nil:
			w.health.failure("heartbeat", err)
		}
	}
}

func (w *Worker) countStale(log *slog.Logger, what string, err error) {
	w.stale.Inc()
	w.staleMu.Lock()
	w.nStale++
	w.staleMu.Unlock()
	log.Warn("stale completion rejected", "op", what, "error", err.Error())
}

// complete acks or nacks, retrying through network errors and coordinator
// restarts (100ms after the first failure, doubling, at most 2s) until the
// lease's deadline has surely passed.
func (w *Worker) complete(h *container.Host, log *slog.Logger, l client.Lease, out outcome) {
	budget := max(l.Timeout(), 10*time.Second) + 30*time.Second
	op := "ack"
	if !out.ok {
		op = "nack"
	}
	p := retry.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second, MaxElapsed: budget}
	attempts, err := retry.Do(context.Background(), p, func(ctx context.Context, _ int) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		if out.ok {
			err = w.c.Ack(ctx, l.Token)
		} else {
			err = w.c.Nack(ctx, l.Token, out.errText, 0)
		}
		var ae *client.Error
		switch {
		case err == nil:
			w.health.success()
			if out.ok {
				log.Debug("acked")
			} else {
				log.Info("nacked", "reason", firstLine(out.errText))
			}
			return nil
		case errors.Is(err, client.ErrStale):
			w.health.success()
			w.countStale(log, op, err)
			return retry.Permanent(errDone)
		case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
			// The queue refused the worker's credentials, not the item:
			// like an outage, retried (a rotated token or certificate
			// is picked up) until the lease has surely expired.
			w.health.failure(op, err)
			return err
		case errors.As(err, &ae) && ae.Status/100 == 4:
			// The queue answered: the item's completion is refused, the
			// queue is fine.
			w.health.success()
			w.health.count(err)
			log.Error(op+" refused", "error", err)
			return retry.Permanent(errDone)
		}
		w.health.failure(op, err)
		return err
	})
	if err != nil && err != errDone {
		log.Error(op+" failed; giving up (the lease has expired by now and the item will be retried)", "error", err, "attempts", attempts)
	}
}

// errDone ends complete's retries on an answer that is final and already
// logged.
var errDone = errors.New("completion answered")

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// runExec runs the command for one item.
func (w *Worker) runExec(h *container.Host, log *slog.Logger, l client.Lease, timeout time.Duration, lost <-chan struct{}) outcome {
	f, err := os.CreateTemp("", "podkit-item-*.json")
	if err != nil {
		return outcome{result: "nack", errText: "podkit worker: cannot write the payload file: " + err.Error()}
	}
	defer os.Remove(f.Name())
	_, err = f.Write(l.Payload)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return outcome{result: "nack", errText: "podkit worker: cannot write the payload file: " + err.Error()}
	}
	cmd := exec.Command(w.cfg.Command[0], w.cfg.Command[1:]...)
	cmd.Env = append(os.Environ(),
		"PODKIT_ITEM_ID="+l.ID,
		"PODKIT_ATTEMPT="+strconv.Itoa(l.Attempt),
		"PODKIT_ITEM_FILE="+f.Name(),
		"PODKIT_QUEUE="+l.Queue,
		"PODKIT_ITEM_DEADLINE="+l.Deadline.UTC().Format(time.RFC3339Nano),
		"PODKIT_WORKER_ID="+w.cfg.ID,
	)
	cmd.Stdin = bytes.NewReader(l.Payload)
	cmd.Stdout = orWriter(w.cfg.Stdout, os.Stdout)
	tail := child.NewTail(w.cfg.StderrTail)
	cmd.Stderr = io.MultiWriter(orWriter(w.cfg.Stderr, os.Stderr), tail)
	// In a group of its own: at the timeout the command's children are
	// stopped with it.
	proc, err := child.Start(cmd, child.Options{Group: true})
	if err != nil {
		return outcome{result: "nack", errText: fmt.Sprintf("podkit worker: cannot start %q: %v", w.cfg.Command[0], err)}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	reason := ""
	select {
	case <-proc.Done():
	case <-timer.C:
		reason = fmt.Sprintf("podkit worker: killed at the item's timeout (%s)", timeout)
	case <-lost:
		reason = "lost"
	case <-h.DrainContext().Done():
		reason = "podkit worker: killed at the drain deadline (the worker is stopping)"
	}
	if reason != "" {
		// SIGTERM to the group, SIGKILL after the grace.
		proc.Stop(syscall.SIGTERM, w.cfg.KillGrace)
		if reason == "lost" {
			return outcome{result: "lost"}
		}
		log.Warn("command killed", "reason", reason)
		return outcome{result: "timeout", errText: reason + tail.Suffix()}
	}
	// What is left of the group after the command exited is not waited for.
	werr := proc.Wait()
	if werr == nil {
		return outcome{ok: true, result: "ack"}
	}
	return outcome{result: "nack", errText: describeExit(proc.State(), werr) + tail.Suffix()}
}

func describeExit(ps *os.ProcessState, err error) string {
	if ps == nil {
		return "podkit worker: " + err.Error()
	}
	return child.Describe(ps, err)
}

// runHTTP POSTs the payload to the worker process.
func (w *Worker) runHTTP(h *container.Host, l client.Lease, timeout time.Duration, lost <-chan struct{}) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-h.DrainContext().Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.HTTP, bytes.NewReader(l.Payload))
	if err != nil {
		return outcome{result: "nack", errText: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Podkit-Item-Id", l.ID)
	req.Header.Set("Podkit-Attempt", strconv.Itoa(l.Attempt))
	req.Header.Set("Podkit-Queue", l.Queue)
	req.Header.Set("Podkit-Item-Deadline", l.Deadline.UTC().Format(time.RFC3339Nano))
	req.Header.Set("Podkit-Worker-Id", w.cfg.ID)
	resp, err := w.hc.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return outcome{result: "timeout", errText: fmt.Sprintf("podkit worker: no answer from %s within the item's timeout (%s)", container.RedactURL(w.cfg.HTTP), timeout)}
		}
		return outcome{result: "nack", errText: "podkit worker: " + err.Error()}
	}
	defer resp.Body.Close()
	tail := child.NewTail(w.cfg.StderrTail)
	io.Copy(tail, io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 == 2 {
		return outcome{ok: true, result: "ack"}
	}
	return outcome{result: "nack", errText: fmt.Sprintf("%s answered %s", container.RedactURL(w.cfg.HTTP), resp.Status) + tail.Suffix()}
}

func orWriter(w, def io.Writer) io.Writer {
	if w != nil {
		return w
	}
	return def
}
