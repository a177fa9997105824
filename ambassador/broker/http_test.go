package broker

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// backend is an HTTP server that answers "NAME XFF XFH" with status
// code, and its address.
func backend(t *testing.T, name string, code int) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(code)
		fmt.Fprintf(w, "%s %s %s %s", name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func httpGet(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHTTPBalancing: requests over keep-alive connections are balanced
// per request over the endpoints (weights honoured), with X-Forwarded-*.
func TestHTTPBalancing(t *testing.T) {
	a, b := backend(t, "a", 200), backend(t, "b", 200)
	cfg := flagConfig("static:"+a+";weight=2,"+b, HTTP)
	cfg.Upstream.HealthCheck.Type = CheckHTTP
	cfg.Upstream.HealthCheck.Path = "/healthz"
	r := start(t, cfg)
	url := "http://" + r.addr("up") + "/x"
	counts := map[string]int{}
	c := &http.Client{}
	for range 30 {
		code, body := httpGet(t, c, "GET", url, "")
		if code != 200 {
			t.Fatalf("GET = %d %q", code, body)
		}
		f := strings.Fields(body)
		if len(f) != 4 || f[1] != "127.0.0.1" || f[2] != r.addr("up") || f[3] != "http" {
			t.Fatalf("answer %q: want the name, X-Forwarded-For 127.0.0.1, X-Forwarded-Host and -Proto http", body)
		}
		counts[f[0]]++
	}
	if counts["a"] != 20 || counts["b"] != 10 {
		t.Errorf("requests per endpoint %v, want a:20 b:10 (weights 2 and 1)", counts)
	}
	// The count follows the response's last byte.
	testdeps.WaitFor(t, "requests{a,2xx} = 20", func() bool { return r.counter("requests", "up", a, "2xx") == 20 })
}

// TestHTTPRetry: a GET whose connect fails is retried on another
// endpoint, so the client sees none of the failures; a POST is not.
func TestHTTPRetry(t *testing.T) {
	live, dead := backend(t, "live", 200), deadAddr(t)
	cfg := flagConfig(static(dead, live), HTTP)
	cfg.Upstream.HealthCheck.Type = CheckNone
	cfg.Upstream.Outlier.Failures = 0
	cfg.Upstream.Retries.Budget = 1
	r := start(t, cfg)
	url := "http://" + r.addr("up") + "/"
	c := &http.Client{}
	for i := range 10 {
		if code, body := httpGet(t, c, "GET", url, ""); code != 200 {
			t.Fatalf("GET %d = %d %q, want 200 (retried)", i, code, body)
		}
	}
	if n := r.counter("connect_errors", "up", dead); n < 1 {
		t.Errorf("connect errors to the dead endpoint = %v", n)
	}
	var failed int
	for range 10 {
		code, body := httpGet(t, c, "POST", url, "data")
		switch code {
		case 200:
		case 502:
			failed++
			if !strings.Contains(body, dead) {
				t.Errorf("the 502 does not name the endpoint: %q", body)
			}
		default:
			t.Fatalf("POST = %d %q", code, body)
		}
	}
	if failed != 5 {
		t.Errorf("%d of 10 POSTs failed, want 5 (not retried: every other one goes to the dead endpoint)", failed)
	}
}

// TestHTTP5xxEjection: an endpoint answering 5xx is ejected after the
// configured run of failures and takes no more requests meanwhile.
func TestHTTP5xxEjection(t *testing.T) {
	bad, good := backend(t, "bad", 500), backend(t, "good", 200)
	cfg := flagConfig(static(bad, good), HTTP)
	cfg.Upstream.HealthCheck.Type = CheckNone
	cfg.Upstream.Outlier.Ejection, cfg.Upstream.Outlier.MaxEjection = time.Minute, time.Minute
	r := start(t, cfg)
	url := "http://" + r.addr("up") + "/"
	c := &http.Client{}
	var fivexx int
	for range 20 {
		if code, _ := httpGet(t, c, "GET", url, ""); code == 500 {
			fivexx++
		}
	}
	if fivexx != 3 {
		t.Errorf("%d answers were 500, want 3 (ejected after 3 in a row)", fivexx)
	}
	e, _ := r.endpoint("up", bad)
	if !e.Ejected || e.Usable {
		t.Errorf("the 5xx endpoint: %+v, want ejected", e)
	}
	testdeps.WaitFor(t, "requests{5xx} = 3", func() bool { return r.counter("requests", "up", bad, "5xx") == 3 })
}

// TestHTTPH2C: an HTTP/2 client with prior knowledge (h2c) is served
// through the same endpoints; HTTP/1 clients on the same port too.
func TestHTTPH2C(t *testing.T) {
	a := backend(t, "a", 200)
	r := start(t, flagConfig(static(a), HTTP))
	url := "http://" + r.addr("up") + "/h2"
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	for range 3 {
		resp, err := h2.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasPrefix(string(body), "a 127.0.0.1") {
			t.Fatalf("h2c GET = %d %s %q", resp.StatusCode, resp.Proto, body)
		}
	}
	if code, _ := httpGet(t, &http.Client{}, "GET", url, ""); code != 200 {
		t.Errorf("HTTP/1 GET on the same port = %d", code)
	}
}

// TestHTTPNoEndpointAndTimeout: no usable endpoint is a 503 naming the
// upstream and why; an endpoint that does not answer within the request
// timeout is a 504.
func TestHTTPNoEndpointAndTimeout(t *testing.T) {
	dead := deadAddr(t)
	r := start(t, flagConfig(static(dead), HTTP))
	url := "http://" + r.addr("up") + "/"
	testdeps.WaitFor(t, "a 503 naming the upstream", func() bool {
		code, body := httpGet(t, &http.Client{}, "GET", url, "")
		return code == 503 && strings.Contains(body, `upstream "up"`) && strings.Contains(body, "no usable endpoint")
	})

	silent := testdeps.ServeTCP(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c)
	})
	cfg := flagConfig(static(silent.Addr()), HTTP)
	cfg.Upstream.Timeouts.Request = 300 * time.Millisecond
	r2 := start(t, cfg)
	code, body := httpGet(t, &http.Client{}, "GET", "http://"+r2.addr("up")+"/", "")
	if code != 504 {
		t.Errorf("silent endpoint: %d %q, want 504", code, body)
	}
}

