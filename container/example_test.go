package container_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/podkit/podkit/container"
)

// hello is a minimal component: an HTTP server on its own listener.
type hello struct{ ln net.Listener }

func (h *hello) Name() string { return "hello" }

func (h *hello) Run(ctx context.Context, host *container.Host) error {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	})}
	host.AddCheck(container.Check{Name: "self", Period: time.Second, Func: func(context.Context) error { return nil }})
	return container.ServeHTTP(ctx, host, srv, h.ln)
}

// Run hosts a component under the contract: the admin endpoints, background
// checks and graceful drain come for free.
func ExampleRun() {
	app, _ := net.Listen("tcp", "127.0.0.1:0")
	admin, _ := net.Listen("tcp", "127.0.0.1:0")
	opts := container.DefaultOptions()
	opts.AdminListener = admin
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, &hello{ln: app}, opts) }()

	for {
		resp, err := http.Get("http://" + admin.Addr().String() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, _ := http.Get("http://" + app.Addr().String() + "/")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))

	stop() // as SIGTERM: readiness 503, stop accepting, drain, return
	fmt.Println("stopped:", <-done)
	// Output:
	// hello
	// stopped: <nil>
}
