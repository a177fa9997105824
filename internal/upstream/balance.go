package upstream

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
)

// maxSchedule bounds the smooth weighted round robin schedule; larger weight
// sums are scaled down to fit (each endpoint keeps at least one slot).
const maxSchedule = 4096

// Ring sizes: ringPerWeight points per unit of weight (four endpoints of
// weight 1 make a ring of 1024 points), scaled down to at most maxRing
// points in all.
const (
	ringPerWeight = 256
	maxRing       = 1 << 17
)

// snapshot is what Acquire reads: immutable once published.
type snapshot struct {
	policy   Policy
	routable []*Endpoint // discovery-routable, by address
	usable   []*Endpoint // routable, healthy, not ejected
	cands    []*Endpoint // usable, lowest priority, own zone if any
	err      error       // when usable is empty

	sched  []int32 // smooth weighted round robin order of cands
	cum    []int64 // cumulative weights of cands (p2c)
	ring   *ring
	onRing []bool // per ring endpoint: is it a candidate
}

func (s *snapshot) build(p *Pool) {
	if len(s.cands) == 0 {
		return
	}
	s.sched = schedule(s.cands)
	s.cum = make([]int64, len(s.cands))
	var sum int64
	for i, e := range s.cands {
		sum += e.weight()
		s.cum[i] = sum
	}
	if s.policy == RingHash {
		if p.ring == nil || !p.ring.same(s.routable) {
			p.ring = newRing(s.routable)
		}
		s.ring = p.ring
		s.onRing = make([]bool, len(s.ring.eps))
		for _, e := range s.cands {
			if i, ok := s.ring.index[e]; ok {
				s.onRing[i] = true
			}
		}
	}
}

