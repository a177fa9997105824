package upstream

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/podkit/podkit/discovery"
)

// Endpoint is one address of a pool, with its state. The pool keeps one
// Endpoint per address for as long as discovery lists it.
type Endpoint struct {
	addr string
	info atomic.Pointer[discovery.Endpoint]

	inFlight atomic.Int64
	picked   atomic.Uint64
	failures atomic.Int64 // consecutive failures (outlier detection)
	ejected  atomic.Bool
	healthy  atomic.Bool
	removed  atomic.Bool

	// guarded by Pool.mu
	ejectedUntil time.Time
	ejections    int // total
	streak       int // ejections counting toward the next period
	lastReturn   time.Time
	ejectTimer   *time.Timer
	passes       int // in a row
	fails        int // in a row
	lastCheckErr string
	stopCheck    context.CancelFunc
}

// Addr is the endpoint's HOST:PORT, for dialing.
func (e *Endpoint) Addr() string { return e.addr }

// Info is what discovery last said of the endpoint.
func (e *Endpoint) Info() discovery.Endpoint { return *e.info.Load() }

// String is the endpoint's address.
func (e *Endpoint) String() string { return e.addr }

func (e *Endpoint) weight() int64 {
	if w := e.info.Load().Weight; w > 0 {
		return int64(w)
	}
	return 1
}

// EndpointStatus is one endpoint's state, for GET /endpoints.
type EndpointStatus struct {
	Address  string `json:"address"`
	Name     string `json:"name,omitempty"`
	Zone     string `json:"zone,omitempty"`
	Weight   int    `json:"weight"`
	Priority int    `json:"priority"`
	// Ready, Serving and Terminating are discovery's conditions.
	Ready       bool `json:"ready"`
	Serving     bool `json:"serving"`
	Terminating bool `json:"terminating"`
	// Routable is whether discovery lets the endpoint take new traffic.
	Routable bool `json:"routable"`
	// Health is "healthy", "unhealthy" or "unchecked" (no active checks).
	Health         string `json:"health"`
	LastCheckError string `json:"last_check_error,omitempty"`
	// Ejected is whether outlier detection holds the endpoint out, until
	// EjectedUntil; Ejections counts every ejection so far.
	Ejected             bool      `json:"ejected"`
	EjectedUntil        time.Time `json:"ejected_until,omitzero"`
	Ejections           int       `json:"ejections"`
	ConsecutiveFailures int64     `json:"consecutive_failures"`
	// InFlight is the connections and requests open on it now; Requests
	// the acquisitions that picked it so far.
	InFlight int64  `json:"in_flight"`
	Requests uint64 `json:"requests"`
	// Usable is whether Acquire may pick it now (in some group or zone).
	Usable bool `json:"usable"`
}

// Snapshot is the state of every discovered endpoint, sorted by address.
func (p *Pool) Snapshot() []EndpointStatus {
	s := p.snap.Load()
	usable := make(map[*Endpoint]bool, len(s.usable))
	for _, e := range s.usable {
		usable[e] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	routable := map[string]bool{}
	for _, d := range p.set.Routable() {
		routable[d.Addr()] = true
	}
	out := make([]EndpointStatus, 0, len(p.eps))
	for addr, e := range p.eps {
		d := e.Info()
		st := EndpointStatus{
			Address: addr, Name: d.Name, Zone: d.Zone, Weight: d.Weight, Priority: d.Priority,
			Ready: d.Ready, Serving: d.Serving, Terminating: d.Terminating,
			Routable:            routable[addr],
			Health:              "unchecked",
			LastCheckError:      e.lastCheckErr,
			Ejected:             e.ejected.Load(),
			Ejections:           e.ejections,
			ConsecutiveFailures: e.failures.Load(),
			InFlight:            e.inFlight.Load(),
			Requests:            e.picked.Load(),
			Usable:              usable[e],
		}
		if st.Ejected {
			st.EjectedUntil = e.ejectedUntil
		}
		if p.cfg.Check.Checker != nil {
			st.Health = "unhealthy"
			if e.healthy.Load() {
				st.Health = "healthy"
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// applyLocked takes a new discovery set: adds endpoints (healthy, with a
// check started when Run runs), updates the attributes of known ones,
// removes the ones that left (stopping their checks and timers, dropping
// their metric series), and rebuilds the snapshot.
func (p *Pool) applyLocked(set discovery.Set) {
	p.set = set
	seen := make(map[string]bool, len(set.Endpoints))
	for _, d := range set.Endpoints {
		addr := d.Addr()
		seen[addr] = true
		d := d
		if e, ok := p.eps[addr]; ok {
			e.info.Store(&d)
			continue
		}
		e := &Endpoint{addr: addr}
		e.info.Store(&d)
		e.healthy.Store(true)
		p.eps[addr] = e
		if p.m != nil {
			p.m.transitions.WithLabelValues(p.name, addr, "healthy")
			p.m.transitions.WithLabelValues(p.name, addr, "unhealthy")
			p.m.ejections.WithLabelValues(p.name, addr)
		}
		p.startCheckLocked(e)
	}
	for addr, e := range p.eps {
		if seen[addr] {
			continue
		}
		e.removed.Store(true)
		p.stopCheckLocked(e)
		if e.ejectTimer != nil {
			e.ejectTimer.Stop()
		}
		delete(p.eps, addr)
		if p.m != nil {
			p.m.forgetEndpoint(p, addr)
		}
	}
	p.rebuildLocked()
}

// rebuildLocked computes the selection steps of the package doc into a new
// snapshot and publishes it.
func (p *Pool) rebuildLocked() {
	routableInfo := p.set.Routable()
	routable := make([]*Endpoint, 0, len(routableInfo))
	for _, d := range routableInfo {
		if e := p.eps[d.Addr()]; e != nil {
			routable = append(routable, e)
		}
	}
	s := &snapshot{policy: p.cfg.Policy, routable: routable}
	var unhealthy, ejected int
	for _, e := range routable {
		switch {
		case !e.healthy.Load():
			unhealthy++
		case e.ejected.Load():
			ejected++
		default:
			s.usable = append(s.usable, e)
		}
	}
	if len(s.usable) == 0 {
		var why string
		n := len(routable)
		switch {
		case len(p.set.Endpoints) == 0:
			why = "no endpoints discovered"
		case n == 0:
			why = fmt.Sprintf("none of %d discovered endpoints is ready or serving", len(p.set.Endpoints))
		case unhealthy == n:
			why = fmt.Sprintf("all %d endpoints unhealthy", n)
		case ejected == n:
			why = fmt.Sprintf("all %d endpoints ejected", n)
		default:
			why = fmt.Sprintf("all %d endpoints unhealthy (%d) or ejected (%d)", n, unhealthy, ejected)
		}
		s.err = fmt.Errorf("upstream %q: %s: %w", p.name, why, ErrNoEndpoint)
	}
	// The lowest priority group with a usable endpoint, then the own zone.
	cands := s.usable
	if len(cands) > 0 {
		low := cands[0].Info().Priority
		for _, e := range cands[1:] {
			low = min(low, e.Info().Priority)
		}
		var group []*Endpoint
		for _, e := range cands {
			if e.Info().Priority == low {
				group = append(group, e)
			}
		}
		cands = group
		if p.cfg.Zone != "" {
			var local []*Endpoint
			for _, e := range cands {
				if e.Info().Zone == p.cfg.Zone {
					local = append(local, e)
				}
			}
			if len(local) > 0 {
				cands = local
			}
		}
	}
	s.cands = cands
	s.build(p)
	p.snap.Store(s)
}
