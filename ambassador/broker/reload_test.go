package broker

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// heldConn is a client connection through the broker that keeps doing
// round trips to an echo server until stopped, counting failures.
type heldConn struct {
	c      net.Conn
	trips  atomic.Int64
	failed atomic.Value // error
	stop   chan struct{}
	done   chan struct{}
}

func hold(t *testing.T, addr string) *heldConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &heldConn{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		buf := make([]byte, 8)
		for i := 0; ; i++ {
			select {
			case <-h.stop:
				return
			default:
			}
			msg := fmt.Sprintf("%08d", i%100000000)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, msg); err != nil {
				h.failed.Store(err)
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				h.failed.Store(fmt.Errorf("read %q, %v", buf, err))
				return
			}
			h.trips.Add(1)
		}
	}()
	t.Cleanup(func() { h.end(); c.Close() })
	testdeps.WaitFor(t, "round trips", func() bool { return h.trips.Load() > 10 })
	return h
}

func (h *heldConn) end() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

func (h *heldConn) err() error {
	if e, ok := h.failed.Load().(error); ok {
		return e
	}
	return nil
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderLoad: a reload keeps every established connection: an
// unchanged upstream keeps its listener, a changed one takes new
// settings for new connections, a removed one stops accepting while its
// connections go on; an added one listens. A bad file changes nothing
// and is counted.
func TestReloadUnderLoad(t *testing.T) {
	srv := echo(t)
	ports := make([]string, 4)
	for i := range ports {
		ports[i] = testdeps.FreePort(t)
	}
	up := func(name, port, extra string) string {
		return fmt.Sprintf("  - {name: %s, listen: '%s', source: 'static:%s'%s}\n", name, port, srv.Addr(), extra)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "broker.yaml")
	writeConfig(t, file, "upstreams:\n"+up("same", ports[0], "")+up("changed", ports[1], "")+up("removed", ports[2], ""))
	cfg := DefaultConfig()
	cfg.ConfigFile = file
	cfg.WatchInterval = 0 // reloads come from Reload only
	r := start(t, cfg)
	same, changed, removed := hold(t, r.addr("same")), hold(t, r.addr("changed")), hold(t, r.addr("removed"))

	writeConfig(t, file, "upstreams:\n"+up("same", ports[0], "")+up("changed", ports[1], ", balance: p2c, limits: {max_connections: 5}")+up("added", ports[3], ""))
	if err := r.b.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	n := [3]int64{same.trips.Load(), changed.trips.Load(), removed.trips.Load()}
	testdeps.WaitFor(t, "round trips after the reload on every held connection", func() bool {
		return same.trips.Load() > n[0]+100 && changed.trips.Load() > n[1]+100 && removed.trips.Load() > n[2]+100
	})
	for name, h := range map[string]*heldConn{"same": same, "changed": changed, "removed": removed} {
		if err := h.err(); err != nil {
			t.Errorf("connection to %q broke: %v", name, err)
		}
	}
	if got := r.b.Addr("changed"); got == nil || got.String() != ports[1] {
		t.Errorf("changed upstream listens on %v", got)
	}
	for _, u := range r.b.Upstreams() {
		if u.Name == "changed" && (u.Balance != "p2c" || u.Limits.MaxConnections != 5) {
			t.Errorf("changed upstream in force: %+v", u)
		}
	}
	if r.b.Addr("removed") != nil {
		t.Error("the removed upstream is still listed")
	}
	// (Another process on this machine may have taken the freed port:
	// what counts is that no connection there reaches the echo server.)
	if c, err := net.DialTimeout("tcp", ports[2], 5*time.Second); err == nil {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if got, err := echoOnce(c, "x"); err == nil {
			t.Errorf("the removed upstream still proxies connections (echoed %q)", got)
		}
		c.Close()
	}
	hold(t, r.addr("added"))
	hold(t, r.addr("changed"))

	// A bad file: refused, counted, nothing changes.
	writeConfig(t, file, "upstreams:\n  - {name: same, listen: [\n")
	if err := r.b.Reload(); err == nil || !strings.Contains(err.Error(), "YAML") {
		t.Errorf("bad file reload: %v", err)
	}
	writeConfig(t, file, "upstreams:\n"+up("same", ports[0], ", balance: nope"))
	if err := r.b.Reload(); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("invalid file reload: %v", err)
	}
	if !strings.Contains(r.metrics(), `podkit_broker_reloads_total{result="error"} 2`) {
		t.Errorf("reload errors not counted:\n%s", grep(r.metrics(), "reloads_total"))
	}
	n[0], n[1] = same.trips.Load(), changed.trips.Load()
	testdeps.WaitFor(t, "round trips after the refused reloads", func() bool {
		return same.trips.Load() > n[0]+100 && changed.trips.Load() > n[1]+100
	})
	if r.b.Addr("added") == nil || r.b.Addr("changed") == nil {
		t.Error("a refused reload changed the upstreams")
	}
	for _, h := range []*heldConn{same, changed} {
		if err := h.err(); err != nil {
			t.Errorf("a connection broke: %v", err)
		}
	}
}

