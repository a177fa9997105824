package tlsproxy

import (
	"io"
	"testing"

	"github.com/podkit/podkit/internal/testdeps"
)

// TestNginxBackend puts the proxy in front of a real nginx serving plain
// HTTP on loopback.
func TestNginxBackend(t *testing.T) {
	backend := testdeps.StartNginx(t, `server {
	listen 127.0.0.1:{{PORT}};
	location / { return 200 "from nginx $http_x_forwarded_proto $http_x_forwarded_for\n"; }
	location /chunk { default_type text/plain; chunked_transfer_encoding on; return 200 "x"; }
}`)
	if backend == "" {
		return
	}
	ca := testdeps.NewPKI(t, "test CA")
	r := serverProxy(t, ca, backend, nil)
	for _, h2 := range []bool{false, true} {
		c := httpsClient(ca, h2)
		for i := range 3 {
			resp, err := c.Get("https://" + r.addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "from nginx https 127.0.0.1\n" {
				t.Errorf("h2=%v request %d: %q", h2, i, b)
			}
		}
	}
}
