package raft

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/podkit/podkit/election/backend"
)

// stallGate holds every read on the connections accepted through it while
// a stall is on: to raft, the replica behind it has stopped running, as a
// CPU-starved process does.
type stallGate struct {
	mu      sync.Mutex
	release chan struct{} // non-nil during a stall, closed when it ends
}

func (g *stallGate) wait() {
	g.mu.Lock()
	ch := g.release
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (g *stallGate) begin() {
	g.mu.Lock()
	g.release = make(chan struct{})
	g.mu.Unlock()
}

func (g *stallGate) end() {
	g.mu.Lock()
	close(g.release)
	g.release = nil
	g.mu.Unlock()
}

type stallListener struct {
	net.Listener
	g *stallGate
}

func (l stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return stallConn{c, l.g}, nil
}

type stallConn struct {
	net.Conn
	g *stallGate
}

func (c stallConn) Read(p []byte) (int, error) {
	c.g.wait()
	n, err := c.Conn.Read(p)
	c.g.wait() // what arrived during a stall is seen after it
	return n, err
}

type observed struct {
	node int
	at   time.Time
	o    backend.Observation
}

// stalls runs three replicas with cfg's timings, stalls all of them
// together (the whole machine starved) n times for stall each, a second
// apart, and returns every observation after the first agreed leader.
func stalls(t *testing.T, cfg Config, n int, stall time.Duration) (first backend.Observation, leader int, obs []observed) {
	t.Helper()
	gate := &stallGate{}
	ids := []string{"a", "b", "c"}
	lns := make([]net.Listener, len(ids))
	peers := make([]Peer, len(ids))
	for i, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = stallListener{ln, gate}
		peers[i] = Peer{ID: id, Addr: ln.Addr().String()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ch := make(chan observed, 4096)
	for i, id := range ids {
		c := cfg
		c.Peers, c.Listener = peers, lns[i]
		b, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.Campaign(ctx, backend.Candidate{ID: id, Address: id + ":80"}, func(o backend.Observation) {
				select {
				case ch <- observed{i, time.Now(), o}:
				case <-ctx.Done():
				}
			})
			if err != nil {
				t.Errorf("%s: Campaign: %v", id, err)
			}
		}()
	}

	// Wait until the three agree on a leader.
	views := make([]backend.Observation, len(ids))
	timeout := time.After(time.Minute)
	for agreed := false; !agreed; {
		select {
		case ob := <-ch:
			views[ob.node] = ob.o
		case <-timeout:
			t.Fatalf("no agreed leader within a minute: %+v", views)
		}
		agreed = views[0].Leader != ""
		for _, v := range views {
			agreed = agreed && v.Leader == views[0].Leader && v.Epoch == views[0].Epoch
		}
	}
	first = views[0]
	for i, id := range ids {
		if id == first.Leader {
			leader = i
		}
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			select {
			case <-time.After(time.Second - stall):
			case <-ctx.Done():
				return
			}
			gate.begin()
			time.Sleep(stall)
			gate.end()
		}
	}()
	for {
		select {
		case ob := <-ch:
			obs = append(obs, ob)
		case <-done:
			return first, leader, obs
		}
	}
}

// TestRidesOutStalls: with the default timings, three replicas that stop
// running together for a quarter of a second, again and again (a machine
// starved of CPU), keep their leader: the same leader and epoch throughout,
// and the leader's claim never lapses between renewals. The same stalls
// make the old timings (200/200/100 ms) change leaders, which is what the
// defaults were changed for.
func TestRidesOutStalls(t *testing.T) {
	const n, stall = 12, 250 * time.Millisecond
	t.Run("defaults", func(t *testing.T) {
		first, leader, obs := stalls(t, DefaultConfig(), n, stall)
		expires := time.Time{}
		for _, ob := range obs {
			o := ob.o
			if o.Leader != first.Leader || o.Epoch != first.Epoch {
				t.Errorf("replica %d at %s: leader %q epoch %d; want %q epoch %d throughout", ob.node, ob.at.Format("15:04:05.000"), o.Leader, o.Epoch, first.Leader, first.Epoch)
			}
			if ob.node != leader || o.Leader == "" {
				continue
			}
			if !expires.IsZero() && ob.at.After(expires) {
				t.Errorf("the leader's claim lapsed at %s and was renewed only at %s", expires.Format("15:04:05.000"), ob.at.Format("15:04:05.000"))
			}
			expires = o.Expires
		}
	})
	t.Run("old timings change leaders", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		cfg.Logger = slog.New(slog.DiscardHandler) // raft's warnings about the stalls, expected here
		first, _, obs := stalls(t, cfg, n, stall)
		for _, ob := range obs {
			if ob.o.Leader != first.Leader || ob.o.Epoch != first.Epoch {
				return // the stalls are strong enough to matter
			}
		}
		t.Errorf("%d stalls of %s did not disturb the old timings either: the test shows nothing", n, stall)
	})
}
