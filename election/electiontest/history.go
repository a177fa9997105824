// Package electiontest is the conformance suite every podkit elect backend
// passes (Run), and the history checker the fault tests use (History): it
// records every observation and every write a fenced resource accepted, and
// checks that no epoch was ever held by two replicas and that accepted
// epochs never went backwards.
package electiontest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Event is one observation by one replica.
type Event struct {
	Time   time.Time
	Node   string // the observing replica
	Leader string // who it believes leads ("" none)
	Self   bool   // it believes it leads
	Epoch  uint64
}

// Write is one write a fenced resource accepted.
type Write struct {
	Time  time.Time
	Node  string // the writer
	Epoch uint64
}

// History records a run's observations and accepted writes. Safe for
// concurrent use.
type History struct {
	mu     sync.Mutex
	events []Event
	writes []Write
}

// Observe records that node observed leader at epoch (self: node believes
// it leads).
func (h *History) Observe(node, leader string, epoch uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, Event{Time: time.Now(), Node: node, Leader: leader, Self: leader != "" && leader == node, Epoch: epoch})
}

// Accepted records a write the fenced resource accepted, in the order the
// resource accepted them (call it while the resource holds its fence).
func (h *History) Accepted(node string, epoch uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, Write{Time: time.Now(), Node: node, Epoch: epoch})
}

// Events returns a copy of the observations.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// Writes returns a copy of the accepted writes.
func (h *History) Writes() []Write {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Write(nil), h.writes...)
}

// Leaders returns the epochs in which some replica believed it led, with
// that replica, in increasing epoch order.
func (h *History) Leaders() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	byEpoch := map[uint64]Event{}
	for _, e := range h.events {
		if e.Self {
			if _, ok := byEpoch[e.Epoch]; !ok {
				byEpoch[e.Epoch] = e
			}
		}
	}
	out := make([]Event, 0, len(byEpoch))
	for _, e := range byEpoch {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Epoch < out[j].Epoch })
	return out
}

// Check verifies the safety properties:
//   - no epoch is claimed (Self) by two replicas, nor observed with two
//     different leaders;
//   - a replica that leads has an epoch greater than 0;
//   - accepted writes' epochs never go backwards, and each epoch's writes
//     come from the one replica that held it.
func (h *History) Check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	holder := map[uint64]string{}
	for _, e := range h.events {
		if e.Leader == "" {
			continue
		}
		if e.Epoch == 0 {
			errs = append(errs, fmt.Errorf("%s: %s observed leader %s with epoch 0", e.Time.Format(time.StampMilli), e.Node, e.Leader))
			continue
		}
		if prev, ok := holder[e.Epoch]; ok && prev != e.Leader {
			errs = append(errs, fmt.Errorf("%s: epoch %d held by two replicas: %s and %s (observed by %s)", e.Time.Format(time.StampMilli), e.Epoch, prev, e.Leader, e.Node))
			continue
		}
		holder[e.Epoch] = e.Leader
	}
	var last uint64
	for i, w := range h.writes {
		if w.Epoch < last {
			errs = append(errs, fmt.Errorf("write %d by %s: accepted epoch %d after epoch %d", i, w.Node, w.Epoch, last))
		}
		last = max(last, w.Epoch)
		if who, ok := holder[w.Epoch]; ok && who != w.Node {
			errs = append(errs, fmt.Errorf("write %d: epoch %d belongs to %s but %s wrote with it", i, w.Epoch, who, w.Node))
		}
	}
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Errorf("... and %d more", len(errs)-10))
	}
	return errors.Join(errs...)
}

// String summarizes the history: each leader and its writes.
func (h *History) String() string {
	var b strings.Builder
	for _, l := range h.Leaders() {
		n := 0
		for _, w := range h.Writes() {
			if w.Epoch == l.Epoch {
				n++
			}
		}
		fmt.Fprintf(&b, "epoch %d: %s (%d writes)\n", l.Epoch, l.Node, n)
	}
	return b.String()
}