// TestHTTPRingHashHeader: with hash_key header:X-User, one user's
// requests all go to one endpoint.
func TestHTTPRingHashHeader(t *testing.T) {
	a, b, c := backend(t, "a", 200), backend(t, "b", 200), backend(t, "c", 200)
	cfg := flagConfig(static(a, b, c), HTTP)
	cfg.Upstream.Balance, cfg.Upstream.HashKey = "ring-hash", "header:X-User"
	r := start(t, cfg)
	url := "http://" + r.addr("up") + "/"
	client := &http.Client{}
	seen := map[string]map[string]bool{}
	// 40 users: the endpoints' ports (and so their places on the ring)
	// change from run to run, and with few users all of them could land
	// on one endpoint by chance; with 40 that chance is nil.
	for i := range 120 {
		user := fmt.Sprintf("user%d", i%40)
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-User", user)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if seen[user] == nil {
			seen[user] = map[string]bool{}
		}
		seen[user][strings.Fields(string(body))[0]] = true
	}
	all := map[string]bool{}
	for u, s := range seen {
		if len(s) != 1 {
			t.Errorf("%s went to %v, want one endpoint", u, s)
		}
		for k := range s {
			all[k] = true
		}
	}
	if len(all) < 2 {
		t.Errorf("40 users all went to %v", all)
	}
}

// TestHTTPMaxRequests: over --max-requests a request is answered 503 at
// once, naming the limit, and counted. The request still in flight at
// the end outlives the drain timeout: the stop then closes it, backend
// side included, and Run returns (the test fails otherwise).
func TestHTTPMaxRequests(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	cfg := flagConfig(static(strings.TrimPrefix(s.URL, "http://")), HTTP)
	cfg.Upstream.Limits.MaxRequests = 1
	r := start(t, cfg)
	url := "http://" + r.addr("up")
	go http.Get(url + "/slow")
	testdeps.WaitFor(t, "one request in flight", func() bool {
		e, _ := r.endpoint("up", strings.TrimPrefix(s.URL, "http://"))
		return e.InFlight == 1
	})
	code, body := httpGet(t, &http.Client{}, "GET", url+"/fast", "")
	if code != 503 || !strings.Contains(body, "limit") {
		t.Errorf("over the limit: %d %q, want 503 naming the limit", code, body)
	}
	if n := r.counter("rejected", "up", reasonOverloaded); n != 1 {
		t.Errorf("rejected{overloaded} = %v, want 1", n)
	}
}

// TestHTTPEndpointKilledUnderLoad: GETs under load while one endpoint
// dies: its failed connects are retried on the other endpoint, so no
// GET fails, and it is ejected after a bounded number of failures.
func TestHTTPEndpointKilledUnderLoad(t *testing.T) {
	live := backend(t, "live", 200)
	victim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "victim") }))
	t.Cleanup(victim.Close)
	vaddr := strings.TrimPrefix(victim.URL, "http://")
	cfg := flagConfig(static(live, vaddr), HTTP)
	cfg.Upstream.HealthCheck.Type = CheckNone // outlier ejection alone
	cfg.Upstream.Outlier.Ejection, cfg.Upstream.Outlier.MaxEjection = time.Minute, time.Minute
	cfg.Upstream.Retries.Budget = 1
	r := start(t, cfg)
	url := "http://" + r.addr("up") + "/"
	var (
		ok, failed atomic.Int64
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	testdeps.WaitFor(t, "load on the victim", func() bool { return r.counter("requests", "up", vaddr, "2xx") > 20 })
	victim.CloseClientConnections()
	victim.Close()
	testdeps.WaitFor(t, "the victim ejected", func() bool {
		e, _ := r.endpoint("up", vaddr)
		return e.Ejected
	})
	errs := r.counter("connect_errors", "up", vaddr)
	t.Logf("failed connects to the dead endpoint before its ejection: %v; failed GETs: %d", errs, failed.Load())
	n := ok.Load()
	testdeps.WaitFor(t, "more load", func() bool { return ok.Load() > n+200 })
	if after := r.counter("connect_errors", "up", vaddr); after != errs {
		t.Errorf("connects to the ejected endpoint went on: %v, then %v", errs, after)
	}
	// GETs in flight on the victim's connections when it closed them
	// may fail; none after.
	if f := failed.Load(); f > 4 {
		t.Errorf("%d GETs failed, want at most one per client (those in flight when the endpoint died)", f)
	}
}
