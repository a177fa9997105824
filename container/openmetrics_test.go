package container

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOpenMetricsClashes: only a counter whose OpenMetrics family name is
// taken by another family becomes an unknown-typed family of its full
// name; other counters stay counters, and the text format is untouched.
func TestOpenMetricsClashes(t *testing.T) {
	reg := prometheus.NewRegistry()
	clashing := prometheus.NewCounter(prometheus.CounterOpts{Name: "podkit_test_bytes_total", Help: "Bytes ever."})
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "podkit_test_bytes", Help: "Bytes now."})
	plain := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podkit_test_requests_total", Help: "Requests."}, []string{"code"})
	reg.MustRegister(clashing, gauge, plain)
	clashing.Add(7)
	gauge.Set(3)
	plain.WithLabelValues("200").Inc()
	h := metricsHandler(reg)

	get := func(accept string) string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		return w.Body.String()
	}
	om := get("application/openmetrics-text; version=1.0.0")
	for _, want := range []string{
		"# TYPE podkit_test_bytes gauge\npodkit_test_bytes 3.0\n",
		"# TYPE podkit_test_bytes_total unknown\npodkit_test_bytes_total 7.0\n",
		"# TYPE podkit_test_requests counter\n",
		`podkit_test_requests_total{code="200"} 1.0`,
		"# EOF\n",
	} {
		if !strings.Contains(om, want) {
			t.Errorf("OpenMetrics lacks %q:\n%s", want, om)
		}
	}
	text := get("")
	for _, want := range []string{
		"# TYPE podkit_test_bytes_total counter\npodkit_test_bytes_total 7\n",
		"# TYPE podkit_test_bytes gauge\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text format lacks %q:\n%s", want, text)
		}
	}
}
