//go:build container

package e2e

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/podkit/podkit/e2e/containertest"
)

// nginxStatusConf adds a stub_status server on :8080 to the peer image's
// nginx, as the seed's nginx + nginx-prometheus-exporter pod does.
const nginxStatusConf = `server {
	listen 8080;
	location = /stub_status { stub_status; }
	location / { return 200 "ok\n"; }
}`

// metricValue returns the value of the sample named by prefix (name and
// labels) in a /metrics body, or -1.
func metricValue(body, prefix string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `(?:\{[^}]*\})? (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestPodNginxMetrics: nginx and `podkit metrics` in one pod (shared
// network namespace). The adapter serves nginx-prometheus-exporter's
// metrics on :9113, scraped from nginx's stub_status over loopback.
func TestPodNginxMetrics(t *testing.T) {
	nginx := containertest.Run(t, containertest.Options{
		Name:    "nginx",
		Image:   containertest.PeerImage(),
		Cmd:     []string{"sh", "-c", "printf '%s' \"$CONF\" > /etc/nginx/conf.d/status.conf && exec nginx -g 'daemon off;'"},
		Env:     []string{"CONF=" + nginxStatusConf},
		Publish: []string{"8080", "9113", "9901"},
	})
	adapter := containertest.Run(t, containertest.Options{
		Name:      "metrics",
		Image:     containertest.Image(),
		Cmd:       []string{"metrics", "--nginx", "http://127.0.0.1:8080/stub_status", "--listen", "0.0.0.0:9113", "--admin-addr", "0.0.0.0:9901", "--drain-delay", "0s"},
		NetworkOf: nginx,
	})
	app := "http://" + nginx.Addr(t, "8080")
	metrics := "http://" + nginx.Addr(t, "9113") + "/metrics"
	waitHTTP(t, "http://"+nginx.Addr(t, "9901")+"/readyz", 200)
	eventually(t, "nginx_up 1", func() bool {
		code, body, err := get(metrics)
		return err == nil && code == 200 && metricValue(body, "nginx_up") == 1
	})
	for range 5 {
		if code, _, err := get(app + "/"); err != nil || code != 200 {
			t.Fatalf("nginx: %d %v", code, err)
		}
	}
	_, body, _ := get(metrics)
	if n := metricValue(body, "nginx_http_requests_total"); n < 5 {
		t.Fatalf("nginx_http_requests_total = %v after 5 requests:\n%s", n, body)
	}
	for _, name := range []string{"nginx_connections_active", "nginx_connections_accepted", "nginx_connections_handled",
		"nginx_connections_reading", "nginx_connections_writing", "nginx_connections_waiting", "podkit_metrics_scrape_duration_seconds"} {
		if metricValue(body, name) < 0 {
			t.Errorf("no %s in /metrics", name)
		}
	}
	// SIGTERM: drain and exit 0.
	if code := adapter.Stop(t, 20); code != 0 {
		t.Fatalf("metrics exited %d on stop", code)
	}
}
