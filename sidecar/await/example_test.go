package await_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/sidecar/await"
)

// An await component runs a command and exits with its status; in a pod,
// --notify would tell the sidecars to stop.
func Example() {
	cfg := await.DefaultConfig()
	cfg.Command = []string{"sh", "-c", "echo job done; exit 3"}
	cfg.Stdout = os.Stdout
	a, err := await.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	err = container.Run(context.Background(), a, opts)
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		fmt.Println("exit status", ec.ExitCode())
	}
	// Output:
	// job done
	// exit status 3
}
