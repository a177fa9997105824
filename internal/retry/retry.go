// Package retry runs an operation again after it fails, waiting longer
// each time (exponential backoff), within a budget and a context; and
// sends an HTTP request the same way (Request), for the notify hooks and
// reloaders.
//
// A Policy's zero value is usable and means: first delay 200ms, doubled
// after every failure, at most 5s, no jitter, no limit on the number of
// attempts or on the time spent (so Do runs until the operation succeeds,
// returns a Permanent error, or the context ends). Every failure is
// retried unless the operation wraps it with Permanent; Request retries
// every refused status unless its Final says otherwise.
//
// The queue's item-retry schedule (workqueue/store/wal: BackoffBase·2^(n-1)
// with jitter, recorded as the item's not-before time) is not a retry
// loop: it is a documented, user-facing schedule kept with the item, and
// stays where it is defined.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Default delays of a zero Policy.
const (
	DefaultInitial = 200 * time.Millisecond
	DefaultMax     = 5 * time.Second
)

// Policy says how often and how long an operation is retried.
type Policy struct {
	// Initial is the delay after the first failure (0: DefaultInitial).
	Initial time.Duration
	// Max caps every delay (0: DefaultMax; below Initial: Initial).
	Max time.Duration
	// Multiplier is how much a delay grows after each failure (0 or less
	// than 1: 2). A Multiplier of 1 retries at a constant Initial delay.
	Multiplier float64
	// Jitter is the fraction of each delay that is random, from 0 (none,
	// the default) to 1: a delay d becomes a random duration in
	// [d·(1-Jitter), d], so replicas that failed together do not retry
	// together.
	Jitter float64
	// Attempts caps the number of attempts, the first included (0: no
	// cap).
	Attempts int
	// MaxElapsed caps the time from the first attempt to the start of the
	// last (0: no cap): a delay that would end past it is shortened, and
	// no attempt starts after it.
	MaxElapsed time.Duration
}

func (p Policy) initial() time.Duration {
	if p.Initial <= 0 {
		return DefaultInitial
	}
	return p.Initial
}

func (p Policy) max() time.Duration {
	m := p.Max
	if m <= 0 {
		m = DefaultMax
	}
	return max(m, p.initial())
}

// Delay returns the delay after the n-th failure in a row (n from 1):
// Initial·Multiplier^(n-1), at most Max, with the Policy's jitter.
func (p Policy) Delay(n int) time.Duration {
	mult := p.Multiplier
	if mult < 1 {
		mult = 2
	}
	limit := p.max()
	d := float64(p.initial())
	for i := 1; i < n && d < float64(limit); i++ {
		d *= mult
	}
	dd := min(time.Duration(d), limit)
	if j := min(p.Jitter, 1); j > 0 {
		spread := time.Duration(float64(dd) * j)
		dd -= time.Duration(rand.Int64N(int64(spread) + 1))
	}
	return dd
}

// Backoff hands out the delays of a Policy one failure at a time, for a
// loop that sleeps itself (a reconnect loop, a poller). It is not safe for
// concurrent use.
type Backoff struct {
	p        Policy
	failures int
	start    time.Time
}

// NewBackoff starts a Backoff; the budget's clock starts now.
func NewBackoff(p Policy) *Backoff {
	return &Backoff{p: p, start: time.Now()}
}

// Next records a failure and returns how long to wait before the next
// attempt, or false if the Policy's budget (Attempts, MaxElapsed) is
// spent.
func (b *Backoff) Next() (time.Duration, bool) {
	b.failures++
	if b.p.Attempts > 0 && b.failures >= b.p.Attempts {
		return 0, false
	}
	d := b.p.Delay(b.failures)
	if b.p.MaxElapsed > 0 {
		left := b.p.MaxElapsed - time.Since(b.start)
		if left <= 0 {
			return 0, false
		}
		d = min(d, left)
	}
	return d, true
}

// Failures reports the failures recorded since the start or the last
// Reset.
func (b *Backoff) Failures() int { return b.failures }

// Reset forgets the failures and restarts the budget's clock: call it
// after a success.
func (b *Backoff) Reset() {
	b.failures = 0
	b.start = time.Now()
}

// Sleep waits d, or until ctx ends (then it returns ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do calls op until it returns nil, returns an error wrapped with
// Permanent, the Policy's budget is spent, or ctx ends while Do waits.
// op is always called at least once; attempt counts from 1. Do returns the
// number of attempts made and op's last error (unwrapped from Permanent),
// or nil. When ctx ended during a wait, the error is op's last error too:
// the caller tells the cases apart with ctx.Err().
func Do(ctx context.Context, p Policy, op func(ctx context.Context, attempt int) error) (int, error) {
	b := NewBackoff(p)
	for attempt := 1; ; attempt++ {
		err := op(ctx, attempt)
		if err == nil {
			return attempt, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			if err == error(perm) {
				err = perm.err
			}
			return attempt, err
		}
		d, ok := b.Next()
		if !ok {
			return attempt, err
		}
		if Sleep(ctx, d) != nil {
			return attempt, err
		}
	}
}

// Permanent marks err as not worth retrying: Do returns it at once.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
