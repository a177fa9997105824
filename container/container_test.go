package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// httpComponent serves a handler with a /slow endpoint under ServeHTTP.
type httpComponent struct {
	ln      net.Listener
	secret  Secret
	release chan struct{}
	checks  []Check
	hostc   chan *Host
}

func (c *httpComponent) Name() string { return "testcomp" }

func (c *httpComponent) EffectiveConfig() any {
	return map[string]any{"listen": c.ln.Addr().String(), "password": c.secret, "dsn": RedactURL("postgres://u:hunter2@db/x")}
}

func (c *httpComponent) Run(ctx context.Context, h *Host) error {
	for _, ch := range c.checks {
		h.AddCheck(ch)
	}
	if c.hostc != nil {
		c.hostc <- h
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-c.release
		io.WriteString(w, "done")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	return ServeHTTP(ctx, h, &http.Server{Handler: mux}, c.ln)
}

func testListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

type running struct {
	admin  string
	cancel context.CancelFunc
	done   chan error
	host   *Host
}

func start(t *testing.T, c *httpComponent, mod func(*Options)) *running {
	t.Helper()
	adm := testListen(t)
	o := DefaultOptions()
	o.AdminListener = adm
	o.DrainDelay = 0
	o.DrainTimeout = 5 * time.Second
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if mod != nil {
		mod(&o)
	}
	c.hostc = make(chan *Host, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{admin: "http://" + adm.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, c, o) }()
	r.host = <-c.hostc
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func status(t *testing.T, url string) func() int {
	return func() int { c, _ := get(t, url); return c }
}

func TestAdminEndpoints(t *testing.T) {
	c := &httpComponent{ln: testListen(t), secret: "s3cret", release: make(chan struct{})}
	r := start(t, c, nil)
	readyz := status(t, r.admin+"/readyz")
	testdeps.WaitFor(t, "ready", func() bool { return readyz() == 200 })

	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/livez", 200, "ok"},
		{"GET", "/readyz", 200, "ok"},
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/healthz?verbose", 200, `"status": "ok"`},
		{"GET", "/readyz?verbose", 200, `"ready": true`},
		{"GET", "/metrics", 200, "podkit_ready 1"},
		{"GET", "/metrics", 200, `podkit_build_info{commit=`},
		{"GET", "/info", 200, `"component": "testcomp"`},
		{"GET", "/info", 200, `"password": "[redacted]"`},
		{"GET", "/info", 200, `postgres://u:xxxxx@db/x`},
		{"POST", "/livez", 405, ""},
		{"DELETE", "/metrics", 405, ""},
		{"GET", "/pause", 405, ""},
		{"GET", "/quitquitquit", 405, ""},
		{"GET", "/nope", 404, ""},
		{"GET", "/", 200, "/readyz"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, r.admin+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.code, b)
			}
			if !strings.Contains(string(b), tt.body) {
				t.Fatalf("body does not contain %q:\n%s", tt.body, b)
			}
			if tt.path == "/info" && strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "hunter2") {
				t.Fatalf("secret leaked: %s", b)
			}
		})
	}
}

func TestPauseResume(t *testing.T) {
	c := &httpComponent{ln: testListen(t), release: make(chan struct{})}
	r := start(t, c, nil)
	readyz := status(t, r.admin+"/readyz")
	testdeps.WaitFor(t, "ready", func() bool { return readyz() == 200 })
	changed := r.host.PauseChanged()

	if code := post(t, r.admin+"/pause"); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	if code, body := get(t, r.admin+"/readyz"); code != 503 || !strings.Contains(body, "paused") {
		t.Fatalf("readyz while paused: %d %q", code, body)
	}
	select {
	case <-changed:
	default:
		t.Fatal("PauseChanged not closed by pause")
	}
	if !r.host.Paused() {
		t.Fatal("Paused() = false")
	}
	// Open traffic still works while paused: a proxy keeps serving.
	if code, _ := get(t, "http://"+c.ln.Addr().String()+"/"); code != 200 {
		t.Fatalf("traffic while paused: %d", code)
	}
	resumed := make(chan error, 1)
	go func() { resumed <- r.host.WaitResumed(context.Background()) }()
	if code := post(t, r.admin+"/resume"); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}
	if code := readyz(); code != 200 {
		t.Fatalf("readyz after resume: %d", code)
	}
	if _, m := get(t, r.admin+"/metrics"); !strings.Contains(m, "podkit_paused 0") {
		t.Fatalf("metrics after resume lack podkit_paused 0")
	}
}

