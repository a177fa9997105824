package shard

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus metrics. Counters kept in the pools
// and servers (atomics on the hot path) are read at scrape time.
type metrics struct {
	latency *prometheus.HistogramVec
	lastOK  prometheus.Gauge
	state   func() []*pool

	clients  *prometheus.Desc
	commands *prometheus.Desc
	requests *prometheus.Desc
	errors   *prometheus.Desc
	inflight *prometheus.Desc
	conns    *prometheus.Desc
	ejects   *prometheus.Desc
	up       *prometheus.Desc
	ejected  *prometheus.Desc
}

func newMetrics(state func() []*pool) *metrics {
	return &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podkit_shard_server_request_duration_seconds",
			Help:    "Time from sending a request to a server to its reply.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"pool", "server"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_shard_config_last_reload_successful", Help: "1 if the last configuration reload succeeded.",
		}),
		state:    state,
		clients:  prometheus.NewDesc("podkit_shard_client_connections", "Open client connections.", []string{"pool"}, nil),
		commands: prometheus.NewDesc("podkit_shard_client_commands_total", "Commands received from clients.", []string{"pool"}, nil),
		requests: prometheus.NewDesc("podkit_shard_server_requests_total", "Requests sent to a server.", []string{"pool", "server"}, nil),
		errors:   prometheus.NewDesc("podkit_shard_server_errors_total", "Requests a server did not answer, by kind (connect, connection, timeout, down).", []string{"pool", "server", "kind"}, nil),
		inflight: prometheus.NewDesc("podkit_shard_server_in_flight_requests", "Requests queued or sent to a server and not yet answered.", []string{"pool", "server"}, nil),
		conns:    prometheus.NewDesc("podkit_shard_server_connections", "Open connections to a server.", []string{"pool", "server"}, nil),
		ejects:   prometheus.NewDesc("podkit_shard_server_ejections_total", "Times a server was ejected (auto_eject_hosts) or marked down (fail_closed).", []string{"pool", "server"}, nil),
		up:       prometheus.NewDesc("podkit_shard_server_up", "1 if the last connection attempt to a server (a request's, or the readiness probe's) succeeded.", []string{"pool", "server"}, nil),
		ejected:  prometheus.NewDesc("podkit_shard_server_ejected", "1 while a server is ejected (auto_eject_hosts) or marked down (fail_closed).", []string{"pool", "server"}, nil),
	}
}

// poolCounters are per-pool counters read at scrape time.
type poolCounters struct {
	clients  atomic.Int64
	commands atomic.Uint64
	// twemproxy's stats (see stats.go)
	accepted  atomic.Uint64 // client connections accepted
	clientEOF atomic.Uint64 // client connections the client closed
	clientErr atomic.Uint64 // client connections ended by an error
	fragments atomic.Uint64 // requests a split command was divided into
}

// clientClosed counts a client connection that ended with err (nil: the
// client asked to close, e.g. QUIT).
func (c *poolCounters) clientClosed(err error) {
	if err == nil || errors.Is(err, io.EOF) {
		c.clientEOF.Add(1)
	} else {
		c.clientErr.Add(1)
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.latency.Describe(ch)
	m.lastOK.Describe(ch)
	for _, d := range []*prometheus.Desc{m.clients, m.commands, m.requests, m.errors, m.inflight, m.conns, m.ejects, m.up, m.ejected} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.latency.Collect(ch)
	m.lastOK.Collect(ch)
	for _, p := range m.state() {
		name := p.cfg.Name
		ch <- prometheus.MustNewConstMetric(m.clients, prometheus.GaugeValue, float64(p.counters.clients.Load()), name)
		ch <- prometheus.MustNewConstMetric(m.commands, prometheus.CounterValue, float64(p.counters.commands.Load()), name)
		for _, s := range p.servers {
			sn := s.cfg.Name
			ch <- prometheus.MustNewConstMetric(m.requests, prometheus.CounterValue, float64(s.requests.Load()), name, sn)
			var inflight int
			for _, c := range s.cs {
				inflight += c.pending()
			}
			ch <- prometheus.MustNewConstMetric(m.inflight, prometheus.GaugeValue, float64(inflight), name, sn)
			ch <- prometheus.MustNewConstMetric(m.conns, prometheus.GaugeValue, float64(s.open.Load()), name, sn)
			ch <- prometheus.MustNewConstMetric(m.ejects, prometheus.CounterValue, float64(s.ejections.Load()), name, sn)
			ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, b2f(s.state.Load() == stateUp), name, sn)
			ch <- prometheus.MustNewConstMetric(m.ejected, prometheus.GaugeValue, b2f(s.down.Load()), name, sn)
			s.errMu.Lock()
			for _, kind := range []string{kindConnect, kindConnection, kindTimeout, kindDown} {
				ch <- prometheus.MustNewConstMetric(m.errors, prometheus.CounterValue, float64(s.errs[kind]), name, sn, kind)
			}
			s.errMu.Unlock()
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
