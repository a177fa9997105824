package demo

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/podkit/podkit/sidecar/tlsproxy"
)

// startTLSProxy runs a plain-HTTP "legacy" app on loopback and podkit
// tls-proxy in front of it with a self-signed certificate, plus the
// http→https redirect.
func startTLSProxy(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	appLn, err := d.listen()
	if err != nil {
		return nil, nil, err
	}
	app := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "legacy app (plain HTTP) says hello\nX-Forwarded-Proto: %s\nX-Forwarded-For: %s\nX-Forwarded-Host: %s\n",
				r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"))
		}),
	}
	go app.Serve(appLn)

	ln, err := d.listen()
	if err != nil {
		app.Close()
		return nil, nil, err
	}
	redirect := d.port()
	cfg := tlsproxy.DefaultConfig()
	cfg.Listen = ln.Addr().String()
	cfg.Target = appLn.Addr().String()
	cfg.SelfSigned = true
	cfg.RedirectHTTP = redirect
	cfg.TargetHealthPeriod = time.Second
	cfg.Logger = d.cfg.Log
	cfg.Listener = ln
	p, err := tlsproxy.New(cfg)
	if err != nil {
		ln.Close()
		app.Close()
		return nil, nil, err
	}
	admin, errc, err := d.run(ctx, p)
	if err != nil {
		ln.Close()
		app.Close()
		return nil, nil, err
	}
	out := make(chan error, 1)
	go func() {
		err := <-errc
		app.Close()
		out <- err
	}()
	return []Endpoint{
		{"tls-proxy", "HTTPS (h2, http/1.1) in front of a plain-HTTP app; self-signed: curl -k", "https://" + ln.Addr().String() + "/"},
		{"tls-proxy", "plain HTTP: 301 to https", "http://" + redirect + "/"},
		{"tls-proxy", "admin: readiness follows the app; cert expiry on /metrics", admin + "/metrics"},
		{"tls-proxy", "the legacy app itself (loopback, plain HTTP)", "http://" + appLn.Addr().String() + "/"},
	}, out, nil
}
