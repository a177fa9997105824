package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// clock is a coarse Unix time in seconds for the request path, where
// time.Now can cost more than the rest of a pick (it is a system call on
// some virtual machines). One goroutine per process refreshes it every
// 100ms from the first pool made on.
var clock struct {
	once sync.Once
	sec  atomic.Int64
}

func nowSec() int64 {
	clock.once.Do(func() {
		clock.sec.Store(time.Now().Unix())
		go func() {
			for range time.Tick(100 * time.Millisecond) {
				clock.sec.Store(time.Now().Unix())
			}
		}()
	})
	return clock.sec.Load()
}

// window counts requests and retries in ten one-second buckets. Counts that
// land on a bucket while it is being recycled may be lost: the budget is an
// approximation by design, and never blocks.
type window struct {
	b [10]bucket
}

type bucket struct {
	sec      atomic.Int64
	requests atomic.Int64
	retries  atomic.Int64
}

func (w *window) at(sec int64) *bucket {
	b := &w.b[sec%int64(len(w.b))]
	if old := b.sec.Load(); old != sec && b.sec.CompareAndSwap(old, sec) {
		b.requests.Store(0)
		b.retries.Store(0)
	}
	return b
}

func (w *window) request() { w.at(nowSec()).requests.Add(1) }

func (w *window) sums(now int64) (requests, retries int64) {
	for i := range w.b {
		b := &w.b[i]
		if s := b.sec.Load(); s > now-int64(len(w.b)) && s <= now {
			requests += b.requests.Load()
			retries += b.retries.Load()
		}
	}
	return requests, retries
}

func (w *window) allowRetry(budget float64, minRetries int) bool {
	now := nowSec()
	requests, retries := w.sums(now)
	if retries < int64(minRetries) || (budget > 0 && float64(retries+1) <= budget*float64(requests)) {
		w.at(now).retries.Add(1)
		return true
	}
	return false
}
