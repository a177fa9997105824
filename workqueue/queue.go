// Package workqueue is podkit's work queue: a coordinator that queues work
// items durably and hands them to workers written in anything, over a
// small HTTP contract (lease, heartbeat, ack, nack), with retries,
// exponential backoff, dead letters, priorities, delays and batch forms.
//
// `podkit queue` runs the coordinator inside the container contract;
// `podkit queue stat|push|ls|replay --server URL` is the command line for
// people; `podkit worker` (package workqueue/worker) turns any program
// into a worker. The HTTP contract is in docs/queue.md.
//
// The coordinator keeps its state in a store.Store: the embedded durable
// store (package workqueue/store/wal) in --data-dir by default.
package workqueue

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/gctune"
	"github.com/podkit/podkit/workqueue/store"
	"github.com/podkit/podkit/workqueue/store/wal"
)

// Config configures the coordinator.
type Config struct {
	Listen          string        `json:"listen"`
	DataDir         string        `json:"data_dir"`
	MaxPayload      ByteSize      `json:"max_payload"`
	Queues          []string      `json:"queues"`
	StrictQueues    bool          `json:"strict_queues"`
	ExitWhenDrained bool          `json:"exit_when_drained"`
	Source          string        `json:"source"`
	SourceQueue     string        `json:"source_queue"`
	SourceInterval  time.Duration `json:"source_interval"`
	BackoffBase     time.Duration `json:"backoff_base"`
	BackoffMax      time.Duration `json:"backoff_max"`
	DoneRetention   time.Duration `json:"done_retention"`
	KeepDone        int           `json:"keep_done"`
	SegmentSize     ByteSize      `json:"segment_size"`
	// GCPercent and MemoryLimit tune the Go runtime's garbage collector
	// while Run runs (process-wide: a process has one collector); 0 means
	// GOGC and GOMEMLIMIT from the environment if set, else
	// DefaultGCPercent and 90% of the cgroup memory limit (see gc.go).
	GCPercent   int      `json:"gc_percent"`
	MemoryLimit ByteSize `json:"memory_limit"`
	// API secures the HTTP API: TLS, client certificates, bearer tokens
	// and the roles they grant (see Access), and the listen rule.
	API container.APISecurity `json:"api"`

	// Store, if set, is used instead of opening the embedded store in
	// DataDir (and is not closed by Run).
	Store store.Store `json:"-"`
	// Listener, if set, is the API's listener, used instead of listening
	// on Listen.
	Listener net.Listener `json:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:8080",
		MaxPayload:     1 << 20,
		SourceQueue:    "default",
		SourceInterval: 10 * time.Second,
		BackoffBase:    time.Second,
		BackoffMax:     10 * time.Minute,
		DoneRetention:  time.Hour,
		KeepDone:       100000,
		SegmentSize:    64 << 20,
	}
}

// RegisterFlags adds the coordinator's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "`address` of the queue's HTTP API (another than loopback needs --tls-cert, --token-file or --insecure-listen)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the durable store (required; a volume in a container)")
	fs.Var(&c.MaxPayload, "max-payload", "largest item payload: a `SIZE` such as 1MiB or 65536")
	fs.Var((*cli.StringList)(&c.Queues), "queue", "declare a queue `name` (repeatable); other names are created on first use unless --strict-queues")
	fs.BoolVar(&c.StrictQueues, "strict-queues", c.StrictQueues, "only the --queue names exist; others answer 404")
	fs.BoolVar(&c.ExitWhenDrained, "exit-when-drained", c.ExitWhenDrained, "exit 0 once items were queued and every queue is drained (ready, delayed and leased all 0): for finite batch Jobs")
	fs.StringVar(&c.Source, "source", c.Source, "poll this `URL` for {\"kind\":\"ItemList\",\"items\":[...]} and enqueue items not seen before, keyed by name")
	fs.StringVar(&c.SourceQueue, "source-queue", c.SourceQueue, "queue that --source items go to")
	fs.DurationVar(&c.SourceInterval, "source-interval", c.SourceInterval, "how often --source is polled")
	fs.DurationVar(&c.BackoffBase, "backoff-base", c.BackoffBase, "retry delay after a first failed attempt; doubles per attempt, with jitter")
	fs.DurationVar(&c.BackoffMax, "backoff-max", c.BackoffMax, "longest retry delay")
	fs.DurationVar(&c.DoneRetention, "done-retention", c.DoneRetention, "how long done and cancelled items (and their idempotency keys) are kept")
	fs.IntVar(&c.KeepDone, "keep-done", c.KeepDone, "most done and cancelled items kept per queue")
	fs.Var(&c.SegmentSize, "segment-size", "log `SIZE` (e.g. 64MiB) after which the store snapshots its state and starts a new segment")
	fs.Var(gctune.PercentFlag(&c.GCPercent), "gc-percent", gctune.PercentUsage(DefaultGCPercent))
	fs.Var(&c.MemoryLimit, "memory-limit", "soft memory limit of the Go runtime (as GOMEMLIMIT): a `SIZE` such as 512MiB; 0: GOMEMLIMIT if set, else 90% of the container's memory limit, if any")
	c.API.RegisterFlags(fs)
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	addr := "" // the listen rule applies to --listen, not to a given Listener
	if c.Listener == nil {
		if err := container.ValidateListenAddr(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen: %w", err))
		} else {
			addr = c.Listen
		}
	}
	if err := c.API.Validate("--listen", addr, Access()); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" && c.Store == nil {
		errs = append(errs, errors.New("--data-dir: required (the directory of the durable store)"))
	}
	if c.MaxPayload < 1 || c.MaxPayload > 256<<20 {
		errs = append(errs, fmt.Errorf("--max-payload: %s is not from 1 byte to 256MiB", c.MaxPayload))
	}
	for _, q := range c.Queues {
		if err := store.ValidQueueName(q); err != nil {
			errs = append(errs, fmt.Errorf("--queue: %s", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": ")))
		}
	}
	if c.StrictQueues && len(c.Queues) == 0 {
		errs = append(errs, errors.New("--strict-queues: needs at least one --queue"))
	}
	if c.Source != "" {
		if err := cli.CheckHTTPURL("source", c.Source); err != nil {
			errs = append(errs, err)
		}
		if err := store.ValidQueueName(c.SourceQueue); err != nil {
			errs = append(errs, fmt.Errorf("--source-queue: %q is not a valid queue name", c.SourceQueue))
		} else if c.StrictQueues && !slices.Contains(c.Queues, c.SourceQueue) {
			errs = append(errs, fmt.Errorf("--source-queue: %q is not a --queue (--strict-queues)", c.SourceQueue))
		}
		if c.SourceInterval <= 0 {
			errs = append(errs, fmt.Errorf("--source-interval: %s must be positive", c.SourceInterval))
		}
	}
	if c.BackoffBase <= 0 {
		errs = append(errs, fmt.Errorf("--backoff-base: %s must be positive", c.BackoffBase))
	}
	if c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("--backoff-max: %s is less than --backoff-base %s", c.BackoffMax, c.BackoffBase))
	}
	if c.DoneRetention <= 0 {
		errs = append(errs, fmt.Errorf("--done-retention: %s must be positive", c.DoneRetention))
	}
	if c.KeepDone < 1 {
		errs = append(errs, fmt.Errorf("--keep-done: %d must be at least 1", c.KeepDone))
	}
	if c.SegmentSize < 4<<10 {
		errs = append(errs, fmt.Errorf("--segment-size: %s is less than 4KiB", c.SegmentSize))
	}
	if err := gctune.CheckPercent(c.GCPercent); err != nil {
		errs = append(errs, fmt.Errorf("--gc-percent: %w", err))
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 16<<20 {
		errs = append(errs, fmt.Errorf("--memory-limit: %s is less than 16MiB", c.MemoryLimit))
	}
	return errors.Join(errs...)
}

// Coordinator is the `podkit queue` component.
type Coordinator struct {
	cfg     Config
	metrics *Metrics
	addr    container.BoundAddr // the API's, once Run listens
}

var (
	_ container.Component  = (*Coordinator)(nil)
	_ container.Configured = (*Coordinator)(nil)
)

// New validates cfg and returns a Coordinator.
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, metrics: NewMetrics()}, nil
}

// Name implements container.Component.
func (c *Coordinator) Name() string { return "queue" }

// EffectiveConfig implements container.Configured.
func (c *Coordinator) EffectiveConfig() any {
	cfg := c.cfg
	cfg.Source = container.RedactURL(cfg.Source)
	return cfg
}

// Addr returns the API's bound address, or nil before Run listens.
func (c *Coordinator) Addr() net.Addr { return c.addr.Addr() }

// Run implements container.Component.
func (c *Coordinator) Run(ctx context.Context, h *container.Host) error {
	log := h.Logger()
	gc := gctune.Resolve(c.cfg.GCPercent, int64(c.cfg.MemoryLimit), DefaultGCPercent, os.Getenv, "/sys/fs/cgroup")
	defer gc.Apply()()
	log.Info("garbage collector", "gc_percent", gcValue(gctune.FormatPercent(gc.Percent), gc.Percent != 0, "GOGC"), "from", gc.PercentFrom,
		"memory_limit", gcValue(ByteSize(gc.MemoryLimit).String(), gc.MemoryLimit > 0, "GOMEMLIMIT"), "limit_from", gc.LimitFrom)
	st := c.cfg.Store
	if st == nil {
		ws, err := wal.Open(c.cfg.DataDir, wal.Options{
			Logger:        log,
			SegmentSize:   int64(c.cfg.SegmentSize),
			BackoffBase:   c.cfg.BackoffBase,
			BackoffMax:    c.cfg.BackoffMax,
			DoneRetention: c.cfg.DoneRetention,
			KeepDone:      c.cfg.KeepDone,
			OnCommit:      c.metrics.OnCommit,
		})
		if err != nil {
			return fmt.Errorf("--data-dir %s: %w", c.cfg.DataDir, err)
		}
		defer ws.Close()
		st = ws
	}
	// A coordinator that cannot load its API's certificates and tokens
	// does not start.
	apiSec, err := container.OpenAPI(ctx, h, container.APIConfig{
		Flag: "--listen", Addr: c.cfg.Listen, Listener: c.cfg.Listener,
		Security: c.cfg.API, Access: Access(),
	})
	if err != nil {
		return err
	}
	defer apiSec.Listener().Close()
	stopping := make(chan struct{})
	api := NewHandler(st, HandlerOptions{
		MaxPayload:   int64(c.cfg.MaxPayload),
		Queues:       c.cfg.Queues,
		StrictQueues: c.cfg.StrictQueues,
		Paused:       h.Paused,
		PauseChanged: h.PauseChanged,
		Stopping:     stopping,
		Logger:       log,
		Metrics:      c.metrics,
	})
	if err := c.metrics.Register(h.Registerer(), api); err != nil {
		return err
	}
	h.AddCheck(container.Check{Name: "store", Period: 5 * time.Second, Ready: true, Func: func(ctx context.Context) error {
		_, err := st.Queues(ctx)
		return err
	}})
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go every(bg, time.Second, func() { api.sample(bg) })
	if c.cfg.Source != "" {
		src := &sourcePoller{url: c.cfg.Source, queue: c.cfg.SourceQueue, store: st, log: log, maxPayload: int64(c.cfg.MaxPayload), seen: map[string]bool{}}
		go every(bg, c.cfg.SourceInterval, func() { src.poll(bg) })
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var drainedErr chan error
	if c.cfg.ExitWhenDrained {
		drainedErr = make(chan error, 1)
		go c.watchDrained(bg, api, st, h, func() { drainedErr <- nil; cancelRun() })
	}
	go func() {
		<-runCtx.Done()
		close(stopping)
	}()
	log.Info("queue listening", "listen", apiSec.Addr().String(), "tls", c.cfg.API.TLS(), "data_dir", c.cfg.DataDir)
	c.addr.Set(apiSec.Listener())
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	err = apiSec.Serve(runCtx, srv)
	if drainedErr != nil {
		select {
		case <-drainedErr:
			log.Info("every queue is drained; exiting (--exit-when-drained)")
			return &container.ExitError{Code: 0}
		default:
		}
	}
	return err
}

// gcValue shows a collector setting for the log: v when set, else the
// runtime's own value from env.
func gcValue(v string, set bool, env string) string {
	if set {
		return v
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	return "unset"
}

// watchDrained calls done once items were queued and every queue is
// drained.
func (c *Coordinator) watchDrained(ctx context.Context, api *API, st store.Store, h *container.Host, done func()) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		names, err := api.allQueues(ctx)
		if err != nil {
			continue
		}
		seen, busy := false, false
		for _, q := range names {
			s, err := st.Stats(ctx, q)
			if err != nil {
				continue
			}
			if s.Ready+s.Delayed+s.Leased > 0 {
				busy = true
			}
			if s.Ready+s.Delayed+s.Leased+s.Done+s.Dead+s.Cancelled > 0 || s.Enqueued > 0 {
				seen = true
			}
		}
		if seen && !busy {
			done()
			return
		}
	}
}

func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	f()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// ByteSize is a size flag: a number of bytes with an optional unit (KiB,
// MiB, GiB, or KB, MB, GB).
type ByteSize int64

// String implements flag.Value.
func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return strconv.FormatInt(int64(b>>30), 10) + "GiB"
	case b >= 1<<20 && b%(1<<20) == 0:
		return strconv.FormatInt(int64(b>>20), 10) + "MiB"
	case b >= 1<<10 && b%(1<<10) == 0:
		return strconv.FormatInt(int64(b>>10), 10) + "KiB"
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set implements flag.Value.
func (b *ByteSize) Set(s string) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}}
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return fmt.Errorf("%q is not a size such as 1MiB, 512KiB or 65536", s)
	}
	*b = ByteSize(n * mult)
	return nil
}

// MarshalText shows the size in /info.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Command is the `podkit queue` subcommand: the coordinator, or, when the
// first argument is stat, push, ls or replay, the command line for people.
func Command() cli.Command {
	return container.FlagCommand("queue",
		"durable work queue coordinator with an HTTP API for workers in any language; also stat|push|ls|replay --server URL",
		"--data-dir DIR [--listen 127.0.0.1:8080] [--tls-cert FILE --tls-key FILE] [--token-file FILE] [flags]\n       podkit queue stat|push|ls|replay [--server URL] [flags] [args]   (see podkit queue <verb> --help)",
		DefaultConfig, New, container.Verbs(verbs()...))
}