// TestReloadOnFileChange: a change of the file is seen without SIGHUP.
func TestReloadOnFileChange(t *testing.T) {
	srv := echo(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "broker.yaml")
	body := func(names ...string) string {
		var sb strings.Builder
		sb.WriteString("upstreams:\n")
		for _, n := range names {
			fmt.Fprintf(&sb, "  - {name: %s, listen: '127.0.0.1:0', source: 'static:%s'}\n", n, srv.Addr())
		}
		return sb.String()
	}
	writeConfig(t, file, body("one"))
	cfg := DefaultConfig()
	cfg.ConfigFile = file
	cfg.WatchInterval = 100 * time.Millisecond
	r := start(t, cfg)
	writeConfig(t, file, body("one", "two"))
	testdeps.WaitFor(t, "the new upstream", func() bool { return r.b.Addr("two") != nil })
	hold(t, r.addr("two"))
}

// TestEndpointsAdmin: GET /endpoints lists every upstream's endpoints as
// JSON and as a table.
func TestEndpointsAdmin(t *testing.T) {
	srv := echo(t)
	dead := deadAddr(t)
	cfg := flagConfig("static:"+srv.Addr()+";zone=z1;weight=3,"+dead, TCP)
	r := start(t, cfg)
	testdeps.WaitFor(t, "the dead endpoint unhealthy", func() bool {
		e, _ := r.endpoint("up", dead)
		return e.Health == "unhealthy"
	})
	ups := r.endpointsJSON()
	if len(ups) != 1 || ups[0].Name != "up" || ups[0].Mode != TCP || ups[0].Usable != 1 || len(ups[0].Endpoints) != 2 {
		t.Fatalf("GET /endpoints: %+v", ups)
	}
	for _, e := range ups[0].Endpoints {
		switch e.Address {
		case srv.Addr():
			if e.Zone != "z1" || e.Weight != 3 || e.Health != "healthy" || !e.Usable {
				t.Errorf("live endpoint %+v", e)
			}
		case dead:
			if e.Health != "unhealthy" || e.Usable || e.LastCheckError == "" {
				t.Errorf("dead endpoint %+v", e)
			}
		}
	}
	code, text := r.get("/endpoints?format=text")
	if code != 200 || !strings.Contains(text, "UPSTREAM") || !strings.Contains(text, srv.Addr()) || !strings.Contains(grep(text, dead), "unhealthy") {
		t.Errorf("GET /endpoints?format=text = %d\n%s", code, text)
	}
	if code, _ := r.get("/endpoints?format=xml"); code != 400 {
		t.Errorf("format=xml: %d, want 400", code)
	}
}

// grep returns the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
