package election

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	isLeader      prometheus.Gauge
	epoch         prometheus.Gauge
	transitions   prometheus.Counter
	backendErrors prometheus.Counter
	proxied       *prometheus.CounterVec
	notify        *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_elect_is_leader", Help: "1 while this replica leads.",
		}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_elect_epoch", Help: "The current leader's epoch (fencing token); 0 while no leader is known.",
		}),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_elect_leader_transitions_total", Help: "Leaders observed (a new leader or a new epoch).",
		}),
		backendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_elect_backend_errors_total", Help: "Failures to reach or use the election backend.",
		}),
		proxied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_elect_proxy_requests_total", Help: "Leader proxy requests, by result (forwarded, no_leader, error).",
		}, []string{"result"}),
		notify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_elect_notify_total", Help: "--notify POSTs, by result (ok, error, denied: a 401 or 403).",
		}, []string{"result"}),
	}
}

func (m *metrics) register(r prometheus.Registerer, e *Elector) {
	for _, v := range []string{"forwarded", "no_leader", "error"} {
		m.proxied.WithLabelValues(v)
	}
	for _, v := range []string{"ok", "error", "denied"} {
		m.notify.WithLabelValues(v)
	}
	leaderless := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "podkit_elect_leaderless_seconds_total", Help: "Time this replica knew of no leader.",
	}, func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		total := e.leaderless
		if !e.noLeader.IsZero() {
			total += time.Since(e.noLeader).Seconds()
		}
		return total
	})
	r.MustRegister(m.isLeader, m.epoch, m.transitions, leaderless, m.backendErrors, m.proxied, m.notify)
}
