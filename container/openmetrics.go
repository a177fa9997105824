package container

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// metricsHandler serves GET /metrics: the Prometheus text format, or
// OpenMetrics when the scraper asks for it.
//
// OpenMetrics names a counter's family without its _total suffix, so a
// counter X_total and a gauge X — as the Go collector exports
// go_memstats_alloc_bytes_total and go_memstats_alloc_bytes — are two
// families of one name, which strict parsers reject (client_golang serves
// them as they are). Under OpenMetrics such a counter is served as an
// unknown-typed family of its full name: every series keeps its name and
// value, so queries and dashboards see the same data in both formats, and
// the document is valid. The text format is left untouched.
func metricsHandler(g prometheus.Gatherer) http.Handler {
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}
	text := promhttp.HandlerFor(g, opts)
	opts.EnableOpenMetrics = true
	om := promhttp.HandlerFor(openMetricsGatherer{g}, opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if expfmt.NegotiateIncludingOpenMetrics(r.Header).FormatType() == expfmt.TypeOpenMetrics {
			om.ServeHTTP(w, r)
			return
		}
		text.ServeHTTP(w, r)
	})
}

// openMetricsGatherer resolves OpenMetrics name clashes (see
// metricsHandler).
type openMetricsGatherer struct{ g prometheus.Gatherer }

func (o openMetricsGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := o.g.Gather()
	resolveOpenMetricsClashes(mfs)
	return mfs, err
}

// omNames returns a family's OpenMetrics family name and the sample names
// it is written with.
func omNames(mf *dto.MetricFamily) (family string, samples []string) {
	n := mf.GetName()
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		family = strings.TrimSuffix(n, "_total")
		return family, []string{family + "_total", family + "_created"}
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return n, []string{n + "_bucket", n + "_count", n + "_sum", n + "_created", n + "_gcount", n + "_gsum"}
	case dto.MetricType_SUMMARY:
		return n, []string{n, n + "_count", n + "_sum", n + "_created"}
	}
	return n, []string{n}
}

// resolveOpenMetricsClashes turns each counter whose OpenMetrics family or
// sample names collide with another family's into an unknown-typed family
// of its full name (its samples keep their names and values).
func resolveOpenMetricsClashes(mfs []*dto.MetricFamily) {
	owners := map[string]int{} // family or sample name -> how many families use it
	for _, mf := range mfs {
		family, samples := omNames(mf)
		names := map[string]bool{family: true}
		for _, s := range samples {
			names[s] = true
		}
		for n := range names {
			owners[n]++
		}
	}
	for _, mf := range mfs {
		if mf.GetType() != dto.MetricType_COUNTER {
			continue
		}
		family, samples := omNames(mf)
		clash := owners[family] > 1
		for _, s := range samples {
			clash = clash || owners[s] > 1
		}
		if !clash {
			continue
		}
		name := family + "_total"
		mf.Name = &name
		t := dto.MetricType_UNTYPED
		mf.Type = &t
		for _, m := range mf.Metric {
			v := m.GetCounter().GetValue()
			m.Counter = nil
			m.Untyped = &dto.Untyped{Value: &v}
		}
	}
}
