package tlsproxy

import (
	"bufio"
	"crypto/tls"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/podkit/podkit/internal/testdeps"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestDrain stops the proxy while a request is in flight and another
// connection idles: the request completes (and says Connection: close),
// the idle connection is closed, and the listener refuses new clients.
func TestDrain(t *testing.T) {
	ca := testdeps.NewPKI(t, "CA")
	// The target answers /slow once the proxy is stopping, so the
	// request is in flight across the stop however slow the machine.
	arrived, stopping := make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(arrived)
		<-stopping
		io.WriteString(w, "slow done")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r := serverProxy(t, ca, ln.Addr().String(), nil)
	cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	idle, err := tls.Dial("tcp", r.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := tls.Dial("tcp", r.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-arrived
	testdeps.WaitFor(t, "both connections open", func() bool {
		return r.metric(t, "podkit_tlsproxy_connections_open") == 2
	})
	r.cancel()
	testdeps.WaitFor(t, "the proxy stopping", r.p.stopped.Load)
	close(stopping)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "slow done" || !resp.Close {
		t.Errorf("in-flight request: %q close=%v, want the answer and Connection: close", b, resp.Close)
	}
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Error("idle connection not closed")
	}
	<-r.done
	r.done <- nil
	if c, err := net.Dial("tcp", r.addr); err == nil {
		c.Close()
		t.Error("listener still accepts after the stop")
	}
}

// TestMetricsGolden checks the names, types and help of the proxy's
// metrics against testdata/metrics.golden (go test -update rewrites it).
func TestMetricsGolden(t *testing.T) {
	p, err := New(Config{Target: "127.0.0.1:1", SelfSigned: true, Listen: ":0", Mode: ModeHTTP,
		MinVersion: "1.2", ClientCertHeader: DefaultClientCertHeader, HandshakeTimeout: 1, IdleTimeout: 1,
		HeaderTimeout: 1, DialTimeout: 1, TargetHealthPeriod: 1})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := p.m.register(reg); err != nil {
		t.Fatal(err)
	}
	p.m.reqH1.Observe(0.001)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()+"="+l.GetValue()] = true
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		lines = append(lines, mf.GetName()+" "+dto.MetricType_name[int32(mf.GetType())]+" {"+strings.Join(ls, ",")+"} "+mf.GetHelp())
	}
	sort.Strings(lines)
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("metrics differ from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}
