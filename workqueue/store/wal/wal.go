// Package wal is the work queue's embedded durable store: pure Go, one
// directory, no server.
//
// Every change is a record appended to a write-ahead log. Records are
// framed with their length and a CRC-32C; concurrent changes are collected
// and written with one write and one fdatasync (group commit), and a
// change is acknowledged only after the fdatasync that covers it. The
// state lives in memory — the ready heap (priority, then time), the
// delayed heap, the leases with their deadlines, the idempotency keys —
// and is rebuilt from the log on start. When the current log segment
// grows past Options.SegmentSize, a snapshot of the state is written and
// the older segments are deleted, so the log does not grow forever.
//
// After a crash (kill -9, power loss) the end of the newest segment may
// hold a half-written batch: it is truncated with a log line, and nothing
// in it had been acknowledged. A damaged record anywhere else is a
// start-up error (CorruptError) naming the file and offset, never a silent
// loss. When a write or fdatasync fails (disk full, read-only file
// system), the batch's callers get store.ErrUnavailable, the state is
// rebuilt from what is on disk, and writes are refused for
// Options.RetryAfterFailure before they are tried again.
package wal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/podkit/podkit/workqueue/store"
)

// Options configure a Store.
type Options struct {
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// SegmentSize is the log size after which a snapshot is taken and a
	// new segment started (default 64 MiB).
	SegmentSize int64
	// BackoffBase and BackoffMax bound the retry delay after a failed
	// attempt: BackoffBase·2^(attempt-1), at most BackoffMax, with jitter
	// (defaults 1s and 10m).
	BackoffBase, BackoffMax time.Duration
	// DoneRetention is how long done and cancelled items (and their
	// idempotency keys) are kept (default 1h); KeepDone caps how many are
	// kept per queue (default 100000).
	DoneRetention time.Duration
	KeepDone      int
	// MaxQueues caps the number of queues (default 10000).
	MaxQueues int
	// RetryAfterFailure is how long writes are refused after a failed
	// write before they are tried again (default 1s).
	RetryAfterFailure time.Duration
	// Tick is how often delayed items and expired leases are checked
	// (default 10ms).
	Tick time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnCommit is called after every durable batch.
	OnCommit func(records, bytes int, d time.Duration)
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = 64 << 20
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Minute
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = o.BackoffBase
	}
	if o.DoneRetention <= 0 {
		o.DoneRetention = time.Hour
	}
	if o.KeepDone <= 0 {
		o.KeepDone = 100000
	}
	if o.MaxQueues <= 0 {
		o.MaxQueues = 10000
	}
	if o.RetryAfterFailure <= 0 {
		o.RetryAfterFailure = time.Second
	}
	if o.Tick <= 0 {
		o.Tick = 10 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the embedded store. Open it with Open (durable) or OpenMemory
// (tests only: nothing survives the process).
type Store struct {
	opts Options
	dir  string // "" for a memory store
	log  *slog.Logger
	now  func() time.Time

	mu        sync.Mutex
	st        *state
	wl        *segmentLog // nil for a memory store
	closed    bool
	downUntil time.Time
	downErr   error
	tornTails int
	// lastRebuild is when an internal inconsistency last asked for the
	// state to be rebuilt from the log.
	lastRebuild time.Time
	stale       uint64 // stale completions for items no longer known

	compactMu sync.Mutex // one compaction at a time
	// filesMu keeps a recovery's reload from reading the directory while a
	// compaction writes a snapshot or deletes segments. It is never held
	// while waiting for the committer (the committer runs recoveries).
	filesMu sync.Mutex
	stop    chan struct{}
	wg      sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the store in dir, replaying its log.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("wal: empty data directory")
	}
	s := newStore(dir, opts)
	s.wl = &segmentLog{dir: dir, log: s.log, onCommit: s.opts.OnCommit}
	s.wl.onFail = s.recover
	s.wl.onRebuild = s.rebuild
	start := time.Now()
	if err := s.load(); err != nil {
		var ro *readOnlyError
		if !errors.As(err, &ro) {
			return nil, err
		}
		s.log.Error("data dir is not writable: serving reads, refusing writes until it is", "dir", dir, "error", err,
			"retry_after", s.opts.RetryAfterFailure.String())
		s.downErr = err
		s.downUntil = s.now().Add(s.opts.RetryAfterFailure)
	}
	s.log.Info("queue store opened", "dir", dir, "items", len(s.st.items), "queues", len(s.st.queues),
		"segment", segName(s.wl.seq), "took", time.Since(start).Round(time.Millisecond).String())
	s.wl.start()
	s.startLoops()
	return s, nil
}

