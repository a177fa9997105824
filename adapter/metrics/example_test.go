package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/podkit/podkit/adapter/metrics"
	"github.com/podkit/podkit/container"
)

// An nginx stub_status page served as nginx-prometheus-exporter's metrics.
func Example() {
	// Stands in for nginx's `location = /stub_status { stub_status; }`.
	nginx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Active connections: 2 \nserver accepts handled requests\n 10 10 31 \nReading: 0 Writing: 1 Waiting: 1 \n")
	}))
	defer nginx.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	cfg := metrics.DefaultConfig()
	cfg.Listener = ln
	cfg.Nginx = []string{nginx.URL + "/stub_status"}
	a, err := metrics.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, a, opts) }()
	defer func() { stop(); <-done }()

	var body []byte
	for range 100 {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	addr := strings.TrimPrefix(nginx.URL, "http://")
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "nginx_connections_active") || strings.HasPrefix(line, "nginx_http_requests_total") || strings.HasPrefix(line, "nginx_up") {
			fmt.Println(strings.ReplaceAll(line, addr, "nginx:80"))
		}
	}
	// Output:
	// nginx_connections_active{addr="nginx:80"} 2
	// nginx_http_requests_total{addr="nginx:80"} 31
	// nginx_up{addr="nginx:80"} 1
}

// /metrics behind a bearer token: Prometheus sends it with
// authorization: {credentials_file: ...}; a caller without it gets 401
// naming the role it needs.
func Example_token() {
	nginx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Active connections: 2 \nserver accepts handled requests\n 10 10 31 \nReading: 0 Writing: 1 Waiting: 1 \n")
	}))
	defer nginx.Close()
	dir, _ := os.MkdirTemp("", "podkit-example-")
	defer os.RemoveAll(dir)
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("prometheus scraper Lr7m1u9VvXgq3kGZ0c2TfA==\n"), 0o600)

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	cfg := metrics.DefaultConfig()
	cfg.Listener = ln
	cfg.Nginx = []string{nginx.URL + "/stub_status"}
	cfg.API.TokenFiles = []string{tokens}
	a, err := metrics.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := container.DefaultOptions()
	opts.AdminAddr, opts.DrainDelay = "off", 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, a, opts) }()
	defer func() { stop(); <-done }()

	get := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for range 100 {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			defer resp.Body.Close()
			var refusal struct{ Role string }
			json.NewDecoder(resp.Body).Decode(&refusal)
			return resp.StatusCode, refusal.Role
		}
		return 0, ""
	}
	code, role := get("")
	fmt.Println("without a token:", code, "needs role", role)
	code, _ = get("Lr7m1u9VvXgq3kGZ0c2TfA==")
	fmt.Println("with the scraper token:", code)
	// Output:
	// without a token: 401 needs role scraper
	// with the scraper token: 200
}
