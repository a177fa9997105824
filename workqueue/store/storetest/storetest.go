// Package storetest is the conformance suite every work-queue store
// backend passes: run it from the backend's tests with Run.
//
// The suite uses real time with short lease timeouts and backoffs, and
// waits with bounded polls; it never asserts how long anything took.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/workqueue/store"
)

// Config is what the suite needs from a backend's settings.
type Config struct {
	// BackoffBase and BackoffMax are the retry backoff; the suite sets
	// them small.
	BackoffBase, BackoffMax time.Duration
	// Now is the store's clock; nil means time.Now. A test that sets it
	// moves time itself, so what it checks does not depend on how fast
	// the machine runs.
	Now func() time.Time
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Backend opens stores for the suite.
type Backend struct {
	// Open returns a new, empty store, closed when t ends.
	Open func(t *testing.T, cfg Config) store.Store
	// Reopen closes s and opens the same store again (it must be
	// durable); nil for a backend that keeps nothing across a restart.
	Reopen func(t *testing.T, s store.Store) store.Store
}

var cfg = Config{BackoffBase: 20 * time.Millisecond, BackoffMax: 40 * time.Millisecond}

// Run runs the suite against b.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"EnqueueLeaseAck", testEnqueueLeaseAck},
		{"PriorityThenFIFO", testPriority},
		{"Delayed", testDelayed},
		{"Idempotency", testIdempotency},
		{"StaleTokenAfterExpiry", testStaleToken},
		{"NackRetryThenDead", testNackDead},
		{"ExpiryToDeadLetter", testExpiryDead},
		{"BadTokens", testBadTokens},
		{"LongPoll", testLongPoll},
		{"Cancel", testCancel},
		{"ListPages", testList},
		{"GetItem", testGet},
		{"Heartbeat", testHeartbeat},
		{"Release", testRelease},
		{"InvalidItems", testInvalid},
		{"ConcurrentWorkers", testConcurrent},
		{"ReplayAll", testReplayAll},
		{"Durable", testDurable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func payload(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func enqueue(t *testing.T, s store.Store, items ...store.NewItem) []string {
	t.Helper()
	res, err := s.Enqueue(ctx(t), items)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if len(res) != len(items) {
		t.Fatalf("Enqueue answered %d of %d items", len(res), len(items))
	}
	ids := make([]string, len(res))
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("Enqueue item %d: %v", i, r.Err)
		}
		ids[i] = r.ID
	}
	return ids
}

func lease(t *testing.T, s store.Store, q string, max int, wait time.Duration) []store.Lease {
	t.Helper()
	ls, err := s.Lease(ctx(t), store.LeaseRequest{Queue: q, Max: max, Wait: wait})
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return ls
}

func complete(t *testing.T, s store.Store, op store.Op, tokens ...string) []store.CompletionResult {
	t.Helper()
	cs := make([]store.Completion, len(tokens))
	for i, tok := range tokens {
		cs[i] = store.Completion{Token: tok, Op: op}
	}
	res, err := s.Complete(ctx(t), cs)
	if err != nil {
		t.Fatalf("Complete(%v): %v", op, err)
	}
	return res
}

func stats(t *testing.T, s store.Store, q string) store.Stats {
	t.Helper()
	st, err := s.Stats(ctx(t), q)
	if err != nil {
		t.Fatalf("Stats(%q): %v", q, err)
	}
	return st
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testEnqueueLeaseAck(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	ids := enqueue(t, s,
		store.NewItem{Queue: "q", Payload: payload(1)},
		store.NewItem{Queue: "q", Payload: payload(2)},
		store.NewItem{Queue: "q", Payload: payload(3)},
	)
	if st := stats(t, s, "q"); st.Ready != 3 || st.Enqueued != 3 {
		t.Fatalf("after enqueue: ready=%d enqueued=%d, want 3 and 3", st.Ready, st.Enqueued)
	}
	ls := lease(t, s, "q", 10, 0)
	if len(ls) != 3 {
		t.Fatalf("leased %d items, want 3", len(ls))
	}
	var toks []string
	for i, l := range ls {
		if l.ID != ids[i] || string(l.Payload) != strconv.Itoa(i+1) || l.Attempt != 1 {
			t.Errorf("lease %d = id %s payload %s attempt %d; want id %s payload %d attempt 1", i, l.ID, l.Payload, l.Attempt, ids[i], i+1)
		}
		if l.Deadline.IsZero() || l.Token == "" || l.Timeout != store.DefaultTimeout {
			t.Errorf("lease %d: deadline %v token %q timeout %v", i, l.Deadline, l.Token, l.Timeout)
		}
		toks = append(toks, l.Token)
	}
	if st := stats(t, s, "q"); st.Leased != 3 || st.Ready != 0 {
		t.Fatalf("after lease: leased=%d ready=%d", st.Leased, st.Ready)
	}
	for i, r := range complete(t, s, store.Ack, toks...) {
		if r.Err != nil || r.State != store.Done {
			t.Errorf("ack %d: state %s err %v", i, r.State, r.Err)
		}
	}
	st := stats(t, s, "q")
	if st.Done != 3 || st.Leased != 0 || st.Acked != 3 {
		t.Fatalf("after ack: done=%d leased=%d acked=%d", st.Done, st.Leased, st.Acked)
	}
	if ls := lease(t, s, "q", 1, 0); len(ls) != 0 {
		t.Fatalf("leased %d items from an empty queue", len(ls))
	}
}

func testPriority(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	enqueue(t, s,
		store.NewItem{Queue: "p", Payload: payload("low"), Priority: 1},
		store.NewItem{Queue: "p", Payload: payload("high"), Priority: 5},
		store.NewItem{Queue: "p", Payload: payload("mid-a"), Priority: 3},
		store.NewItem{Queue: "p", Payload: payload("mid-b"), Priority: 3},
		store.NewItem{Queue: "p", Payload: payload("neg"), Priority: -2},
	)
	var got []string
	for range 5 {
		ls := lease(t, s, "p", 1, 0)
		if len(ls) != 1 {
			t.Fatalf("leased %d", len(ls))
		}
		var v string
		json.Unmarshal(ls[0].Payload, &v)
		got = append(got, v)
	}
	want := []string{"high", "mid-a", "mid-b", "low", "neg"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lease order %v, want %v", got, want)
	}
}

func testDelayed(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	ids := enqueue(t, s,
		store.NewItem{Queue: "d", Payload: payload("later"), NotBefore: time.Now().Add(300 * time.Millisecond)},
		store.NewItem{Queue: "d", Payload: payload("past"), NotBefore: time.Now().Add(-time.Hour)},
	)
	if st := stats(t, s, "d"); st.Delayed != 1 || st.Ready != 1 {
		t.Fatalf("delayed=%d ready=%d, want 1 and 1", st.Delayed, st.Ready)
	}
	it, err := s.Get(ctx(t), "d", ids[0])
	if err != nil || it.State != store.Delayed || it.NotBefore.IsZero() {
		t.Fatalf("Get delayed item: %+v %v", it, err)
	}
	if ls := lease(t, s, "d", 5, 0); len(ls) != 1 || ls[0].ID != ids[1] {
		t.Fatalf("lease before the delay: %+v, want only %s", ls, ids[1])
	}
	ls := lease(t, s, "d", 5, 10*time.Second)
	if len(ls) != 1 || ls[0].ID != ids[0] {
		t.Fatalf("lease after the delay: %+v, want %s", ls, ids[0])
	}
}

func testIdempotency(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	res, err := s.Enqueue(ctx(t), []store.NewItem{
		{Queue: "i", Payload: payload(1), IdempotencyKey: "k1"},
		{Queue: "i", Payload: payload(2), IdempotencyKey: "k1"},
		{Queue: "j", Payload: payload(3), IdempotencyKey: "k1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].ID != res[0].ID {
		t.Fatalf("same key, same queue: %+v", res[:2])
	}
	if res[2].Duplicate || res[2].ID == res[0].ID {
		t.Fatalf("same key in another queue must be a new item: %+v", res[2])
	}
	res2, err := s.Enqueue(ctx(t), []store.NewItem{{Queue: "i", Payload: payload(9), IdempotencyKey: "k1"}})
	if err != nil || !res2[0].Duplicate || res2[0].ID != res[0].ID {
		t.Fatalf("repeat in a later call: %+v %v", res2, err)
	}
	if st := stats(t, s, "i"); st.Ready != 1 {
		t.Fatalf("ready=%d, want 1", st.Ready)
	}
}

func testStaleToken(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	enqueue(t, s, store.NewItem{Queue: "s", Payload: payload("x"), Timeout: 50 * time.Millisecond, MaxAttempts: 5})
	first := lease(t, s, "s", 1, 0)
	if len(first) != 1 {
		t.Fatal("no lease")
	}
	// The lease expires; the item comes back (after the backoff) and goes
	// to a second worker.
	second := lease(t, s, "s", 1, 10*time.Second)
	if len(second) != 1 || second[0].Attempt != 2 || second[0].ID != first[0].ID {
		t.Fatalf("second lease: %+v", second)
	}
	if st := stats(t, s, "s"); st.Expired < 1 {
		t.Fatalf("lease_expired_total=%d, want ≥1", st.Expired)
	}
	for _, op := range []store.Op{store.Heartbeat, store.Ack, store.Nack} {
		r := complete(t, s, op, first[0].Token)[0]
		if !errors.Is(r.Err, store.ErrStaleLease) {
			t.Fatalf("%v with the first (stale) token: %v, want ErrStaleLease", op, r.Err)
		}
	}
	// The second worker's lease is untouched by the stale attempts.
	if r := complete(t, s, store.Ack, second[0].Token)[0]; r.Err != nil {
		t.Fatalf("ack by the current holder: %v", r.Err)
	}
	if r := complete(t, s, store.Ack, second[0].Token)[0]; !errors.Is(r.Err, store.ErrStaleLease) {
		t.Fatalf("second ack with the same token: %v, want ErrStaleLease", r.Err)
	}
	if st := stats(t, s, "s"); st.Acked != 1 || st.Stale < 4 || st.Done != 1 {
		t.Fatalf("acked=%d stale=%d done=%d", st.Acked, st.Stale, st.Done)
	}
}

func testNackDead(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	ids := enqueue(t, s, store.NewItem{Queue: "n", Payload: payload("x"), MaxAttempts: 2})
	l := lease(t, s, "n", 1, 0)
	res, err := s.Complete(ctx(t), []store.Completion{{Token: l[0].Token, Op: store.Nack, Error: "boom 1"}})
	if err != nil || res[0].Err != nil || (res[0].State != store.Delayed && res[0].State != store.Ready) {
		t.Fatalf("first nack: %+v %v", res, err)
	}
	l = lease(t, s, "n", 1, 10*time.Second)
	if len(l) != 1 || l[0].Attempt != 2 {
		t.Fatalf("retry lease: %+v", l)
	}
	res, err = s.Complete(ctx(t), []store.Completion{{Token: l[0].Token, Op: store.Nack, Error: "boom 2"}})
	if err != nil || res[0].Err != nil || res[0].State != store.Dead {
		t.Fatalf("last nack: %+v %v, want dead", res, err)
	}
	it, err := s.Get(ctx(t), "n", ids[0])
	if err != nil || it.State != store.Dead || it.LastError != "boom 2" || it.Attempt != 2 {
		t.Fatalf("dead item: %+v %v", it, err)
	}
	st := stats(t, s, "n")
	if st.Dead != 1 || st.DeadLettered != 1 || st.Nacked != 2 {
		t.Fatalf("stats: dead=%d dead_lettered=%d nacked=%d", st.Dead, st.DeadLettered, st.Nacked)
	}
	// Replay: back to ready, attempts reset.
	got, err := s.Replay(ctx(t), "n", []string{ids[0]})
	if err != nil || len(got) != 1 {
		t.Fatalf("Replay: %v %v", got, err)
	}
	l = lease(t, s, "n", 1, 0)
	if len(l) != 1 || l[0].Attempt != 1 {
		t.Fatalf("lease after replay: %+v", l)
	}
	if _, err := s.Replay(ctx(t), "n", []string{ids[0]}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("replaying a leased item: %v, want ErrConflict", err)
	}
	// A nack with an explicit retry delay.
	res, err = s.Complete(ctx(t), []store.Completion{{Token: l[0].Token, Op: store.Nack, Error: "later", RetryAfter: time.Hour}})
	if err != nil || res[0].State != store.Delayed {
		t.Fatalf("nack with retry_after 1h: %+v %v, want delayed", res, err)
	}
}

func testExpiryDead(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	ids := enqueue(t, s, store.NewItem{Queue: "e", Payload: payload("x"), MaxAttempts: 1, Timeout: 30 * time.Millisecond})
	if l := lease(t, s, "e", 1, 0); len(l) != 1 {
		t.Fatal("no lease")
	}
	eventually(t, "the expired lease to dead-letter the item", func() bool {
		it, err := s.Get(ctx(t), "e", ids[0])
		return err == nil && it.State == store.Dead
	})
	if st := stats(t, s, "e"); st.Expired != 1 || st.DeadLettered != 1 {
		t.Fatalf("expired=%d dead_lettered=%d", st.Expired, st.DeadLettered)
	}
}

func testBadTokens(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	for _, tok := range []string{"", "x", "1.1", "1.1.zz", "0.1.0000000000000001", "1.0.0000000000000001", "1.1.00000000000000011", "-1.1.0000000000000001"} {
		r := complete(t, s, store.Ack, tok)[0]
		if !errors.Is(r.Err, store.ErrBadToken) {
			t.Errorf("token %q: %v, want ErrBadToken", tok, r.Err)
		}
	}
	r := complete(t, s, store.Ack, store.FormatToken(999999, 1, 42))[0]
	if !errors.Is(r.Err, store.ErrStaleLease) {
		t.Errorf("well-formed token of an unknown item: %v, want ErrStaleLease", r.Err)
	}
	enqueue(t, s, store.NewItem{Queue: "b", Payload: payload(1)})
	l := lease(t, s, "b", 1, 0)
	id, attempt, rnd, err := store.ParseToken(l[0].Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{store.FormatToken(id, attempt, rnd+1), store.FormatToken(id, attempt+1, rnd)} {
		if r := complete(t, s, store.Ack, forged)[0]; !errors.Is(r.Err, store.ErrStaleLease) {
			t.Errorf("forged token %q: %v, want ErrStaleLease", forged, r.Err)
		}
	}
	if r := complete(t, s, store.Ack, l[0].Token)[0]; r.Err != nil {
		t.Errorf("the real token after forgeries: %v", r.Err)
	}
}

func testLongPoll(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	if l := lease(t, s, "lp", 1, 50*time.Millisecond); len(l) != 0 {
		t.Fatalf("long poll on an empty queue returned %d items", len(l))
	}
	got := make(chan []store.Lease, 3)
	for range 3 {
		go func() {
			ls, _ := s.Lease(context.Background(), store.LeaseRequest{Queue: "lp", Max: 1, Wait: 10 * time.Second})
			got <- ls
		}()
	}
	time.Sleep(50 * time.Millisecond)
	enqueue(t, s, store.NewItem{Queue: "lp", Payload: payload(1)}, store.NewItem{Queue: "lp", Payload: payload(2)}, store.NewItem{Queue: "lp", Payload: payload(3)})
	seen := map[string]bool{}
	for range 3 {
		select {
		case ls := <-got:
			if len(ls) != 1 {
				t.Fatalf("a waiting lease returned %d items", len(ls))
			}
			seen[ls[0].ID] = true
		case <-time.After(10 * time.Second):
			t.Fatal("waiting leases were not woken")
		}
	}
	if len(seen) != 3 {
		t.Fatalf("3 waiters got %d distinct items", len(seen))
	}
	// A cancelled context ends the wait.
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Lease(c, store.LeaseRequest{Queue: "lp", Max: 1, Wait: time.Hour})
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Lease ignored its context")
	}
}

func testCancel(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	ids := enqueue(t, s, store.NewItem{Queue: "c", Payload: payload(1)}, store.NewItem{Queue: "c", Payload: payload(2)})
	it, err := s.Cancel(ctx(t), "c", ids[0])
	if err != nil || it.State != store.Cancelled {
		t.Fatalf("cancel ready item: %+v %v", it, err)
	}
	l := lease(t, s, "c", 5, 0)
	if len(l) != 1 || l[0].ID != ids[1] {
		t.Fatalf("lease after cancel: %+v", l)
	}
	if _, err := s.Cancel(ctx(t), "c", ids[1]); err != nil {
		t.Fatalf("cancel leased item: %v", err)
	}
	if r := complete(t, s, store.Ack, l[0].Token)[0]; !errors.Is(r.Err, store.ErrStaleLease) {
		t.Fatalf("ack of a cancelled item: %v, want ErrStaleLease", r.Err)
	}
	ids = enqueue(t, s, store.NewItem{Queue: "c", Payload: payload(3)})
	l = lease(t, s, "c", 1, 0)
	complete(t, s, store.Ack, l[0].Token)
	if _, err := s.Cancel(ctx(t), "c", ids[0]); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("cancel done item: %v, want ErrConflict", err)
	}
	if _, err := s.Cancel(ctx(t), "c", "12345678"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel unknown item: %v, want ErrNotFound", err)
	}
	if _, err := s.Cancel(ctx(t), "other", ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel through another queue: %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	var items []store.NewItem
	for i := range 25 {
		items = append(items, store.NewItem{Queue: "l", Payload: payload(i)})
	}
	ids := enqueue(t, s, items...)
	l := lease(t, s, "l", 5, 0)
	var cursor string
	var got []string
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		p, err := s.List(ctx(t), store.ListRequest{Queue: "l", Cursor: cursor, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			got = append(got, it.ID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("paged ids %v, want %v", got, ids)
	}
	p, err := s.List(ctx(t), store.ListRequest{Queue: "l", State: store.Leased, Limit: 100})
	if err != nil || len(p.Items) != len(l) || p.Next != "" {
		t.Fatalf("list leased: %d items next %q err %v, want %d", len(p.Items), p.Next, err, len(l))
	}
	if _, err := s.List(ctx(t), store.ListRequest{Queue: "nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("list unknown queue: %v", err)
	}
	if _, err := s.List(ctx(t), store.ListRequest{Queue: "l", Cursor: "x"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("list with a bad cursor: %v", err)
	}
}

func testGet(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	ids := enqueue(t, s, store.NewItem{Queue: "g", Payload: payload(map[string]int{"a": 1}), Priority: 7, MaxAttempts: 3, Timeout: time.Minute, IdempotencyKey: "key"})
	it, err := s.Get(ctx(t), "g", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if it.ID != ids[0] || it.Queue != "g" || it.State != store.Ready || string(it.Payload) != `{"a":1}` || it.Priority != 7 ||
		it.MaxAttempts != 3 || it.Timeout != time.Minute || it.IdempotencyKey != "key" || it.Created.IsZero() {
		t.Fatalf("Get: %+v", it)
	}
	for _, c := range []struct{ q, id string }{{"g", "999999"}, {"h", ids[0]}, {"g", "abc"}, {"g", "0"}} {
		if _, err := s.Get(ctx(t), c.q, c.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q, %q): %v, want ErrNotFound", c.q, c.id, err)
		}
	}
	if _, err := s.Stats(ctx(t), "never-used"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stats of an unknown queue: %v", err)
	}
	qs, err := s.Queues(ctx(t))
	if err != nil || !sort.StringsAreSorted(qs) || len(qs) == 0 {
		t.Errorf("Queues: %v %v", qs, err)
	}
}

func testHeartbeat(t *testing.T, b Backend) {
	clock := &fakeClock{now: time.Now()}
	c := cfg
	c.Now = clock.Now
	s := b.Open(t, c)
	enqueue(t, s, store.NewItem{Queue: "h", Payload: payload(1), Timeout: 300 * time.Millisecond})
	l := lease(t, s, "h", 1, 0)
	deadline := l[0].Deadline
	// Keep the lease alive well past its timeout: 200 ms of the store's
	// clock between heartbeats, 7 times (1.4 s, over four timeouts).
	for range 7 {
		clock.Add(200 * time.Millisecond)
		r := complete(t, s, store.Heartbeat, l[0].Token)[0]
		if r.Err != nil {
			t.Fatalf("heartbeat: %v", r.Err)
		}
		if !r.Deadline.After(deadline) {
			t.Fatalf("heartbeat deadline %v not after %v", r.Deadline, deadline)
		}
		deadline = r.Deadline
	}
	if r := complete(t, s, store.Ack, l[0].Token)[0]; r.Err != nil {
		t.Fatalf("ack after heartbeats: %v", r.Err)
	}
	if st := stats(t, s, "h"); st.Expired != 0 {
		t.Fatalf("a heartbeated lease expired")
	}
}

func testRelease(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	enqueue(t, s, store.NewItem{Queue: "r", Payload: payload(1), MaxAttempts: 1})
	l := lease(t, s, "r", 1, 0)
	if r := complete(t, s, store.Release, l[0].Token)[0]; r.Err != nil || r.State != store.Ready {
		t.Fatalf("release: %+v", r)
	}
	l = lease(t, s, "r", 1, 0)
	if len(l) != 1 || l[0].Attempt != 1 {
		t.Fatalf("lease after release: %+v (a release must not count as an attempt)", l)
	}
}

func testInvalid(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	res, err := s.Enqueue(ctx(t), []store.NewItem{
		{Queue: "ok", Payload: payload(1)},
		{Queue: "bad name!", Payload: payload(1)},
		{Queue: "ok", Payload: json.RawMessage(`{"a":`)},
		{Queue: "ok", Payload: payload(1), MaxAttempts: -1},
		{Queue: "ok", Payload: payload(1), Timeout: -time.Second},
		{Queue: "ok"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[5].Err != nil {
		t.Fatalf("valid items refused: %v %v", res[0].Err, res[5].Err)
	}
	for i := 1; i <= 4; i++ {
		if !errors.Is(res[i].Err, store.ErrInvalid) || res[i].ID != "" {
			t.Errorf("item %d: id %q err %v, want ErrInvalid", i, res[i].ID, res[i].Err)
		}
	}
	if st := stats(t, s, "ok"); st.Ready != 2 {
		t.Fatalf("ready=%d, want 2 (only the valid items)", st.Ready)
	}
	if _, err := s.Lease(ctx(t), store.LeaseRequest{Queue: "", Max: 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("lease with an empty queue name: %v", err)
	}
}

func testConcurrent(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	const n, workers = 2000, 8
	items := make([]store.NewItem, n)
	for i := range items {
		items[i] = store.NewItem{Queue: "cc", Payload: payload(i)}
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i += 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Enqueue(context.Background(), items[i:i+100]); err != nil {
				t.Error(err)
			}
		}()
	}
	var mu sync.Mutex
	acked := map[string]int{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ls, err := s.Lease(context.Background(), store.LeaseRequest{Queue: "cc", Max: 16, Wait: 200 * time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				if len(ls) == 0 {
					return
				}
				cs := make([]store.Completion, len(ls))
				for i, l := range ls {
					cs[i] = store.Completion{Token: l.Token, Op: store.Ack}
				}
				res, err := s.Complete(context.Background(), cs)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range res {
					if r.Err == nil {
						acked[r.ID]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(acked) != n {
		t.Fatalf("%d distinct items acked, want %d", len(acked), n)
	}
	for id, c := range acked {
		if c != 1 {
			t.Fatalf("item %s acked %d times", id, c)
		}
	}
}

func testReplayAll(t *testing.T, b Backend) {
	s := b.Open(t, cfg)
	enqueue(t, s, store.NewItem{Queue: "ra", Payload: payload(1), MaxAttempts: 1}, store.NewItem{Queue: "ra", Payload: payload(2), MaxAttempts: 1})
	for _, l := range lease(t, s, "ra", 2, 0) {
		if _, err := s.Complete(ctx(t), []store.Completion{{Token: l.Token, Op: store.Nack, Error: "no"}}); err != nil {
			t.Fatal(err)
		}
	}
	if st := stats(t, s, "ra"); st.Dead != 2 {
		t.Fatalf("dead=%d", st.Dead)
	}
	ids, err := s.Replay(ctx(t), "ra", nil)
	if err != nil || len(ids) != 2 {
		t.Fatalf("replay all: %v %v", ids, err)
	}
	if st := stats(t, s, "ra"); st.Dead != 0 || st.Ready != 2 {
		t.Fatalf("after replay: dead=%d ready=%d", st.Dead, st.Ready)
	}
}

func testDurable(t *testing.T, b Backend) {
	if b.Reopen == nil {
		t.Skip("backend keeps nothing across a restart")
	}
	s := b.Open(t, cfg)
	var items []store.NewItem
	for i := range 10 {
		items = append(items, store.NewItem{Queue: "dur", Payload: payload(i), Priority: int64(i % 3), IdempotencyKey: "k" + strconv.Itoa(i), MaxAttempts: 3})
	}
	ids := enqueue(t, s, items...)
	enqueue(t, s, store.NewItem{Queue: "dur", Payload: payload("later"), NotBefore: time.Now().Add(time.Hour)})
	ls := lease(t, s, "dur", 4, 0)
	complete(t, s, store.Ack, ls[0].Token)
	if _, err := s.Complete(ctx(t), []store.Completion{{Token: ls[1].Token, Op: store.Nack, Error: "e", RetryAfter: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx(t), "dur", ls[2].ID); err != nil {
		t.Fatal(err)
	}
	before := map[string]store.Item{}
	for _, id := range ids {
		it, err := s.Get(ctx(t), "dur", id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = it
	}

	s = b.Reopen(t, s)
	for _, id := range ids {
		it, err := s.Get(ctx(t), "dur", id)
		if err != nil {
			t.Fatalf("item %s lost across a restart: %v", id, err)
		}
		w := before[id]
		if it.State != w.State || it.Attempt != w.Attempt || string(it.Payload) != string(w.Payload) || it.Priority != w.Priority || it.LastError != w.LastError {
			t.Errorf("item %s after restart %+v, before %+v", id, it, w)
		}
	}
	st := stats(t, s, "dur")
	if st.Done != 1 || st.Cancelled != 1 || st.Leased != 1 || st.Delayed != 2 || st.Ready != 6 {
		t.Fatalf("after restart: %+v", st)
	}
	// The lease still held survives the restart: its holder can ack.
	if r := complete(t, s, store.Ack, ls[3].Token)[0]; r.Err != nil {
		t.Fatalf("ack of a lease taken before the restart: %v", r.Err)
	}
	// Idempotency keys survive, and new ids do not reuse old ones.
	res, err := s.Enqueue(ctx(t), []store.NewItem{{Queue: "dur", IdempotencyKey: "k0"}, {Queue: "dur"}})
	if err != nil || !res[0].Duplicate || res[0].ID != ids[0] {
		t.Fatalf("idempotency after restart: %+v %v", res, err)
	}
	if _, ok := before[res[1].ID]; ok || res[1].ID == "" {
		t.Fatalf("new item got id %s, already used", res[1].ID)
	}
}