// OpenMemory returns a store that keeps everything in memory, for tests
// and demos: nothing survives the process.
func OpenMemory(opts Options) *Store {
	s := newStore("", opts)
	s.st = newState(s.now)
	s.startLoops()
	return s
}

func newStore(dir string, opts Options) *Store {
	opts.defaults()
	return &Store{
		opts: opts,
		dir:  dir,
		log:  opts.Logger,
		now:  opts.Now,
		stop: make(chan struct{}),
	}
}

func (s *Store) startLoops() {
	s.wg.Add(1)
	go s.tickLoop()
	if s.wl != nil {
		s.wg.Add(1)
		go s.compactLoop()
	}
}

// TornTails reports how many torn tails were truncated since Open.
func (s *Store) TornTails() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tornTails
}

// appendLocked applies r to the state and appends it to the log. When
// awaited, the caller waits for r to be durable and the committer starts
// at once; otherwise (leases, heartbeats, releases, expiries: changes that
// are answered before they are durable, and may revert after a crash) r
// goes with the next commit, at the latest at the next tick. That spares
// a write and an fdatasync per lease.
//
// Live records are built from the state they are applied to, so the state
// accepts them unless an internal invariant is broken (a bug). Then apply
// has changed nothing and r is not logged: the caller answers with the
// error (ErrUnavailable, so clients retry), and the committer rebuilds the
// state from the log, which is what every acknowledged change is in.
func (s *Store) appendLocked(r *record, awaited bool) (*batch, error) {
	if err := s.st.apply(r); err != nil {
		// At most one rebuild per RetryAfterFailure: when a rebuild does
		// not cure the inconsistency, rebuilding again at once would only
		// keep the store busy.
		rebuild := s.wl != nil && (s.lastRebuild.IsZero() || time.Since(s.lastRebuild) >= s.opts.RetryAfterFailure)
		s.log.Error("internal inconsistency: the state refused a change built from it; nothing was changed",
			"record", r.typ.String(), "item", r.id, "error", err, "rebuilding_from_log", rebuild)
		if rebuild {
			s.lastRebuild = time.Now()
			s.wl.requestRebuild()
		}
		return nil, fmt.Errorf("%w: internal inconsistency: %v (nothing was changed; retry)", store.ErrUnavailable, err)
	}
	if s.wl == nil {
		return doneBatch, nil
	}
	return s.wl.append(r, awaited), nil
}

func (s *Store) availableLocked() error {
	if s.closed {
		return fmt.Errorf("%w: store closed", store.ErrUnavailable)
	}
	if s.downErr != nil && s.now().Before(s.downUntil) {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, s.downErr)
	}
	return nil
}

func wait(ctx context.Context, b *batch) error {
	if b == nil {
		return nil
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, b.err)
	}
	return nil
}

// recover runs on the committer after a failed write: everything pending
// fails, the state is rebuilt from what is on disk, and writes are refused
// for RetryAfterFailure.
func (s *Store) recover(werr error) {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Error("log write failed; refusing writes and rebuilding the state from disk", "error", werr,
		"retry_after", s.opts.RetryAfterFailure.String())
	s.downErr = werr
	s.downUntil = s.now().Add(s.opts.RetryAfterFailure)
	s.reloadLocked(werr)
}

// errRebuilding fails the changes pending when the state is rebuilt after
// an internal inconsistency.
var errRebuilding = errors.New("the state is being rebuilt from the log after an internal inconsistency")

