package httpproxy_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/podkit/podkit/internal/httpproxy"
)

// A plain HTTP/1.1 reverse proxy: accept connections and hand each to
// the engine, with one backend.
func Example() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s, forwarded for %s\n", r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	defer app.Close()

	p := httpproxy.New(httpproxy.Config{
		Name:          "example",
		Backend:       httpproxy.NewBackend("tcp", app.Listener.Addr().String(), 5*time.Second),
		IdleTimeout:   time.Minute,
		HeaderTimeout: 10 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				p.ServeConn(httpproxy.Client{Conn: c, Header: []byte("X-Forwarded-For: " + ip + "\r\n")})
			}()
		}
	}()

	resp, err := http.Get("http://" + ln.Addr().String() + "/hi")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: hello from /hi, forwarded for 127.0.0.1
}