// schedule is nginx's smooth weighted round robin run over one cycle of the
// (gcd-reduced, capped) weights.
func schedule(eps []*Endpoint) []int32 {
	w := make([]int64, len(eps))
	var g, sum int64
	for i, e := range eps {
		w[i] = e.weight()
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	if sum > maxSchedule {
		scaled := int64(0)
		for i := range w {
			w[i] = max(1, w[i]*maxSchedule/sum)
			scaled += w[i]
		}
		sum = scaled
	}
	cur := make([]int64, len(w))
	out := make([]int32, 0, sum)
	for range sum {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		out = append(out, int32(best))
	}
	return out
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func tried(h *Hint, e *Endpoint) bool {
	for _, t := range h.Tried {
		if t == e {
			return true
		}
	}
	return false
}

// pick chooses among the candidates by policy, skipping tried endpoints;
// when every candidate was tried, any untried usable endpoint; when every
// usable endpoint was tried, a tried candidate. nil when nothing is usable.
func (s *snapshot) pick(p *Pool, h *Hint) *Endpoint {
	if len(s.cands) == 0 {
		return nil
	}
	if e := s.pickPolicy(p, h); e != nil {
		return e
	}
	// Every candidate was tried: the least loaded untried usable endpoint.
	var best *Endpoint
	for _, e := range s.usable {
		if !tried(h, e) && (best == nil || less(e, best)) {
			best = e
		}
	}
	if best != nil {
		return best
	}
	return s.cands[s.sched[p.rr.Add(1)%uint64(len(s.sched))]]
}

// less: fewer in flight per weight.
func less(a, b *Endpoint) bool {
	return a.inFlight.Load()*b.weight() < b.inFlight.Load()*a.weight()
}

func (s *snapshot) pickPolicy(p *Pool, h *Hint) *Endpoint {
	switch s.policy {
	case LeastRequest:
		return s.leastRequest(p, h)
	case P2C:
		return s.p2c(p, h)
	case RingHash:
		if h.HasKey {
			return s.ringPick(h)
		}
	}
	return s.roundRobin(p, h)
}

func (s *snapshot) roundRobin(p *Pool, h *Hint) *Endpoint {
	n := uint64(len(s.sched))
	start := p.rr.Add(1) - 1
	for i := range n {
		e := s.cands[s.sched[(start+i)%n]]
		if len(h.Tried) == 0 || !tried(h, e) {
			if i > 0 {
				p.rr.Add(i)
			}
			return e
		}
	}
	return nil
}

func (s *snapshot) leastRequest(p *Pool, h *Hint) *Endpoint {
	n := len(s.cands)
	first := int(s.sched[p.rr.Add(1)%uint64(len(s.sched))])
	var best *Endpoint
	for i := range n {
		e := s.cands[(first+i)%n]
		if len(h.Tried) > 0 && tried(h, e) {
			continue
		}
		if best == nil || less(e, best) {
			best = e
		}
	}
	return best
}

func (s *snapshot) weighted() *Endpoint {
	total := s.cum[len(s.cum)-1]
	r := rand.Int64N(total)
	i := sort.Search(len(s.cum), func(i int) bool { return s.cum[i] > r })
	return s.cands[i]
}

func (s *snapshot) p2c(p *Pool, h *Hint) *Endpoint {
	if len(s.cands) == 1 {
		if e := s.cands[0]; len(h.Tried) == 0 || !tried(h, e) {
			return e
		}
		return nil
	}
	var a, b *Endpoint
	for range 8 {
		if e := s.weighted(); len(h.Tried) == 0 || !tried(h, e) {
			a = e
			break
		}
	}
	if a == nil {
		return s.leastRequest(p, h)
	}
	for range 4 {
		if e := s.weighted(); e != a && (len(h.Tried) == 0 || !tried(h, e)) {
			b = e
			break
		}
	}
	if b != nil && less(b, a) {
		return b
	}
	return a
}

func (s *snapshot) ringPick(h *Hint) *Endpoint {
	r := s.ring
	n := len(r.points)
	i := sort.Search(n, func(i int) bool { return r.points[i].hash >= h.Key })
	for range n {
		if i == n {
			i = 0
		}
		idx := r.points[i].idx
		if s.onRing[idx] {
			if e := r.eps[idx]; len(h.Tried) == 0 || !tried(h, e) {
				return e
			}
		}
		i++
	}
	return nil
}

// ring is a consistent hash ring over the routable endpoints; it is kept
// while their addresses and weights stay the same.
type ring struct {
	eps     []*Endpoint
	index   map[*Endpoint]int
	weights []int64
	points  []ringPoint
}

type ringPoint struct {
	hash uint64
	idx  int32
}

func (r *ring) same(eps []*Endpoint) bool {
	if len(eps) != len(r.eps) {
		return false
	}
	for i, e := range eps {
		if e != r.eps[i] || e.weight() != r.weights[i] {
			return false
		}
	}
	return true
}

// newRing gives each endpoint ringPerWeight points per unit of weight,
// unless that makes more than maxRing in all: then maxRing in proportion to
// the weights, at least one each. Point j of an endpoint hashes "ADDR_j",
// so an endpoint's points do not depend on the other endpoints (while the
// ring is not scaled down): an endpoint that comes or goes takes or gives
// back only its own keys.
func newRing(eps []*Endpoint) *ring {
	r := &ring{eps: slices.Clone(eps), weights: make([]int64, len(eps)), index: make(map[*Endpoint]int, len(eps))}
	for i, e := range eps {
		r.index[e] = i
	}
	if len(eps) == 0 {
		return r
	}
	var sum int64
	for i, e := range eps {
		r.weights[i] = e.weight()
		sum += r.weights[i]
	}
	var buf []byte
	for i, e := range eps {
		k := r.weights[i] * ringPerWeight
		if sum*ringPerWeight > maxRing {
			k = max(1, (r.weights[i]*maxRing+sum/2)/sum)
		}
		for j := range k {
			buf = append(buf[:0], e.addr...)
			buf = append(buf, '_')
			buf = strconv.AppendInt(buf, j, 10)
			r.points = append(r.points, ringPoint{hash: HashKey(buf), idx: int32(i)})
		}
	}
	sort.Slice(r.points, func(a, b int) bool {
		if r.points[a].hash != r.points[b].hash {
			return r.points[a].hash < r.points[b].hash
		}
		return r.points[a].idx < r.points[b].idx
	})
	return r
}
