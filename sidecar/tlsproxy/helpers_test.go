package tlsproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
)

// running is a proxy started in-process under container.Run.
type running struct {
	p      *Proxy
	addr   string
	admin  string
	cancel context.CancelFunc
	done   chan error
}

// startProxy runs New(cfg) under the container contract until the test
// ends. cfg.Listen is replaced by a loopback listener; a nil cfg.Logger
// by testLogger.
func startProxy(t testing.TB, cfg Config) *running {
	t.Helper()
	if cfg.Listen == "" || cfg.Listen == DefaultConfig().Listen {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	p, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("New: %v", err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := container.DefaultOptions()
	o.AdminListener = aln
	o.AdminAddr = aln.Addr().String()
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = cfg.Logger
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, addr: ln.Addr().String(), admin: "http://" + aln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- container.Run(ctx, p, o) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-p.Ready():
	case err := <-r.done:
		t.Fatalf("proxy stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not serving after 10s")
	}
	return r
}

func (r *running) stop(t testing.TB) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("proxy Run: %v", err)
		}
		r.done <- nil
	case <-time.After(15 * time.Second):
		t.Error("proxy did not stop within 15s")
	}
}

// metric returns the value of the first /metrics line starting with
// prefix (a name with optional labels), or -1.
func (r *running) metric(t testing.TB, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, prefix+" "), &v)
			return v
		}
	}
	return -1
}

func (r *running) readyz(t testing.TB) int {
	t.Helper()
	resp, err := http.Get(r.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// echoed is what the echo backend reports about a request.
type echoed struct {
	Method, Path, Host, Proto string
	Header                    http.Header
	Body                      string
}

// echoBackend is a real HTTP server on loopback that describes each
// request it gets as JSON, and upgrades /ws to a WebSocket echo.
func echoBackend(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", wsEcho)
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "slow done")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.Write([]byte(strings.Repeat("abcdefgh", 1<<17)))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Proto: r.Proto, Header: r.Header, Body: string(body)})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
