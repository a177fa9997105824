package wal

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/podkit/podkit/workqueue/store"
)

// item is one item in memory. It sits in at most one of its queue's heaps
// (ready, delayed or leased); heapIdx is its position there.
type item struct {
	id          uint64
	q           *queue
	state       store.State
	payload     []byte
	priority    int64
	attempt     int
	maxAttempts int
	timeout     time.Duration
	key         string
	created     time.Time
	updated     time.Time
	notBefore   time.Time // delayed: when it becomes ready; ready: its place in line
	deadline    time.Time // leased
	tokenRand   uint64
	lastErr     string
	heapIdx     int
}

func (it *item) export() store.Item {
	out := store.Item{
		ID:             strconv.FormatUint(it.id, 10),
		Queue:          it.q.name,
		State:          it.state,
		Payload:        json.RawMessage(it.payload),
		Priority:       it.priority,
		Attempt:        it.attempt,
		MaxAttempts:    it.maxAttempts,
		Timeout:        it.timeout,
		IdempotencyKey: it.key,
		Created:        it.created.UTC(),
		Updated:        it.updated.UTC(),
		LastError:      it.lastErr,
	}
	switch it.state {
	case store.Delayed:
		out.NotBefore = it.notBefore.UTC()
	case store.Leased:
		out.Deadline = it.deadline.UTC()
	}
	return out
}

// heap is a binary heap of items with index tracking.
type heap struct {
	items []*item
	less  func(a, b *item) bool
}

func (h *heap) Len() int { return len(h.items) }

func (h *heap) top() *item {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

func (h *heap) push(it *item) {
	it.heapIdx = len(h.items)
	h.items = append(h.items, it)
	h.up(it.heapIdx)
}

func (h *heap) remove(it *item) {
	i := it.heapIdx
	if i < 0 || i >= len(h.items) || h.items[i] != it {
		return
	}
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	h.items[last] = nil
	h.items = h.items[:last]
	it.heapIdx = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h *heap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].heapIdx = i
	h.items[j].heapIdx = j
}

func (h *heap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(h.items[j], h.items[i]) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h *heap) down(i0 int) bool {
	i, n := i0, len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h.less(h.items[r], h.items[l]) {
			j = r
		}
		if !h.less(h.items[j], h.items[i]) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

func readyLess(a, b *item) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if !a.notBefore.Equal(b.notBefore) {
		return a.notBefore.Before(b.notBefore)
	}
	return a.id < b.id
}

func delayedLess(a, b *item) bool {
	if !a.notBefore.Equal(b.notBefore) {
		return a.notBefore.Before(b.notBefore)
	}
	return a.id < b.id
}

func leasedLess(a, b *item) bool {
	if !a.deadline.Equal(b.deadline) {
		return a.deadline.Before(b.deadline)
	}
	return a.id < b.id
}

// waiter is a Lease call waiting for items.
type waiter struct {
	ch chan struct{}
}

// queue is one named queue.
type queue struct {
	name     string
	ready    heap
	delayed  heap
	leased   heap
	ids      []uint64 // retained items in id order; may hold forgotten ids until compacted
	finished []*item  // done and cancelled items, oldest first, for retention
	counts   map[store.State]int
	waiters  []*waiter
	stats    store.Stats // counters only
}

func newQueue(name string) *queue {
	return &queue{
		name:    name,
		ready:   heap{less: readyLess},
		delayed: heap{less: delayedLess},
		leased:  heap{less: leasedLess},
		counts:  map[store.State]int{},
	}
}

// state is the whole store in memory: the queues, the items, the
// idempotency keys. apply is the only way it changes, both live and when
// replaying the log, so the two can never disagree.
type state struct {
	queues map[string]*queue
	items  map[uint64]*item
	keys   map[string]uint64 // queue + "\x00" + idempotency key -> id
	nextID uint64
	now    func() time.Time
}

func newState(now func() time.Time) *state {
	return &state{
		queues: map[string]*queue{},
		items:  map[uint64]*item{},
		keys:   map[string]uint64{},
		nextID: 1,
		now:    now,
	}
}

func keyOf(q, key string) string { return q + "\x00" + key }

func (s *state) queue(name string) *queue {
	q := s.queues[name]
	if q == nil {
		q = newQueue(name)
		s.queues[name] = q
	}
	return q
}

// setState moves it to st, keeping counts and heaps in step.
func (s *state) setState(it *item, st store.State) {
	q := it.q
	switch it.state {
	case store.Ready:
		q.ready.remove(it)
	case store.Delayed:
		q.delayed.remove(it)
	case store.Leased:
		q.leased.remove(it)
	}
	if it.state != "" {
		q.counts[it.state]--
	}
	it.state = st
	q.counts[st]++
	switch st {
	case store.Ready:
		q.ready.push(it)
	case store.Delayed:
		q.delayed.push(it)
	case store.Leased:
		q.leased.push(it)
	case store.Done, store.Cancelled:
		q.finished = append(q.finished, it)
	}
}

// makeReady puts it in line at notBefore: ready when that has passed,
// delayed otherwise.
func (s *state) makeReady(it *item, notBefore time.Time, now time.Time) {
	it.notBefore = notBefore
	if notBefore.After(now) {
		s.setState(it, store.Delayed)
		return
	}
	s.setState(it, store.Ready)
}