// rebuild runs on the committer after appendLocked met an internal
// inconsistency: everything pending fails (nothing of it was
// acknowledged), and the state is rebuilt from what is on disk. Writes go
// on at once.
func (s *Store) rebuild() {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	start := time.Now()
	s.reloadLocked(errRebuilding)
	if s.downErr == nil {
		s.log.Warn("state rebuilt from the log after an internal inconsistency", "items", len(s.st.items),
			"took", time.Since(start).Round(time.Millisecond).String())
	}
}

// reloadLocked fails everything pending with cause and replaces the state
// with the one on disk, keeping the counters and the waiting leases.
func (s *Store) reloadLocked(cause error) {
	s.wl.failPending(cause)
	if s.wl.f != nil {
		s.wl.f.Close()
		s.wl.f = nil
	}
	old := s.st
	var ro *readOnlyError
	if err := s.load(); errors.As(err, &ro) {
		s.downErr = err
	} else if err != nil {
		s.log.Error("rebuilding the state from disk failed; the store stays unavailable", "error", err)
		s.downUntil = s.now().Add(100 * 365 * 24 * time.Hour)
		s.downErr = fmt.Errorf("%v (and reloading failed: %v)", cause, err)
		return
	}
	// Carry the counters over; waiters stay registered.
	for name, q := range old.queues {
		nq := s.st.queue(name)
		nq.stats = q.stats
		nq.waiters = q.waiters
		s.wakeLocked(nq, nq.ready.Len())
	}
}

// Close flushes the log and stops the store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, q := range s.st.queues {
		s.wakeLocked(q, len(q.waiters))
	}
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if s.wl != nil {
		return s.wl.close()
	}
	return nil
}

// Enqueue implements store.Store.
func (s *Store) Enqueue(ctx context.Context, items []store.NewItem) ([]store.EnqueueResult, error) {
	res := make([]store.EnqueueResult, len(items))
	for i := range items {
		res[i].Err = validateNew(&items[i])
	}
	s.mu.Lock()
	if err := s.availableLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	now := s.now()
	var b *batch
	type wake struct {
		q *queue
		n int
	}
	var woken []wake // usually one queue: the API enqueues to one
	for i := range items {
		ni := &items[i]
		if res[i].Err != nil {
			continue
		}
		if ni.IdempotencyKey != "" {
			if id, ok := s.st.keys[keyOf(ni.Queue, ni.IdempotencyKey)]; ok {
				res[i] = store.EnqueueResult{ID: strconv.FormatUint(id, 10), Duplicate: true}
				continue
			}
		}
		q := s.st.queues[ni.Queue]
		if q == nil && len(s.st.queues) >= s.opts.MaxQueues {
			res[i].Err = fmt.Errorf("%w: too many queues (%d)", store.ErrInvalid, s.opts.MaxQueues)
			continue
		}
		id := s.st.nextID
		r := record{
			typ: recEnqueue, id: id, queue: ni.Queue, at: now, priority: ni.Priority,
			notBefore: ni.NotBefore, maxAttempts: ni.MaxAttempts, timeout: ni.Timeout,
			key: ni.IdempotencyKey, payload: ni.Payload,
		}
		nb, err := s.appendLocked(&r, true)
		if err != nil {
			res[i].Err = err
			continue
		}
		b = nb
		q = s.st.queues[ni.Queue]
		q.stats.Enqueued++
		if s.st.items[id].state == store.Ready {
			if k := len(woken) - 1; k >= 0 && woken[k].q == q {
				woken[k].n++
			} else {
				woken = append(woken, wake{q, 1})
			}
		}
		res[i].ID = strconv.FormatUint(id, 10)
	}
	for _, wk := range woken {
		s.wakeLocked(wk.q, wk.n)
	}
	s.mu.Unlock()
	if err := wait(ctx, b); err != nil {
		return nil, err
	}
	return res, nil
}

