package workqueue

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/workqueue/store"
)

// Metrics are the coordinator's Prometheus metrics. Depth by state, the
// oldest ready item's age and the in-flight count are read from the store
// at scrape time, so they are exact; they are what an autoscaler (KEDA,
// HPA) scales workers on.
type Metrics struct {
	dispatch    *prometheus.HistogramVec
	processing  *prometheus.HistogramVec
	stale       prometheus.Counter
	commit      prometheus.Histogram
	commitBatch prometheus.Histogram
	api         *API
}

// NewMetrics returns the metrics; register them with Register.
func NewMetrics() *Metrics {
	return &Metrics{
		dispatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podkit_queue_dispatch_latency_seconds",
			Help:    "Time from an item becoming ready to its lease being handed to a worker.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"queue"}),
		processing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podkit_queue_processing_duration_seconds",
			Help:    "Time from lease to ack or nack, by result.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 1800},
		}, []string{"queue", "result"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_queue_stale_completions_total",
			Help: "Heartbeats, acks and nacks refused with 409 because the token's lease was no longer current.",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podkit_queue_wal_commit_duration_seconds",
			Help:    "Duration of one group commit (write + fdatasync) of the log.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .025, .05, .1, .5, 1},
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podkit_queue_wal_commit_records",
			Help:    "Records made durable by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
	}
}

// OnCommit is the store's commit hook.
func (m *Metrics) OnCommit(records, bytes int, d time.Duration) {
	m.commit.Observe(d.Seconds())
	m.commitBatch.Observe(float64(records))
}

// Register registers the metrics, reading queue state through api.
func (m *Metrics) Register(reg prometheus.Registerer, api *API) error {
	m.api = api
	for _, c := range []prometheus.Collector{m.dispatch, m.processing, m.stale, m.commit, m.commitBatch, stateCollector{m}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var (
	descItems = prometheus.NewDesc("podkit_queue_items", "Items by queue and state (done: retained done items).", []string{"queue", "state"}, nil)
	descAge   = prometheus.NewDesc("podkit_queue_oldest_ready_age_seconds", "Age of the oldest ready item (0 when none): how far behind the workers are.", []string{"queue"}, nil)
	descIn    = prometheus.NewDesc("podkit_queue_in_flight", "Items leased to workers now.", []string{"queue"}, nil)
	descEnq   = prometheus.NewDesc("podkit_queue_enqueued_total", "Items enqueued since the coordinator started.", []string{"queue"}, nil)
	descAck   = prometheus.NewDesc("podkit_queue_acked_total", "Items acked since the coordinator started.", []string{"queue"}, nil)
	descNack  = prometheus.NewDesc("podkit_queue_nacked_total", "Attempts nacked since the coordinator started.", []string{"queue"}, nil)
	descExp   = prometheus.NewDesc("podkit_queue_lease_expired_total", "Leases that expired (worker gone or too slow) since the coordinator started.", []string{"queue"}, nil)
	descDead  = prometheus.NewDesc("podkit_queue_dead_lettered_total", "Items moved to the dead-letter state since the coordinator started.", []string{"queue"}, nil)
)

type stateCollector struct{ m *Metrics }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descItems, descAge, descIn, descEnq, descAck, descNack, descExp, descDead} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.m.api
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names, err := a.allQueues(ctx)
	if err != nil {
		return
	}
	for _, q := range names {
		st, err := a.statsOf(ctx, q)
		if err != nil {
			continue
		}
		for _, s := range []struct {
			state store.State
			n     int
		}{{store.Ready, st.Ready}, {store.Delayed, st.Delayed}, {store.Leased, st.Leased}, {store.Done, st.Done}, {store.Dead, st.Dead}, {store.Cancelled, st.Cancelled}} {
			ch <- prometheus.MustNewConstMetric(descItems, prometheus.GaugeValue, float64(s.n), q, string(s.state))
		}
		ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, st.OldestReadyAgeSeconds, q)
		ch <- prometheus.MustNewConstMetric(descIn, prometheus.GaugeValue, float64(st.Leased), q)
		ch <- prometheus.MustNewConstMetric(descEnq, prometheus.CounterValue, float64(st.Enqueued), q)
		ch <- prometheus.MustNewConstMetric(descAck, prometheus.CounterValue, float64(st.Acked), q)
		ch <- prometheus.MustNewConstMetric(descNack, prometheus.CounterValue, float64(st.Nacked), q)
		ch <- prometheus.MustNewConstMetric(descExp, prometheus.CounterValue, float64(st.Expired), q)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(st.DeadLettered), q)
	}
}
