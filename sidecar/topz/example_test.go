package topz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/sidecar/topz"
)

// Example runs topz under the container contract and reads GET /topz as
// JSON. It reads a fixture proc tree (a pod with a pause container, nginx
// and topz itself) so its output is stable; the default is /proc.
func Example() {
	cfg := topz.DefaultConfig()
	cfg.Proc = "testdata/proc"
	cfg.Passwd = "testdata/passwd"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	cfg.Listener = ln
	tz, err := topz.New(cfg)
	if err != nil {
		panic(err)
	}
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, tz, opts) }()
	defer func() { cancel(); <-done }()

	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/topz?sort=pid&limit=4", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Visible   int `json:"processes_visible"`
		Processes []struct {
			PID       int
			User      string
			Command   string
			Container struct {
				ShortID string `json:"short_id"`
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		panic(err)
	}
	fmt.Println(doc.Visible, "processes visible")
	for _, p := range doc.Processes {
		fmt.Println(p.PID, p.User, p.Container.ShortID, p.Command)
	}
	// Output:
	// 7 processes visible
	// 1 65535 118b7c6d5e4f /pause
	// 7 root 3f1c2b9d7e6a nginx: master process /usr/sbin/nginx -g daemon off;
	// 29 nginx 3f1c2b9d7e6a nginx: worker process
	// 40 nonroot 9a8b7c6d5e4f /podkit topz --listen :8081
}