func validateNew(ni *store.NewItem) error {
	var errs []error
	if err := store.ValidQueueName(ni.Queue); err != nil {
		errs = append(errs, err)
	}
	if len(ni.Payload) == 0 {
		ni.Payload = json.RawMessage("null")
	} else if !json.Valid(ni.Payload) {
		errs = append(errs, fmt.Errorf("%w: payload is not valid JSON", store.ErrInvalid))
	}
	switch {
	case ni.MaxAttempts == 0:
		ni.MaxAttempts = store.DefaultMaxAttempts
	case ni.MaxAttempts < 0 || ni.MaxAttempts > 1000:
		errs = append(errs, fmt.Errorf("%w: max_attempts %d is not from 1 to 1000", store.ErrInvalid, ni.MaxAttempts))
	}
	switch {
	case ni.Timeout == 0:
		ni.Timeout = store.DefaultTimeout
	case ni.Timeout < time.Millisecond || ni.Timeout > 24*time.Hour:
		errs = append(errs, fmt.Errorf("%w: timeout %s is not from 1ms to 24h", store.ErrInvalid, ni.Timeout))
	}
	if len(ni.IdempotencyKey) > 1024 {
		errs = append(errs, fmt.Errorf("%w: idempotency_key is longer than 1024 bytes", store.ErrInvalid))
	}
	return errors.Join(errs...)
}

// wakeLocked wakes up to n waiters of q.
func (s *Store) wakeLocked(q *queue, n int) {
	for n > 0 && len(q.waiters) > 0 {
		w := q.waiters[0]
		q.waiters[0] = nil
		q.waiters = q.waiters[1:]
		select {
		case w.ch <- struct{}{}:
		default:
		}
		n--
	}
}

