package electiontest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/election/backend"
)

// Factory returns one backend per id, all in one fresh election. The
// backends are started by the suite with Campaign; the factory registers
// any cleanup of shared servers with t.Cleanup.
type Factory func(t *testing.T, ids []string) []backend.Backend

// Timeout bounds each wait of the suite.
var Timeout = 30 * time.Second

// Node is one campaigning candidate in a suite run.
type Node struct {
	ID      string
	Address string
	Backend backend.Backend

	hist   *History
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	last    backend.Observation
	changed chan struct{}
}

// Start campaigns with b as id until the test ends or Stop, recording every
// observation in hist.
func Start(t *testing.T, hist *History, id string, b backend.Backend) *Node {
	t.Helper()
	n := &Node{ID: id, Address: "app-" + id + ":8080", Backend: b, hist: hist, done: make(chan error, 1), changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		n.done <- b.Campaign(ctx, backend.Candidate{ID: id, Address: n.Address}, n.observe)
	}()
	t.Cleanup(func() { n.Stop(t) })
	return n
}

func (n *Node) observe(o backend.Observation) {
	if o.Err != nil {
		o = backend.Observation{Err: o.Err}
	}
	if o.Leader == n.ID && !o.Expires.IsZero() && time.Now().After(o.Expires) {
		o = backend.Observation{}
	}
	n.mu.Lock()
	prev := n.last
	n.last = o
	if prev.Leader != o.Leader || prev.Epoch != o.Epoch || prev.Address != o.Address {
		close(n.changed)
		n.changed = make(chan struct{})
		n.hist.Observe(n.ID, o.Leader, o.Epoch)
	}
	n.mu.Unlock()
}

// Last returns the latest observation.
func (n *Node) Last() backend.Observation {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last
}

// Stop ends the campaign (releasing leadership) and waits for Campaign to
// return; it fails the test if Campaign returned an error or hangs.
func (n *Node) Stop(t *testing.T) {
	t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("%s: Campaign returned %v after its context ended", n.ID, err)
		}
	case <-time.After(Timeout):
		t.Errorf("%s: Campaign did not return %s after its context ended", n.ID, Timeout)
	}
}

// Agree waits until every node in nodes observes the same leader, one of
// nodes, at an epoch above minEpoch, with that leader's address, and
// returns the leader and epoch.
func Agree(t *testing.T, nodes []*Node, minEpoch uint64) (*Node, uint64) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		leader, epoch, why := agreement(nodes, minEpoch)
		if why == "" {
			return leader, epoch
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agreement on a leader within %s: %s", Timeout, why)
			return nil, 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func agreement(nodes []*Node, minEpoch uint64) (*Node, uint64, string) {
	first := nodes[0].Last()
	var leader *Node
	for _, n := range nodes {
		o := n.Last()
		switch {
		case o.Err != nil:
			return nil, 0, fmt.Sprintf("%s: backend error: %v", n.ID, o.Err)
		case o.Leader == "":
			return nil, 0, n.ID + " knows no leader"
		case o.Leader != first.Leader || o.Epoch != first.Epoch:
			return nil, 0, fmt.Sprintf("%s sees %s@%d, %s sees %s@%d", nodes[0].ID, first.Leader, first.Epoch, n.ID, o.Leader, o.Epoch)
		case o.Epoch <= minEpoch:
			return nil, 0, fmt.Sprintf("%s sees epoch %d, want above %d", n.ID, o.Epoch, minEpoch)
		}
		if n.ID == o.Leader {
			leader = n
		}
	}
	if leader == nil {
		return nil, 0, fmt.Sprintf("leader %s is not among the running nodes", first.Leader)
	}
	if first.Address != leader.Address {
		return nil, 0, fmt.Sprintf("leader %s observed with address %q, want %q", leader.ID, first.Address, leader.Address)
	}
	return leader, first.Epoch, ""
}

// Run is the conformance suite: every backend passes it.
func Run(t *testing.T, newBackends Factory) {
	ids := []string{"n1", "n2", "n3"}
	hist := &History{}
	bs := newBackends(t, ids)
	if len(bs) != len(ids) {
		t.Fatalf("factory returned %d backends for %d ids", len(bs), len(ids))
	}
	nodes := make([]*Node, len(ids))
	for i, id := range ids {
		nodes[i] = Start(t, hist, id, bs[i])
	}
	defer func() {
		if err := hist.Check(); err != nil {
			t.Errorf("history:\n%v\n%s", err, hist)
		}
	}()

	var leader *Node
	var epoch uint64
	if !t.Run("OneLeader", func(t *testing.T) {
		leader, epoch = Agree(t, nodes, 0)
		for _, n := range nodes {
			if o := n.Last(); (o.Leader == n.ID) != (n == leader) {
				t.Errorf("%s observes leader %s", n.ID, o.Leader)
			}
		}
	}) {
		return
	}

	t.Run("ResignNotLeader", func(t *testing.T) {
		for _, n := range nodes {
			if n == leader || n.Last().Leader == n.ID {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), Timeout)
			err := n.Backend.Resign(ctx)
			cancel()
			if !errors.Is(err, backend.ErrNotLeader) {
				t.Errorf("%s (not the leader): Resign = %v, want ErrNotLeader", n.ID, err)
			}
		}
	})

	if !t.Run("Resign", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		// Leadership may move by itself between Agree and Resign on a
		// loaded machine: then agree again and resign the new leader.
		for attempt := 1; ; attempt++ {
			err := leader.Backend.Resign(ctx)
			if err == nil {
				break
			}
			if !errors.Is(err, backend.ErrNotLeader) || attempt == 3 {
				t.Fatalf("%s: Resign: %v", leader.ID, err)
			}
			leader, epoch = Agree(t, nodes, epoch)
		}
		old, oldEpoch := leader, epoch
		leader, epoch = Agree(t, nodes, oldEpoch)
		if leader == old {
			t.Errorf("%s resigned at epoch %d and leads again at %d with no one in between", old.ID, oldEpoch, epoch)
		}
	}) {
		return
	}

	t.Run("StopReleases", func(t *testing.T) {
		leader.Stop(t)
		var rest []*Node
		for _, n := range nodes {
			if n != leader {
				rest = append(rest, n)
			}
		}
		old := epoch
		_, epoch = Agree(t, rest, old)
	})
}
