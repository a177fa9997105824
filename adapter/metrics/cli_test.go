package metrics

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestCommandUsage runs the real command line: bad flags exit 2 with a
// message naming the flag.
func TestCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"metrics"}, "", "no target"},
		{[]string{"metrics", "--nginx", "ftp://x"}, "", `--nginx "ftp://x"`},
		{[]string{"metrics", "--redis", "h:1", "--timeout", "soon"}, "", "--timeout"},
		{[]string{"metrics", "--redis", "h:1", "extra"}, "", "unexpected argument"},
		{[]string{"metrics"}, "PODKIT_MYSQL=u:pw@tcp(h:1)/db", "carries a password"},
	} {
		t.Run(strings.Join(tc.args, " ")+tc.env, func(t *testing.T) {
			if k, v, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			code := cli.Main(context.Background(), []cli.Command{Command()}, tc.args, cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String(), ":pw@") {
				t.Fatalf("the password is in the error: %s", stderr.String())
			}
		})
	}
}

// TestBinary runs the real podkit binary as a subprocess, scrapes it, and
// stops it with SIGTERM.
func TestBinary(t *testing.T) {
	bin := testdeps.BuildPodkit(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0\n")
	})
	nginx, nginx2 := httptest.NewServer(h), httptest.NewServer(h)
	defer nginx.Close()
	defer nginx2.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "metrics", "--admin-addr", "off", "--drain-delay", "0s")
	cmd.Env = append(os.Environ(), "PODKIT_LISTEN="+addr, "PODKIT_NGINX="+nginx.URL+"/status,"+nginx2.URL+"/status")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var body string
	testdeps.WaitFor(t, "the binary to serve /metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == 200
	})
	if n := strings.Count(body, "\nnginx_up{"); n != 2 {
		t.Fatalf("%d nginx_up samples, want 2 (two targets from PODKIT_NGINX):\n%s", n, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}
