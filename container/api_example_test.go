package container_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/podkit/podkit/container"
)

// jobs is a component with an API of two roles: producers add jobs,
// workers take them; /healthz is public.
type jobs struct {
	sec  container.APISecurity
	addr chan string
}

func (j *jobs) Name() string { return "jobs" }

func (j *jobs) Run(ctx context.Context, h *container.Host) error {
	api, err := container.OpenAPI(ctx, h, container.APIConfig{
		Addr:     "127.0.0.1:0",
		Security: j.sec,
		Access: container.Access{
			Component: "jobs",
			Subsystem: "jobs",
			Roles:     []container.Role{{Name: "producer", Help: "adds jobs"}, {Name: "worker", Help: "takes jobs"}},
			Need: func(r *http.Request) []string {
				switch r.URL.Path {
				case "/healthz":
					return nil
				case "/add":
					return []string{"producer"}
				}
				return []string{"worker"}
			},
		},
	})
	if err != nil {
		return err
	}
	j.addr <- "http://" + api.Addr().String()
	return api.Serve(ctx, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := container.CallerOf(r)
		fmt.Fprintf(w, "%s as %s\n", r.URL.Path, id.Name)
	})})
}

// OpenAPI guards a component's API: here with bearer tokens, each with a
// name and roles; a request without the role it needs is refused with a
// JSON error naming that role.
func ExampleOpenAPI() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("# NAME ROLES TOKEN\nbuilder producer 6f1ae07b3d2c4e5f8a9b\n"), 0o600)

	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	j := &jobs{sec: container.APISecurity{TokenFiles: []string{tokens}}, addr: make(chan string, 1)}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, j, opts) }()
	base := <-j.addr

	get := func(path, token string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var refusal struct{ Reason, Role string }
		if json.Unmarshal(b, &refusal) == nil {
			fmt.Println(resp.StatusCode, refusal.Reason, refusal.Role)
			return
		}
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(b)))
	}
	get("/healthz", "")
	get("/add", "")
	get("/add", "6f1ae07b3d2c4e5f8a9b")
	get("/take", "6f1ae07b3d2c4e5f8a9b")

	stop()
	<-done
	// Output:
	// 200 /healthz as
	// 401 no_credential producer
	// 200 /add as token:builder
	// 403 wrong_role worker
}