func (s *Store) removeWaiterLocked(q *queue, w *waiter) bool {
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// Lease implements store.Store.
func (s *Store) Lease(ctx context.Context, req store.LeaseRequest) ([]store.Lease, error) {
	if err := store.ValidQueueName(req.Queue); err != nil {
		return nil, err
	}
	if req.Max <= 0 {
		req.Max = 1
	}
	var timer *time.Timer
	var timeout <-chan time.Time
	w := &waiter{ch: make(chan struct{}, 1)}
	for {
		s.mu.Lock()
		if err := s.availableLocked(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		if ctx.Err() != nil {
			s.mu.Unlock()
			return nil, nil
		}
		q := s.st.queues[req.Queue]
		if q == nil {
			if len(s.st.queues) >= s.opts.MaxQueues {
				s.mu.Unlock()
				return nil, fmt.Errorf("%w: too many queues (%d)", store.ErrInvalid, s.opts.MaxQueues)
			}
			q = s.st.queue(req.Queue)
		}
		if q.ready.Len() > 0 {
			out, err := s.leaseLocked(q, req.Max)
			if q.ready.Len() > 0 && err == nil {
				s.wakeLocked(q, 1)
			}
			s.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			if len(out) == 0 {
				return nil, err
			}
			return out, nil
		}
		if req.Wait <= 0 {
			s.mu.Unlock()
			return nil, nil
		}
		q.waiters = append(q.waiters, w)
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(req.Wait)
			timeout = timer.C
		}
		select {
		case <-w.ch:
			continue
		case <-timeout:
		case <-ctx.Done():
		}
		s.mu.Lock()
		if !s.removeWaiterLocked(q, w) {
			// Woken as we gave up: pass the wake-up on.
			select {
			case <-w.ch:
			default:
			}
			s.wakeLocked(q, 1)
		}
		s.mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
		return nil, nil
	}
}

// leaseLocked leases up to max ready items of q. An error (an internal
// inconsistency) stops it; the leases made before it stand.
func (s *Store) leaseLocked(q *queue, max int) ([]store.Lease, error) {
	now := s.now()
	out := make([]store.Lease, 0, min(max, q.ready.Len()))
	for len(out) < max && q.ready.Len() > 0 {
		it := q.ready.top()
		since := it.notBefore
		r := record{
			typ: recLease, id: it.id, attempt: it.attempt + 1, tokenRand: rand.Uint64() | 1,
			deadline: now.Add(it.timeout), at: now,
		}
		if _, err := s.appendLocked(&r, false); err != nil {
			return out, err
		}
		out = append(out, store.Lease{
			ID: strconv.FormatUint(it.id, 10), Queue: q.name, Payload: json.RawMessage(it.payload),
			Attempt: it.attempt, Token: store.FormatToken(it.id, it.attempt, it.tokenRand),
			Deadline: it.deadline.UTC(), Timeout: it.timeout, ReadySince: since,
		})
	}
	return out, nil
}

// Complete implements store.Store.
func (s *Store) Complete(ctx context.Context, cs []store.Completion) ([]store.CompletionResult, error) {
	res := make([]store.CompletionResult, len(cs))
	s.mu.Lock()
	if err := s.availableLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	now := s.now()
	var b *batch
	for i, c := range cs {
		id, attempt, rnd, err := store.ParseToken(c.Token)
		if err != nil {
			res[i].Err = err
			continue
		}
		res[i].ID = strconv.FormatUint(id, 10)
		it := s.st.items[id]
		if it == nil {
			s.stale++
			res[i].Err = fmt.Errorf("%w: item %d is no longer known", store.ErrStaleLease, id)
			continue
		}
		if it.state != store.Leased || it.attempt != attempt || it.tokenRand != rnd {
			it.q.stats.Stale++
			res[i].State = it.state
			res[i].Err = fmt.Errorf("%w: item %d attempt %d is not leased by this token (item is %s, attempt %d)", store.ErrStaleLease, id, attempt, it.state, it.attempt)
			continue
		}
		if now.After(it.deadline) {
			if _, err := s.expireLocked(it, now); err != nil {
				res[i].Err = err
				continue
			}
			it.q.stats.Stale++
			res[i].State = it.state
			res[i].Err = fmt.Errorf("%w: the lease of item %d attempt %d expired at %s", store.ErrStaleLease, id, attempt, it.deadline.UTC().Format(time.RFC3339Nano))
			continue
		}
		q := it.q
		res[i].Queue = q.name
		res[i].Leased = it.updated
		var r record
		switch c.Op {
		case store.Heartbeat:
			r = record{typ: recHeartbeat, id: id, attempt: attempt, deadline: now.Add(it.timeout)}
		case store.Ack:
			r = record{typ: recAck, id: id, attempt: attempt, at: now}
		case store.Nack:
			nb := now.Add(c.RetryAfter)
			if c.RetryAfter <= 0 {
				nb = now.Add(s.backoff(it.attempt))
			}
			r = record{typ: recFail, id: id, attempt: attempt, at: now, kind: failNack, dead: it.attempt >= it.maxAttempts, notBefore: nb, errText: truncateErr(c.Error)}
		case store.Release:
			r = record{typ: recFail, id: id, attempt: attempt, at: now, kind: failRelease}
		default:
			res[i].Err = fmt.Errorf("%w: unknown operation %v", store.ErrInvalid, c.Op)
			continue
		}
		awaited := c.Op == store.Ack || c.Op == store.Nack
		nb, err := s.appendLocked(&r, awaited)
		if err != nil {
			res[i].Err = err
			continue
		}
		if awaited {
			b = nb // the batch of the last ack or nack covers the earlier ones
		}
		switch c.Op {
		case store.Heartbeat:
			res[i].Deadline = it.deadline.UTC()
		case store.Ack:
			q.stats.Acked++
		case store.Nack:
			dead := r.dead
			q.stats.Nacked++
			if dead {
				q.stats.DeadLettered++
			} else if it.state == store.Ready {
				s.wakeLocked(q, 1)
			}
		case store.Release:
			if it.state == store.Ready {
				s.wakeLocked(q, 1)
			}
		}
		res[i].State = it.state
	}
	s.mu.Unlock()
	if err := wait(ctx, b); err != nil { // acks and nacks are answered once durable
		return nil, err
	}
	return res, nil
}

func truncateErr(s string) string {
	const max = 8 << 10
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

// backoff is the retry delay after failed attempt n: base·2^(n-1) capped
// at max, then "equal jitter" (half fixed, half random).
func (s *Store) backoff(n int) time.Duration {
	d := s.opts.BackoffBase
	for i := 1; i < n && d < s.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.opts.BackoffMax)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// expireLocked ends a lease whose deadline passed.
func (s *Store) expireLocked(it *item, now time.Time) (*batch, error) {
	dead := it.attempt >= it.maxAttempts
	r := record{
		typ: recFail, id: it.id, attempt: it.attempt, at: now, kind: failExpired, dead: dead,
		notBefore: now.Add(s.backoff(it.attempt)),
		errText:   fmt.Sprintf("lease expired (no ack within %s)", it.timeout),
	}
	q := it.q
	b, err := s.appendLocked(&r, false)
	if err != nil {
		return nil, err
	}
	q.stats.Expired++
	if dead {
		q.stats.DeadLettered++
	}
	return b, nil
}

func (s *Store) tickLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.availableLocked() == nil {
			now := s.now()
			for _, q := range s.st.queues {
				n := 0
				for it := q.delayed.top(); it != nil && !it.notBefore.After(now); it = q.delayed.top() {
					s.st.setState(it, store.Ready)
					n++
				}
				for it := q.leased.top(); it != nil && now.After(it.deadline); it = q.leased.top() {
					if _, err := s.expireLocked(it, now); err != nil {
						break // logged; the next tick after the rebuild tries again
					}
					if it.state == store.Ready {
						n++
					}
				}
				s.wakeLocked(q, n)
			}
			if time.Since(lastSweep) >= time.Second {
				lastSweep = time.Now()
				s.sweepLocked(now)
			}
		}
		s.mu.Unlock()
		if s.wl != nil {
			s.wl.flush() // what no caller waits for: leases, heartbeats, expiries
		}
	}
}

