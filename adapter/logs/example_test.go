package logs_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/podkit/podkit/adapter/logs"
	"github.com/podkit/podkit/container"
)

// The adapter reads standard input (here a string) until it ends and
// writes one JSON line per event: a log4j line with its Java stack trace
// merged, and a JSON line, both normalized.
func Example() {
	cfg := logs.DefaultConfig()
	cfg.Multiline = "java"
	cfg.Stdin = strings.NewReader(`2024-01-02 03:04:05,678 ERROR [main] com.example.App - request failed
java.lang.IllegalStateException: boom
	at com.example.App.run(App.java:42)
{"time":"2024-01-02T04:04:05.5+01:00","level":"warn","msg":"disk low","free_mb":12}
`)
	cfg.Stdout = os.Stdout
	l, err := logs.New(cfg)
	if err != nil {
		panic(err)
	}
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := container.Run(context.Background(), l, opts); err != nil {
		panic(err)
	}
	// Output:
	// {"timestamp":"2024-01-02T03:04:05.678000000Z","severity":"ERROR","body":"request failed\njava.lang.IllegalStateException: boom\n\tat com.example.App.run(App.java:42)","attributes":{"thread.name":"main","logger.name":"com.example.App","log.format":"log4j","multiline.lines":3},"source":{"type":"stdin"}}
	// {"timestamp":"2024-01-02T03:04:05.500000000Z","severity":"WARN","body":"disk low","attributes":{"free_mb":12,"log.format":"json"},"source":{"type":"stdin"}}
}
