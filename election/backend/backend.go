// Package backend defines what an election backend implements for podkit
// elect: campaign for leadership as a candidate, report every observation of
// who leads (with the epoch that fences it), and resign on request. The
// backends (election/raft, election/etcd, election/kube) import only this
// package; package election consumes them.
package backend

import (
	"context"
	"errors"
	"time"
)

// Candidate is the replica that campaigns.
type Candidate struct {
	// ID names the replica; unique among the candidates of one election.
	ID string
	// Address is where the other replicas reach this replica's application
	// (--advertise); reported as the leader's address while it leads.
	Address string
}

// Observation is what a backend knows of the leadership at one moment.
type Observation struct {
	// Leader is the leader's ID; "" while no leader is known.
	Leader string `json:"leader"`
	// Address is the leader's advertised address ("" if it gave none).
	Address string `json:"address"`
	// Epoch is the leadership's fencing token: strictly greater for every
	// new leader than for every earlier one (raft term, etcd leader-key
	// creation revision, Lease transitions). 0 while no leader is known.
	Epoch uint64 `json:"epoch"`
	// Expires is when this leadership lapses unless renewed, as far as the
	// observer knows; zero when unknown. A replica that observes itself as
	// leader must not act as leader after Expires.
	Expires time.Time `json:"expires"`
	// Err, when set, says why the backend could not observe: the leader is
	// then unknown (Leader is "").
	Err error `json:"-"`
}

// Backend elects one leader among candidates.
type Backend interface {
	// Campaign campaigns for leadership as c until ctx ends, calling observe
	// (from one goroutine at a time) whenever what it observes changes, and
	// at least whenever Expires is renewed. It retries a backend it cannot
	// reach, with backoff, reporting each failure as an Observation with
	// Err set; it never reports c as leader without holding leadership.
	// When ctx ends it releases leadership if it holds it, and returns nil;
	// it returns an error only when it cannot run at all.
	Campaign(ctx context.Context, c Candidate, observe func(Observation)) error
	// Resign hands leadership over to another candidate now, if this
	// replica holds it; this replica keeps campaigning. ErrNotLeader if it
	// does not lead.
	Resign(ctx context.Context) error
}

// ErrNotLeader is returned by Resign when this replica does not lead.
var ErrNotLeader = errors.New("not the leader")
