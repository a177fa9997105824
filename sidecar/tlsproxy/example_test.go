package tlsproxy_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/sidecar/tlsproxy"
)

// Example puts HTTPS in front of a plain-HTTP "legacy" application on
// loopback, with a development certificate.
func Example() {
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s\n", r.Header.Get("X-Forwarded-Proto"))
	}))
	defer legacy.Close()

	cfg := tlsproxy.DefaultConfig()
	cfg.Target = legacy.Listener.Addr().String()
	cfg.SelfSigned = true
	cfg.Listener, _ = net.Listen("tcp", "127.0.0.1:0")
	p, err := tlsproxy.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}

	opts := container.DefaultOptions()
	opts.AdminAddr = "127.0.0.1:0"
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, p, opts) }()
	<-p.Ready()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// The self-signed certificate is for development only.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	resp, err := client.Get("https://" + p.Addr().String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))

	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// hello over https
	// stopped: <nil>
}
