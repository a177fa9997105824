package broker

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/upstream"
)

// Rejection reasons (podkit_broker_rejected_total{reason}).
const (
	reasonNoEndpoint = "no_endpoint"
	reasonOverloaded = "overloaded"
)

// metrics are the broker's own metrics, with discovery's and the pool's.
type metrics struct {
	connections   *prometheus.CounterVec
	active        *prometheus.GaugeVec
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	connectErrors *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	disc          *discovery.Metrics
	pool          *upstream.Metrics

	mu     sync.Mutex
	checks map[string]bool // upstreams with a readiness check
}

func newMetrics() *metrics {
	return &metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_broker_connections_total",
			Help: "Connections opened to each endpoint (tcp: one per client connection; http: new keep-alive connections are not counted, requests are).",
		}, []string{"upstream", "endpoint"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podkit_broker_active_connections",
			Help: "Client connections open on the upstream's listener.",
		}, []string{"upstream"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_broker_requests_total",
			Help: "HTTP requests by endpoint and class of answer: 2xx, 3xx, 4xx, 5xx, or error (no answer from the endpoint).",
		}, []string{"upstream", "endpoint", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podkit_broker_request_duration_seconds",
			Help:    "Time from an HTTP request's head to the end of its response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"upstream"}),
		connectErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_broker_connect_errors_total",
			Help: "Failed connects to each endpoint (refused, timed out, TLS handshake failed).",
		}, []string{"upstream", "endpoint"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_broker_rejected_total",
			Help: "Connections closed or requests answered 503 at once: no_endpoint (none usable) or overloaded (a limit reached).",
		}, []string{"upstream", "reason"}),
		disc:   discovery.NewMetrics("broker"),
		pool:   upstream.NewMetrics("broker"),
		checks: map[string]bool{},
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	cs := []prometheus.Collector{m.connections, m.active, m.requests, m.duration, m.connectErrors, m.rejected}
	cs = append(cs, m.disc.Collectors()...)
	cs = append(cs, m.pool.Collectors()...)
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// upstream prepares an upstream's series so they show before the first
// event.
func (m *metrics) upstream(name string) {
	m.active.WithLabelValues(name)
	m.rejected.WithLabelValues(name, reasonNoEndpoint)
	m.rejected.WithLabelValues(name, reasonOverloaded)
}

// checked reports whether the upstream already has a readiness check,
// and notes that it has one now.
func (m *metrics) checked(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	had := m.checks[name]
	m.checks[name] = true
	return had
}

// forget drops the series of an upstream that no longer exists.
func (m *metrics) forget(name string) {
	l := prometheus.Labels{"upstream": name}
	for _, v := range []*prometheus.MetricVec{m.connections.MetricVec, m.active.MetricVec, m.requests.MetricVec, m.duration.MetricVec, m.connectErrors.MetricVec, m.rejected.MetricVec} {
		v.DeletePartialMatch(l)
	}
	m.disc.Forget(name)
}

// forgetEndpoint drops the series of an endpoint discovery dropped.
func (m *metrics) forgetEndpoint(name, addr string) {
	l := prometheus.Labels{"upstream": name, "endpoint": addr}
	for _, v := range []*prometheus.MetricVec{m.connections.MetricVec, m.requests.MetricVec, m.connectErrors.MetricVec} {
		v.DeletePartialMatch(l)
	}
}
