package health_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/podkit/podkit/adapter/health"
	"github.com/podkit/podkit/container"
)

// A Redis health endpoint for a readiness probe. Nothing listens on the
// Redis address here, so the probe answers 503 and says why.
func Example() {
	gone, _ := net.Listen("tcp", "127.0.0.1:0")
	redisAddr := gone.Addr().String()
	gone.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	cfg := health.DefaultConfig()
	cfg.Listener = ln
	cfg.Redis = redisAddr
	cfg.Period = 100 * time.Millisecond
	cfg.Timeout = 100 * time.Millisecond
	a, err := health.New(cfg)
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

	for range 200 {
		resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var body struct {
			Status string
			Last   *health.Result
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body.Last == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		fmt.Println(resp.StatusCode, body.Status, body.Last.Reason)
		break
	}
	// Output:
	// 503 fail connect
}