// sweepLocked forgets finished items past retention.
func (s *Store) sweepLocked(now time.Time) {
	cutoff := now.Add(-s.opts.DoneRetention)
	for _, q := range s.st.queues {
		n := 0
		for n < len(q.finished) {
			it := q.finished[n]
			if s.st.items[it.id] != it || (it.state != store.Done && it.state != store.Cancelled) {
				n++ // already forgotten or moved on
				continue
			}
			if len(q.finished)-n <= s.opts.KeepDone && it.updated.After(cutoff) {
				break
			}
			s.st.forget(it)
			n++
		}
		if n > 0 {
			q.finished = append(q.finished[:0:0], q.finished[n:]...)
		}
	}
}

func (s *Store) compactLoop() {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.wl.size.Load() < s.opts.SegmentSize {
				continue
			}
		}
		if err := s.Compact(); err != nil {
			s.log.Warn("compaction failed; will retry", "error", err)
		}
	}
}

// Compact snapshots the state and deletes the log segments the snapshot
// covers. It runs on its own when the current segment passes
// Options.SegmentSize.
func (s *Store) Compact() error {
	if s.wl == nil {
		return nil
	}
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	s.mu.Lock()
	if err := s.availableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	recs := s.st.snapshotRecords()
	rot := s.wl.requestRotate()
	s.mu.Unlock()
	if rot == nil {
		return errors.New("a rotation is already pending")
	}
	<-rot.done
	if rot.err != nil {
		return rot.err
	}
	start := time.Now()
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	if err := writeSnapshot(s.dir, rot.seq, recs); err != nil {
		return fmt.Errorf("writing snapshot %s: %w", snapName(rot.seq), err)
	}
	if err := removeBefore(s.dir, rot.seq); err != nil {
		return err
	}
	s.log.Info("log compacted", "snapshot", snapName(rot.seq), "items", len(recs)-1, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, queue, id string) (store.Item, error) {
	n, err := store.ParseID(id)
	if err != nil {
		return store.Item{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.st.items[n]
	if it == nil || it.q.name != queue {
		return store.Item{}, fmt.Errorf("%w: no item %s in queue %q", store.ErrNotFound, id, queue)
	}
	return it.export(), nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, req store.ListRequest) (store.ListPage, error) {
	var after uint64
	if req.Cursor != "" {
		n, err := strconv.ParseUint(req.Cursor, 10, 64)
		if err != nil {
			return store.ListPage{}, fmt.Errorf("%w: cursor %q is not one this server returned", store.ErrInvalid, req.Cursor)
		}
		after = n
	}
	if req.Limit <= 0 {
		req.Limit = 100
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.st.queues[req.Queue]
	if q == nil {
		return store.ListPage{}, fmt.Errorf("%w: no queue %q", store.ErrNotFound, req.Queue)
	}
	i := sort.Search(len(q.ids), func(i int) bool { return q.ids[i] > after })
	var page store.ListPage
	for ; i < len(q.ids); i++ {
		it := s.st.items[q.ids[i]]
		if it == nil || it.q != q || (req.State != "" && it.state != req.State) {
			continue
		}
		page.Items = append(page.Items, it.export())
		if len(page.Items) == req.Limit {
			page.Next = strconv.FormatUint(it.id, 10)
			break
		}
	}
	return page, nil
}

// Cancel implements store.Store.
func (s *Store) Cancel(ctx context.Context, queue, id string) (store.Item, error) {
	n, err := store.ParseID(id)
	if err != nil {
		return store.Item{}, err
	}
	s.mu.Lock()
	if err := s.availableLocked(); err != nil {
		s.mu.Unlock()
		return store.Item{}, err
	}
	it := s.st.items[n]
	if it == nil || it.q.name != queue {
		s.mu.Unlock()
		return store.Item{}, fmt.Errorf("%w: no item %s in queue %q", store.ErrNotFound, id, queue)
	}
	var b *batch
	switch it.state {
	case store.Done:
		s.mu.Unlock()
		return it.export(), fmt.Errorf("%w: item %s is already done", store.ErrConflict, id)
	case store.Cancelled:
	default:
		r := record{typ: recCancel, id: n, at: s.now()}
		if b, err = s.appendLocked(&r, true); err != nil {
			s.mu.Unlock()
			return store.Item{}, err
		}
	}
	out := it.export()
	s.mu.Unlock()
	return out, wait(ctx, b)
}

// Replay implements store.Store.
func (s *Store) Replay(ctx context.Context, queue string, ids []string) ([]string, error) {
	s.mu.Lock()
	if err := s.availableLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	q := s.st.queues[queue]
	if q == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: no queue %q", store.ErrNotFound, queue)
	}
	var todo []*item
	if len(ids) == 0 {
		for _, id := range q.ids {
			if it := s.st.items[id]; it != nil && it.q == q && it.state == store.Dead {
				todo = append(todo, it)
			}
		}
	}
	for _, id := range ids {
		n, err := store.ParseID(id)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		it := s.st.items[n]
		if it == nil || it.q != q {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: no item %s in queue %q", store.ErrNotFound, id, queue)
		}
		if it.state != store.Dead {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: item %s is %s, not dead", store.ErrConflict, id, it.state)
		}
		todo = append(todo, it)
	}
	now := s.now()
	var b *batch
	var failed error
	out := make([]string, 0, len(todo))
	for _, it := range todo {
		if it.state != store.Dead {
			continue // listed twice
		}
		r := record{typ: recReplay, id: it.id, at: now}
		nb, err := s.appendLocked(&r, true)
		if err != nil {
			failed = err
			break
		}
		b = nb
		out = append(out, strconv.FormatUint(it.id, 10))
	}
	s.wakeLocked(q, len(out))
	s.mu.Unlock()
	if err := wait(ctx, b); err != nil {
		return nil, err
	}
	if failed != nil {
		// The ones before it are replayed (and durable); asking again
		// replays the rest.
		return out, failed
	}
	return out, nil
}

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context, queue string) (store.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.st.queues[queue]
	if q == nil {
		return store.Stats{}, fmt.Errorf("%w: no queue %q", store.ErrNotFound, queue)
	}
	st := q.stats
	st.Name = q.name
	st.Ready = q.counts[store.Ready]
	st.Delayed = q.counts[store.Delayed]
	st.Leased = q.counts[store.Leased]
	st.Done = q.counts[store.Done]
	st.Dead = q.counts[store.Dead]
	st.Cancelled = q.counts[store.Cancelled]
	for _, it := range q.ready.items {
		if st.OldestReady.IsZero() || it.notBefore.Before(st.OldestReady) {
			st.OldestReady = it.notBefore
		}
	}
	return st, nil
}

// Queues implements store.Store.
func (s *Store) Queues(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.st.queues))
	for name := range s.st.queues {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}