// apply applies one record. Live operations build records that are valid
// by construction; during replay an error is corruption. A record that is
// refused changes nothing.
func (s *state) apply(r *record) error {
	now := s.now()
	if r.typ == recMeta {
		if r.nextID > s.nextID {
			s.nextID = r.nextID
		}
		return nil
	}
	if r.typ == recEnqueue || r.typ == recItem {
		if _, dup := s.items[r.id]; dup {
			return fmt.Errorf("item %d stored twice", r.id)
		}
		var st store.State
		if r.typ == recItem {
			var err error
			if st, err = stateFromByte(r.state); err != nil {
				return err
			}
		}
		q := s.queue(r.queue)
		it := &item{
			id: r.id, q: q, payload: r.payload, priority: r.priority,
			maxAttempts: r.maxAttempts, timeout: r.timeout, key: r.key,
			created: r.at, updated: r.at, heapIdx: -1,
		}
		s.items[r.id] = it
		if r.id >= s.nextID {
			s.nextID = r.id + 1
		}
		q.ids = append(q.ids, r.id)
		if len(q.ids) > 1 && q.ids[len(q.ids)-2] > r.id {
			sort.Slice(q.ids, func(i, j int) bool { return q.ids[i] < q.ids[j] })
		}
		if r.key != "" {
			s.keys[keyOf(r.queue, r.key)] = r.id
		}
		if r.typ == recEnqueue {
			nb := r.notBefore
			if nb.IsZero() {
				nb = r.at
			}
			s.makeReady(it, nb, now)
			return nil
		}
		it.created = r.created
		it.attempt = r.attempt
		it.tokenRand = r.tokenRand
		it.lastErr = r.errText
		it.deadline = r.deadline
		switch st {
		case store.Ready, store.Delayed:
			s.makeReady(it, r.notBefore, now)
		default:
			it.notBefore = r.notBefore
			s.setState(it, st)
		}
		return nil
	}
	it := s.items[r.id]
	if it == nil {
		// Records about items forgotten by retention (their snapshot dropped
		// them) are harmless.
		return nil
	}
	switch r.typ {
	case recLease:
		if it.state != store.Ready && it.state != store.Delayed {
			return fmt.Errorf("lease of item %d in state %s", r.id, it.state)
		}
		it.attempt = r.attempt
		it.tokenRand = r.tokenRand
		it.deadline = r.deadline
		it.updated = r.at
		s.setState(it, store.Leased)
	case recHeartbeat:
		if it.state == store.Leased && it.attempt == r.attempt {
			it.q.leased.remove(it)
			it.deadline = r.deadline
			it.q.leased.push(it)
		}
	case recAck:
		if it.state != store.Leased || it.attempt != r.attempt {
			return fmt.Errorf("ack of item %d attempt %d in state %s attempt %d", r.id, r.attempt, it.state, it.attempt)
		}
		it.updated = r.at
		it.tokenRand = 0
		s.setState(it, store.Done)
	case recFail:
		if it.state != store.Leased || it.attempt != r.attempt {
			return fmt.Errorf("failure of item %d attempt %d in state %s attempt %d", r.id, r.attempt, it.state, it.attempt)
		}
		it.updated = r.at
		it.tokenRand = 0
		if r.errText != "" || r.kind != failRelease {
			it.lastErr = r.errText
		}
		switch {
		case r.kind == failRelease:
			it.attempt--
			s.makeReady(it, it.notBefore, now)
		case r.dead:
			s.setState(it, store.Dead)
		default:
			s.makeReady(it, r.notBefore, now)
		}
	case recCancel:
		it.updated = r.at
		it.tokenRand = 0
		s.setState(it, store.Cancelled)
	case recReplay:
		if it.state != store.Dead {
			return fmt.Errorf("replay of item %d in state %s", r.id, it.state)
		}
		it.updated = r.at
		it.attempt = 0
		s.makeReady(it, r.at, now)
	default:
		return fmt.Errorf("unexpected record type %d", r.typ)
	}
	return nil
}

// forget drops a finished item from memory (retention).
func (s *state) forget(it *item) {
	q := it.q
	q.counts[it.state]--
	delete(s.items, it.id)
	if it.key != "" {
		k := keyOf(q.name, it.key)
		if s.keys[k] == it.id {
			delete(s.keys, k)
		}
	}
	if len(q.ids) > 64 && len(q.ids) > 2*q.live() {
		kept := q.ids[:0]
		for _, id := range q.ids {
			if x := s.items[id]; x != nil && x.q == q {
				kept = append(kept, id)
			}
		}
		q.ids = kept
	}
}

func (q *queue) live() int {
	n := 0
	for _, c := range q.counts {
		n += c
	}
	return n
}

var stateBytes = []store.State{store.Ready, store.Delayed, store.Leased, store.Done, store.Dead, store.Cancelled}

func stateByte(st store.State) byte {
	for i, s := range stateBytes {
		if s == st {
			return byte(i)
		}
	}
	return 255
}

func stateFromByte(b byte) (store.State, error) {
	if int(b) < len(stateBytes) {
		return stateBytes[b], nil
	}
	return "", fmt.Errorf("unknown item state %d", b)
}

// snapshotRecords returns the records that rebuild the state: a meta
// record and one item record per item, in id order.
func (s *state) snapshotRecords() []record {
	ids := make([]uint64, 0, len(s.items))
	for id := range s.items {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]record, 0, len(ids)+1)
	out = append(out, record{typ: recMeta, nextID: s.nextID, at: s.now()})
	for _, id := range ids {
		it := s.items[id]
		out = append(out, record{
			typ: recItem, id: it.id, queue: it.q.name, state: stateByte(it.state),
			created: it.created, at: it.updated, priority: it.priority,
			notBefore: it.notBefore, deadline: it.deadline, attempt: it.attempt,
			maxAttempts: it.maxAttempts, timeout: it.timeout, tokenRand: it.tokenRand,
			key: it.key, errText: it.lastErr, payload: it.payload,
		})
	}
	return out
}
