package upstream

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pool metrics of a component, named
// podkit_<subsystem>_endpoint_* and podkit_<subsystem>_upstream_*, labelled
// by upstream (and endpoint). Several pools share one Metrics; the series
// of endpoints that leave discovery, and of closed pools, are dropped.
type Metrics struct {
	transitions *prometheus.CounterVec
	ejections   *prometheus.CounterVec
	overflow    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	noEndpoint  *prometheus.CounterVec

	healthy    *prometheus.Desc
	ejected    *prometheus.Desc
	inFlight   *prometheus.Desc
	usable     *prometheus.Desc
	upInFlight *prometheus.Desc
	upPending  *prometheus.Desc

	mu    sync.Mutex
	pools map[string]*Pool // by name: the newest pool of each upstream
}

// NewMetrics makes the metrics for a component ("broker", "split").
// Register Collectors with the component's registry.
func NewMetrics(subsystem string) *Metrics {
	ep := "podkit_" + subsystem + "_endpoint_"
	up := "podkit_" + subsystem + "_upstream_"
	return &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ep + "health_transitions_total",
			Help: "Active health check transitions of an endpoint, by the state it went to (healthy or unhealthy).",
		}, []string{"upstream", "endpoint", "to"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ep + "ejections_total",
			Help: "Times outlier detection ejected the endpoint.",
		}, []string{"upstream", "endpoint"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: up + "overflow_total",
			Help: "Acquisitions refused by a limit (max_connections, max_requests, max_pending).",
		}, []string{"upstream", "limit"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: up + "retries_total",
			Help: "Retries asked of the retry budget, by result (allowed or budget_exhausted).",
		}, []string{"upstream", "result"}),
		noEndpoint: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: up + "no_endpoint_total",
			Help: "Acquisitions that found no usable endpoint.",
		}, []string{"upstream"}),
		healthy: prometheus.NewDesc(ep+"healthy",
			"1 when the endpoint passes its active health checks (or has none), 0 when it failed them.",
			[]string{"upstream", "endpoint"}, nil),
		ejected: prometheus.NewDesc(ep+"ejected",
			"1 while outlier detection holds the endpoint out.",
			[]string{"upstream", "endpoint"}, nil),
		inFlight: prometheus.NewDesc(ep+"in_flight",
			"Connections and requests open on the endpoint.",
			[]string{"upstream", "endpoint"}, nil),
		usable: prometheus.NewDesc(up+"usable_endpoints",
			"Endpoints the upstream may pick now (routable, healthy, not ejected).",
			[]string{"upstream"}, nil),
		upInFlight: prometheus.NewDesc(up+"in_flight",
			"Acquisitions open in the upstream, by kind (conn or request).",
			[]string{"upstream", "kind"}, nil),
		upPending: prometheus.NewDesc(up+"pending_dials",
			"Dials in progress in the upstream.",
			[]string{"upstream"}, nil),
		pools: map[string]*Pool{},
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.transitions, m.ejections, m.overflow, m.retries, m.noEndpoint, stateCollector{m}}
}

func (m *Metrics) add(p *Pool) {
	m.mu.Lock()
	m.pools[p.name] = p
	m.mu.Unlock()
	m.noEndpoint.WithLabelValues(p.name)
	for _, l := range []string{"max_connections", "max_requests", "max_pending"} {
		m.overflow.WithLabelValues(p.name, l)
	}
}

// remove forgets p's series, unless a newer pool of the same name owns them.
func (m *Metrics) remove(p *Pool) {
	m.mu.Lock()
	owner := m.pools[p.name] == p
	if owner {
		delete(m.pools, p.name)
	}
	m.mu.Unlock()
	if !owner {
		return
	}
	l := prometheus.Labels{"upstream": p.name}
	for _, v := range []*prometheus.MetricVec{m.transitions.MetricVec, m.ejections.MetricVec, m.overflow.MetricVec, m.retries.MetricVec, m.noEndpoint.MetricVec} {
		v.DeletePartialMatch(l)
	}
}

// forgetEndpoint drops the series of an endpoint that left discovery.
func (m *Metrics) forgetEndpoint(p *Pool, addr string) {
	m.mu.Lock()
	owner := m.pools[p.name] == p
	m.mu.Unlock()
	if !owner {
		return
	}
	l := prometheus.Labels{"upstream": p.name, "endpoint": addr}
	m.transitions.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
}

type stateCollector struct{ m *Metrics }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.m.healthy, c.m.ejected, c.m.inFlight, c.m.usable, c.m.upInFlight, c.m.upPending} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	pools := make([]*Pool, 0, len(c.m.pools))
	for _, p := range c.m.pools {
		pools = append(pools, p)
	}
	c.m.mu.Unlock()
	sort.Slice(pools, func(i, j int) bool { return pools[i].name < pools[j].name })
	for _, p := range pools {
		p.mu.Lock()
		eps := make([]*Endpoint, 0, len(p.eps))
		for _, e := range p.eps {
			eps = append(eps, e)
		}
		p.mu.Unlock()
		for _, e := range eps {
			ch <- prometheus.MustNewConstMetric(c.m.healthy, prometheus.GaugeValue, b2f(e.healthy.Load()), p.name, e.addr)
			ch <- prometheus.MustNewConstMetric(c.m.ejected, prometheus.GaugeValue, b2f(e.ejected.Load()), p.name, e.addr)
			ch <- prometheus.MustNewConstMetric(c.m.inFlight, prometheus.GaugeValue, float64(e.inFlight.Load()), p.name, e.addr)
		}
		ch <- prometheus.MustNewConstMetric(c.m.usable, prometheus.GaugeValue, float64(p.Usable()), p.name)
		ch <- prometheus.MustNewConstMetric(c.m.upInFlight, prometheus.GaugeValue, float64(p.conns.Load()), p.name, "conn")
		ch <- prometheus.MustNewConstMetric(c.m.upInFlight, prometheus.GaugeValue, float64(p.reqs.Load()), p.name, "request")
		ch <- prometheus.MustNewConstMetric(c.m.upPending, prometheus.GaugeValue, float64(p.pending.Load()), p.name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
