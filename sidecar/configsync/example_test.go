package configsync_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/podkit/podkit/sidecar/configsync"
)

// Render a JSON source into an nginx snippet, check it, and publish it
// atomically. Under `podkit config-sync` the same pipeline runs on every
// change of the source, followed by a reload (--process-name nginx).
func ExampleSyncer_Sync() {
	dir, err := os.MkdirTemp("", "configsync-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "backends.json")
	tmpl := filepath.Join(dir, "upstream.conf.tmpl")
	os.WriteFile(src, []byte(`{"backends": ["10.0.0.1:8080", "10.0.0.2:8080"]}`), 0o644)
	os.WriteFile(tmpl, []byte("upstream app {\n{{- range (fromJSON .Data).backends}}\n    server {{.}};\n{{- end}}\n}\n"), 0o644)

	cfg := configsync.DefaultConfig()
	cfg.Source = src
	cfg.Template = tmpl
	cfg.Dest = filepath.Join(dir, "conf.d", "upstream.conf")
	cfg.ValidateCmd = "grep -q server {}" // e.g. "nginx -t -c {}"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := configsync.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	res, err := s.Sync(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	b, _ := os.ReadFile(cfg.Dest)
	fmt.Printf("changed=%v\n%s", res.Changed, b)
	// Output:
	// changed=true
	// upstream app {
	//     server 10.0.0.1:8080;
	//     server 10.0.0.2:8080;
	// }
}
