package tlsproxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus metrics (podkit_tlsproxy_*).
type metrics struct {
	open          prometheus.Gauge
	accepted      prometheus.Counter
	handshakeErrs *prometheus.CounterVec
	handshakeDur  prometheus.Histogram
	requestDur    *prometheus.HistogramVec
	reqH1, reqH2  prometheus.Observer
	connDur       prometheus.Histogram
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	backendErrs   *prometheus.CounterVec
	certExpiry    prometheus.Gauge
	rejected      *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_tlsproxy_connections_open", Help: "Client connections open now.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_tlsproxy_connections_accepted_total", Help: "Client connections accepted.",
		}),
		handshakeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_tlsproxy_handshake_errors_total", Help: "Failed TLS handshakes, by reason (timeout, client_cert, not_allowed, protocol, eof).",
		}, []string{"reason"}),
		handshakeDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podkit_tlsproxy_handshake_duration_seconds", Help: "Duration of successful TLS handshakes.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		requestDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "podkit_tlsproxy_request_duration_seconds", Help: "Duration of proxied HTTP requests (http mode), from request headers read to response sent, by client protocol.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"protocol"}),
		connDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podkit_tlsproxy_connection_duration_seconds", Help: "Lifetime of client connections that completed a handshake.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_tlsproxy_client_received_bytes_total", Help: "Bytes received from clients (TLS records).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_tlsproxy_client_sent_bytes_total", Help: "Bytes sent to clients (TLS records).",
		}),
		backendErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_tlsproxy_backend_errors_total", Help: "Errors talking to --target, by kind (dial, write, read, protocol, timeout).",
		}, []string{"kind"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_tlsproxy_cert_expiry_timestamp_seconds", Help: "Unix time the served certificate expires (NotAfter).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_tlsproxy_requests_rejected_total", Help: "HTTP requests answered by the proxy itself, by reason (bad_request, header_too_large, not_implemented, backend).",
		}, []string{"reason"}),
	}
	m.reqH1 = m.requestDur.WithLabelValues("http/1.1")
	m.reqH2 = m.requestDur.WithLabelValues("h2")
	for _, r := range []string{"timeout", "client_cert", "not_allowed", "protocol", "eof"} {
		m.handshakeErrs.WithLabelValues(r)
	}
	for _, k := range []string{"dial", "write", "read", "protocol", "timeout"} {
		m.backendErrs.WithLabelValues(k)
	}
	for _, r := range []string{"bad_request", "header_too_large", "not_implemented", "backend"} {
		m.rejected.WithLabelValues(r)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		m.open, m.accepted, m.handshakeErrs, m.handshakeDur, m.requestDur, m.connDur,
		m.bytesIn, m.bytesOut, m.backendErrs, m.certExpiry, m.rejected,
	} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
