package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/sidecar/configsync"
)

// startConfigSync runs config-sync between two small in-process servers: a
// config source (GET with ETag, PUT a new version) and an app that reloads
// its file on POST /-/reload and refuses a config containing "broken"
// (so the rollback can be seen).
func startConfigSync(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	dir, err := d.tempDir("configsync")
	if err != nil {
		return nil, nil, err
	}
	dest := filepath.Join(dir, "app.conf")

	srcLn, err := d.listen()
	if err != nil {
		return nil, nil, err
	}
	appLn, err := d.listen()
	if err != nil {
		srcLn.Close()
		return nil, nil, err
	}

	// The config source: what a config service or an object store would be.
	var (
		mu     sync.Mutex
		config = "greeting = hello from podkit config-sync\n"
	)
	srcMux := http.NewServeMux()
	srcMux.HandleFunc("/config", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			sum := sha256.Sum256([]byte(config))
			etag := `"` + hex.EncodeToString(sum[:8]) + `"`
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, config)
		case http.MethodPut, http.MethodPost:
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			config = string(b)
			fmt.Fprintln(w, "stored; config-sync picks it up within a second")
		default:
			http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
		}
	})

	// The app: it loads its file at start and on POST /-/reload.
	var (
		appMu   sync.Mutex
		loaded  string
		reloads int
	)
	appMux := http.NewServeMux()
	appMux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		appMu.Lock()
		defer appMu.Unlock()
		fmt.Fprintf(w, "reloads: %d\nloaded config:\n%s", reloads, loaded)
	})
	appMux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(dest)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if strings.Contains(string(b), "broken") {
			http.Error(w, "refusing a config that says broken", http.StatusUnprocessableEntity)
			return
		}
		appMu.Lock()
		loaded, reloads = string(b), reloads+1
		appMu.Unlock()
		fmt.Fprintln(w, "reloaded")
	})
	srcSrv := &http.Server{Handler: srcMux, ReadHeaderTimeout: 5 * time.Second}
	appSrv := &http.Server{Handler: appMux, ReadHeaderTimeout: 5 * time.Second}
	go srcSrv.Serve(srcLn)
	go appSrv.Serve(appLn)

	cfg := configsync.DefaultConfig()
	cfg.Source = "http://" + srcLn.Addr().String() + "/config"
	cfg.Dest = dest
	cfg.PollInterval = time.Second
	cfg.ReloadURL = "http://" + appLn.Addr().String() + "/-/reload"
	cfg.ReloadRetries = 1
	cfg.Logger = d.cfg.Log
	s, err := configsync.New(cfg)
	if err != nil {
		srcSrv.Close()
		appSrv.Close()
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, s)
	if err != nil {
		srcSrv.Close()
		appSrv.Close()
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() {
		err := <-errc
		srcSrv.Close()
		appSrv.Close()
		done <- err
	}()
	src := "http://" + srcLn.Addr().String() + "/config"
	return []Endpoint{
		{"config-sync", "syncs the source to " + dest + ", reloads the app over HTTP (metrics: podkit_configsync_*)", admin + "/metrics"},
		{"config-sync", "the source: curl -X PUT --data-binary 'greeting = hi' " + src + " (a config with \"broken\" is rolled back)", src},
		{"config-sync", "the app: the config it loaded and its reload count", "http://" + appLn.Addr().String() + "/"},
	}, done, nil
}