func TestLoopbackOnly(t *testing.T) {
	h := newHost(&httpComponent{}, DefaultOptions(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	handler := h.AdminHandler()
	for _, path := range []string{"/quitquitquit", "/pause", "/resume"} {
		for _, tc := range []struct {
			remote string
			code   int
		}{
			{"10.1.2.3:4567", http.StatusForbidden},
			{"[2001:db8::1]:80", http.StatusForbidden},
			{"garbage", http.StatusForbidden},
			{"127.0.0.1:5555", http.StatusOK},
			{"[::1]:5555", http.StatusOK},
		} {
			req := httptest.NewRequest("POST", path, nil)
			req.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Errorf("POST %s from %s: %d, want %d", path, tc.remote, rec.Code, tc.code)
			}
		}
	}
	select {
	case reason := <-h.stopReq:
		if !strings.Contains(reason, "quitquitquit") {
			t.Errorf("stop reason %q", reason)
		}
	default:
		t.Error("loopback /quitquitquit did not request a stop")
	}
}

func TestReadinessChecks(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	c := &httpComponent{ln: testListen(t), release: make(chan struct{}), checks: []Check{
		{Name: "backend", Period: 20 * time.Millisecond, Ready: true, Func: func(context.Context) error {
			if fail.Load() {
				return errors.New("connection refused")
			}
			return nil
		}},
		{Name: "informational", Period: 20 * time.Millisecond, Func: func(context.Context) error { return errors.New("degraded") }},
		{Name: "panics", Period: time.Hour, Func: func(context.Context) error { panic("boom") }},
	}}
	r := start(t, c, nil)
	testdeps.WaitFor(t, "check to run", func() bool {
		_, b := get(t, r.admin+"/readyz")
		return strings.Contains(b, "check backend failing")
	})
	if code, _ := get(t, r.admin+"/livez"); code != 200 {
		t.Fatalf("livez must not depend on checks: %d", code)
	}
	fail.Store(false)
	readyz := status(t, r.admin+"/readyz")
	testdeps.WaitFor(t, "ready once backend passes", func() bool { return readyz() == 200 })
	// healthz still fails on the informational and the panicking checks.
	code, body := get(t, r.admin+"/healthz?verbose")
	if code != 503 {
		t.Fatalf("healthz: %d", code)
	}
	var v struct {
		Status string                 `json:"status"`
		Ready  bool                   `json:"ready"`
		Checks map[string]CheckResult `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != "fail" || !v.Ready || !v.Checks["backend"].OK || v.Checks["informational"].Error != "degraded" || !strings.Contains(v.Checks["panics"].Error, "panicked") {
		t.Fatalf("healthz detail: %s", body)
	}
	if _, m := get(t, r.admin+"/metrics"); !strings.Contains(m, `podkit_check_ok{check="backend"} 1`) || !strings.Contains(m, `podkit_check_ok{check="informational"} 0`) {
		t.Fatalf("check metrics missing:\n%s", m)
	}
}

// readEvents reads SSE events from the stream until it closes.
func readEvents(t *testing.T, body io.Reader, out chan<- Event) {
	defer close(out)
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var e Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Errorf("bad event %q: %v", data, err)
				return
			}
			out <- e
		}
	}
}

func TestDrainAndLifecycle(t *testing.T) {
	c := &httpComponent{ln: testListen(t), release: make(chan struct{})}
	r := start(t, c, func(o *Options) {
		o.DrainDelay = 200 * time.Millisecond
		o.DrainTimeout = 10 * time.Second
	})
	readyz := status(t, r.admin+"/readyz")
	testdeps.WaitFor(t, "ready", func() bool { return readyz() == 200 })

	resp, err := http.Get(r.admin + "/lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan Event, 16)
	go readEvents(t, resp.Body, events)

	// A request in flight when the stop begins.
	app := "http://" + c.ln.Addr().String()
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get(app + "/slow")
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- string(b)
	}()
	time.Sleep(100 * time.Millisecond) // let the request reach the handler

	r.cancel() // as SIGTERM
	testdeps.WaitFor(t, "readyz 503 while draining", func() bool { return readyz() == 503 })
	// After the drain delay the listener is closed: new connections are refused.
	testdeps.WaitFor(t, "new connections refused", func() bool {
		conn, err := net.DialTimeout("tcp", c.ln.Addr().String(), time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
	select {
	case err := <-r.done:
		t.Fatalf("Run returned before in-flight work finished: %v", err)
	default:
	}
	close(c.release)
	if got := <-inflight; got != "done" {
		t.Fatalf("in-flight request: %q", got)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		r.done <- nil // for cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after draining")
	}

	var types []string
	var draining Event
	for e := range events {
		types = append(types, e.Type)
		if e.Type == EventDraining {
			draining = e
		}
	}
	if got := strings.Join(types, ","); got != "starting,ready,draining,stopping" {
		t.Fatalf("lifecycle events %q", got)
	}
	if draining.Deadline.IsZero() || draining.Deadline.Before(draining.Time) {
		t.Fatalf("draining event without a future deadline: %+v", draining)
	}
}

func TestDrainTimeoutClosesStragglers(t *testing.T) {
	c := &httpComponent{ln: testListen(t), release: make(chan struct{})}
	r := start(t, c, func(o *Options) { o.DrainTimeout = 300 * time.Millisecond })
	readyz := status(t, r.admin+"/readyz")
	testdeps.WaitFor(t, "ready", func() bool { return readyz() == 200 })
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + c.ln.Addr().String() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		r.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain timeout")
	}
	close(c.release)
	if err := <-errc; err == nil {
		t.Fatal("straggler request succeeded; want it cut at the drain deadline")
	}
}

type exitingComponent struct{ err error }

func (c exitingComponent) Name() string                     { return "exiting" }
func (c exitingComponent) Run(context.Context, *Host) error { return c.err }

func TestComponentExitStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
		code int
	}{
		{nil, "", 0},
		{&ExitError{Code: 0}, "", 0},
		{&ExitError{Code: 3, Msg: "three"}, "three", 3},
		{errors.New("bind: address in use"), "bind: address in use", 1},
	} {
		o := DefaultOptions()
		o.AdminAddr = "off"
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		err := Run(context.Background(), exitingComponent{tc.err}, o)
		if tc.want == "" && tc.code == 0 {
			if err != nil {
				t.Errorf("Run(%v) = %v, want nil", tc.err, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("Run(%v) = %v, want %q", tc.err, err, tc.want)
		}
		var ec interface{ ExitCode() int }
		if tc.code != 1 && (!errors.As(err, &ec) || ec.ExitCode() != tc.code) {
			t.Errorf("Run(%v) exit code, want %d", tc.err, tc.code)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"bad admin addr", func(o *Options) { o.AdminAddr = "nope" }, "--admin-addr"},
		{"bad port", func(o *Options) { o.AdminAddr = "127.0.0.1:99999" }, "--admin-addr"},
		{"bad format", func(o *Options) { o.LogFormat = "xml" }, "--log-format"},
		{"bad level", func(o *Options) { o.LogLevel = "loud" }, "--log-level"},
		{"negative delay", func(o *Options) { o.DrainDelay = -time.Second }, "--drain-delay"},
		{"zero timeout", func(o *Options) { o.DrainTimeout = 0 }, "--drain-timeout"},
		{"bad wait-for", func(o *Options) { o.WaitFor = []string{"udp://x:1"} }, "--wait-for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			tt.mod(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error naming %s", err, tt.want)
			}
		})
	}
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestWaitForHoldsReadiness(t *testing.T) {
	dep := testListen(t)
	depAddr := dep.Addr().String()
	dep.Close()
	c := &httpComponent{ln: testListen(t), release: make(chan struct{})}
	r := start(t, c, func(o *Options) { o.WaitFor = []string{"tcp://" + depAddr} })
	awaited := make(chan error, 1)
	go func() { awaited <- r.host.Awaited(context.Background()) }()
	time.Sleep(300 * time.Millisecond)
	if code, body := get(t, r.admin+"/readyz"); code != 503 || !strings.Contains(body, "wait-for") {
		t.Fatalf("readyz before dependency: %d %q", code, body)
	}
	select {
	case <-awaited:
		t.Fatal("Awaited returned before the dependency answered")
	default:
	}
	l, err := net.Listen("tcp", depAddr)
	if err != nil {
		t.Skipf("could not re-listen on %s: %v", depAddr, err)
	}
	defer l.Close()
	if err := <-awaited; err != nil {
		t.Fatal(err)
	}
	readyz := status(t, r.admin+"/readyz")
	testdeps.WaitFor(t, "ready after dependency", func() bool { return readyz() == 200 })
}

type reloadComponent struct {
	installed chan struct{}
	got       chan struct{}
}

func (c *reloadComponent) Name() string { return "reloader" }

func (c *reloadComponent) Run(ctx context.Context, h *Host) error {
	r := h.sighups()
	close(c.installed) // SIGHUP is caught from here on
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r:
			c.got <- struct{}{}
		}
	}
}

func TestReloadsOnSIGHUP(t *testing.T) {
	c := &reloadComponent{installed: make(chan struct{}), got: make(chan struct{}, 4)}
	o := DefaultOptions()
	o.AdminAddr = "off"
	o.DrainDelay = 0
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, o) }()
	<-c.installed
	for i := 0; i < 2; i++ {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("no reload after SIGHUP %d", i+1)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// slowStop stops only when released after its context ends.
type slowStop struct{ release chan struct{} }

func (c slowStop) Name() string { return "slowstop" }
func (c slowStop) Run(ctx context.Context, h *Host) error {
	<-ctx.Done()
	<-c.release
	return nil
}

// TestWaitTimeoutDuringStop: a --wait-timeout that expires while a stop
// asked for otherwise (SIGTERM, the context) is under way does not turn
// that stop into a failure.
func TestWaitTimeoutDuringStop(t *testing.T) {
	dep := testListen(t)
	depAddr := dep.Addr().String()
	dep.Close()
	o := DefaultOptions()
	o.AdminAddr = "off"
	o.DrainDelay = 0
	o.WaitFor = []string{"tcp://" + depAddr}
	o.WaitTimeout = 200 * time.Millisecond
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c := slowStop{release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, o) }()
	cancel()
	// Stay in the drain past the moment the wait would have timed out.
	time.Sleep(3 * o.WaitTimeout)
	close(c.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil: the stop was asked for before the wait timed out", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
