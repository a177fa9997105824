package configsync

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons, the values of podkit_configsync_failures_total's
// "reason" label.
const (
	reasonFetch      = "fetch"
	reasonRender     = "render"
	reasonValidate   = "validate"
	reasonPublish    = "publish"
	reasonReload     = "reload"
	reasonNoProcess  = "no_process"
	reasonRollback   = "rollback"
	resultPublished  = "published"
	resultUnchanged  = "unchanged"
	resultFailed     = "failed"
	resultRolledBack = "rolled_back"
	resultSkipped    = "skipped"

	// Values of podkit_configsync_reloads_total's "result" label: the
	// reload of newly published content, or of the previous content
	// restored after that failed.
	reloadOK             = "ok"
	reloadFailed         = "failed"
	reloadRollbackOK     = "rollback_ok"
	reloadRollbackFailed = "rollback_failed"
)

type metrics struct {
	syncs      *prometheus.CounterVec
	failures   *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	lastSync   prometheus.Gauge
	lastReload prometheus.Gauge
	lastChange prometheus.Gauge
	content    *contentInfo
	inPlace    prometheus.Counter
	duration   prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_configsync_syncs_total",
			Help: "Pipeline runs by result: published, unchanged, failed, rolled_back, skipped (the source still holds a rejected version).",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_configsync_failures_total",
			Help: "Failures by reason: fetch, render, validate, publish, reload, no_process, rollback.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podkit_configsync_reloads_total",
			Help: "Reloads of the application by result: ok, failed (of newly published content); rollback_ok, rollback_failed (of the previous content, restored after a failed reload).",
		}, []string{"result"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_configsync_last_sync_success_timestamp_seconds",
			Help: "Unix time of the last sync that left the destination in step with the source.",
		}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_configsync_last_reload_success_timestamp_seconds",
			Help: "Unix time the application last accepted a reload of newly published content.",
		}),
		lastChange: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podkit_configsync_last_publish_timestamp_seconds",
			Help: "Unix time new content was last published.",
		}),
		content: &contentInfo{desc: prometheus.NewDesc("podkit_configsync_content_info",
			"The SHA-256 of the published content; always 1.", []string{"sha256"}, nil)},
		inPlace: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podkit_configsync_in_place_writes_total",
			Help: "Publishes that rewrote a bind-mounted file in place because rename failed with EBUSY.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "podkit_configsync_sync_duration_seconds",
			Help:    "How long a pipeline run took, validation and reload included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30},
		}),
	}
	for _, r := range []string{resultPublished, resultUnchanged, resultFailed, resultRolledBack, resultSkipped} {
		m.syncs.WithLabelValues(r)
	}
	for _, r := range []string{reasonFetch, reasonRender, reasonValidate, reasonPublish, reasonReload, reasonNoProcess, reasonRollback} {
		m.failures.WithLabelValues(r)
	}
	for _, r := range []string{reloadOK, reloadFailed, reloadRollbackOK, reloadRollbackFailed} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.syncs, m.failures, m.reloads, m.lastSync, m.lastReload, m.lastChange, m.content, m.inPlace, m.duration}
}

func (m *metrics) setContent(sha string) { m.content.set(sha) }

// contentInfo is podkit_configsync_content_info: one series whose label
// is the published content's SHA-256, or none before anything is
// published. Swapping the label is one step, so a scrape never sees
// zero series (or two) while it changes.
type contentInfo struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	sha  string
}

func (c *contentInfo) set(sha string) {
	c.mu.Lock()
	c.sha = sha
	c.mu.Unlock()
}

func (c *contentInfo) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *contentInfo) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sha := c.sha
	c.mu.Unlock()
	if sha != "" {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, sha)
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
