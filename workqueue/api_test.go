package workqueue

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/workqueue/store/wal"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type testServer struct {
	*httptest.Server
	paused atomic.Bool
}

func newTestServer(t *testing.T, o HandlerOptions) *testServer {
	t.Helper()
	s := wal.OpenMemory(wal.Options{Logger: quiet(), BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	ts := &testServer{}
	o.Logger = quiet()
	o.Paused = ts.paused.Load
	api := NewHandler(s, o)
	ts.Server = httptest.NewServer(api)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, url, ctype, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &a.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %q", method, url, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, url, ct)
		}
	}
	return a
}

func TestAPIErrors(t *testing.T) {
	ts := newTestServer(t, HandlerOptions{MaxPayload: 100, Queues: []string{"jobs"}, StrictQueues: true})
	big := `{"payload":"` + strings.Repeat("x", 200) + `"}`
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		errHas                          string
	}{
		{"malformed JSON", "POST", "/queues/jobs/items", "", `{"payload": `, 400, "line 1"},
		{"malformed NDJSON names the line", "POST", "/queues/jobs/items", "application/x-ndjson", "{\"payload\":1}\n{\"payload\":2}\n{\"payload\" 3}\n", 400, "line 3"},
		{"not an object", "POST", "/queues/jobs/items", "", `"hello"`, 400, "JSON object"},
		{"empty body", "POST", "/queues/jobs/items", "", ``, 400, "empty body"},
		{"empty array", "POST", "/queues/jobs/items", "", `[]`, 400, "empty array"},
		{"unknown field", "POST", "/queues/jobs/items", "", `{"payload":1,"priorty":2}`, 400, `unknown field "priorty"`},
		{"wrong type", "POST", "/queues/jobs/items", "", `{"payload":1,"priority":"high"}`, 400, `field "priority"`},
		{"bad delay", "POST", "/queues/jobs/items", "", `{"payload":1,"delay":"soon"}`, 400, "delay"},
		{"delay and not_before", "POST", "/queues/jobs/items", "", `{"payload":1,"delay":"1s","not_before":"2030-01-01T00:00:00Z"}`, 400, "not both"},
		{"bad not_before", "POST", "/queues/jobs/items", "", `{"payload":1,"not_before":"tomorrow"}`, 400, "RFC 3339"},
		{"bad timeout", "POST", "/queues/jobs/items", "", `{"payload":1,"timeout":"0s"}`, 400, "timeout"},
		{"bad max_attempts", "POST", "/queues/jobs/items", "", `{"payload":1,"max_attempts":-3}`, 400, "max_attempts"},
		{"payload too large", "POST", "/queues/jobs/items", "", big, 413, "--max-payload"},
		{"unknown queue (strict)", "POST", "/queues/other/items", "", `{"payload":1}`, 404, "--strict-queues"},
		{"bad queue name", "POST", "/queues/bad%20name/items", "", `{"payload":1}`, 400, "queue name"},
		{"wrong method", "PUT", "/queues/jobs/items", "", `{}`, 405, "not allowed"},
		{"wrong method on lease", "GET", "/queues/jobs/lease", "", ``, 405, "POST"},
		{"unknown path", "GET", "/nope", "", ``, 404, "no such endpoint"},
		{"bad token", "POST", "/leases/garbage/ack", "", ``, 400, "malformed lease token"},
		{"stale token", "POST", "/leases/123.1.00000000000000aa/ack", "", ``, 409, "stale lease"},
		{"unknown lease op", "POST", "/leases/123.1.00000000000000aa/finish", "", ``, 404, "heartbeat, ack or nack"},
		{"batch ack without tokens", "POST", "/leases/ack", "", `{}`, 400, "no leases"},
		{"batch ack malformed", "POST", "/leases/ack", "", `{"tokens": "x"}`, 400, `field "tokens"`},
		{"nack bad retry_after", "POST", "/leases/123.1.00000000000000aa/nack", "", `{"error":"x","retry_after":"later"}`, 400, "retry_after"},
		{"lease bad wait", "POST", "/queues/jobs/lease", "", `{"wait_seconds": -1}`, 400, "wait_seconds"},
		{"lease bad max_items", "POST", "/queues/jobs/lease", "", `{"max_items": 0}`, 400, "max_items"},
		{"lease unknown field", "POST", "/queues/jobs/lease", "", `{"wait": 1}`, 400, `unknown field "wait"`},
		{"get missing item", "GET", "/queues/jobs/items/999", "", ``, 404, "no item"},
		{"get bad id", "GET", "/queues/jobs/items/abc", "", ``, 404, "not an item id"},
		{"list bad state", "GET", "/queues/jobs/items?state=finished", "", ``, 400, "unknown state"},
		{"list bad limit", "GET", "/queues/jobs/items?limit=0", "", ``, 400, "limit"},
		{"list bad cursor", "GET", "/queues/jobs/items?cursor=zz", "", ``, 400, "cursor"},
		{"replay unknown item", "POST", "/queues/jobs/dead/replay", "", `{"ids":["12345"]}`, 404, "not found"},
		{"replay bad body", "POST", "/queues/jobs/dead/replay", "", `{"id":"1"}`, 400, "unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, tc.method, ts.URL+tc.path, tc.ctype, tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", a.status, tc.status, a.raw)
			}
			msg, _ := a.body["error"].(string)
			if !strings.Contains(msg, tc.errHas) {
				t.Fatalf("error %q does not contain %q", msg, tc.errHas)
			}
		})
	}
	// Nothing was stored by any of the bad requests.
	a := call(t, "GET", ts.URL+"/queues/jobs", "", "")
	if a.status != 200 || a.body["enqueued_total"].(float64) != 0 {
		t.Fatalf("after bad requests: %d %s", a.status, a.raw)
	}
}

func TestAPIWorkerContract(t *testing.T) {
	ts := newTestServer(t, HandlerOptions{})
	u := ts.URL
	a := call(t, "POST", u+"/queues/q/items", "", `{"payload":{"n":1},"idempotency_key":"a"}`)
	if a.status != 201 || a.body["id"] == "" {
		t.Fatalf("enqueue: %d %s", a.status, a.raw)
	}
	id := a.body["id"].(string)
	a = call(t, "POST", u+"/queues/q/items", "", `{"payload":{"n":1},"idempotency_key":"a"}`)
	if a.status != 200 || a.body["id"] != id || a.body["duplicate"] != true {
		t.Fatalf("repeated idempotency key: %d %s", a.status, a.raw)
	}
	a = call(t, "POST", u+"/queues/q/lease", "", ``)
	if a.status != 200 || a.body["id"] != id || a.body["attempt"].(float64) != 1 || a.body["token"] == "" || a.body["deadline"] == "" {
		t.Fatalf("lease: %d %s", a.status, a.raw)
	}
	if p, _ := json.Marshal(a.body["payload"]); string(p) != `{"n":1}` {
		t.Fatalf("payload %s", p)
	}
	tok := a.body["token"].(string)
	if a := call(t, "POST", u+"/queues/q/lease", "", `{"wait_seconds":0.05}`); a.status != 204 {
		t.Fatalf("lease of an empty queue: %d %s", a.status, a.raw)
	}
	a = call(t, "POST", u+"/leases/"+tok+"/heartbeat", "", ``)
	if a.status != 200 || a.body["deadline"] == nil {
		t.Fatalf("heartbeat: %d %s", a.status, a.raw)
	}
	a = call(t, "POST", u+"/leases/"+tok+"/nack", "text/plain", "exit status 3: disk on fire\n")
	if a.status != 200 {
		t.Fatalf("nack: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", u+"/leases/"+tok+"/ack", "", ``); a.status != 409 {
		t.Fatalf("ack after nack with the same token: %d, want 409", a.status)
	}
	a = call(t, "POST", u+"/queues/q/lease", "", `{"wait_seconds":5}`)
	if a.status != 200 || a.body["attempt"].(float64) != 2 {
		t.Fatalf("retry lease: %d %s", a.status, a.raw)
	}
	tok2 := a.body["token"].(string)
	if a := call(t, "POST", u+"/leases/"+tok+"/ack", "", ``); a.status != 409 {
		t.Fatalf("ack with the first attempt's token: %d, want 409", a.status)
	}
	if a := call(t, "POST", u+"/leases/"+tok2+"/ack", "", ``); a.status != 200 || a.body["state"] != "done" {
		t.Fatalf("ack: %d %s", a.status, a.raw)
	}
	a = call(t, "GET", u+"/queues/q/items/"+id, "", ``)
	if a.status != 200 || a.body["state"] != "done" || a.body["last_error"] != "exit status 3: disk on fire\n" || a.body["timeout"] != "30s" {
		t.Fatalf("get: %d %s", a.status, a.raw)
	}
	a = call(t, "GET", u+"/queues/q", "", ``)
	if a.status != 200 || a.body["name"] != "q" || a.body["done"].(float64) != 1 || a.body["stale_completions_total"].(float64) != 2 {
		t.Fatalf("stats: %d %s", a.status, a.raw)
	}
	for _, k := range []string{"ready", "delayed", "leased", "dead", "oldest_ready_age_seconds", "enqueued_per_second", "acked_per_second"} {
		if _, ok := a.body[k]; !ok {
			t.Errorf("stats lack %q", k)
		}
	}
	if a := call(t, "GET", u+"/queues/q/drained", "", ``); a.status != 200 || a.body["drained"] != true {
		t.Fatalf("drained: %d %s", a.status, a.raw)
	}
}

func TestAPIBatches(t *testing.T) {
	ts := newTestServer(t, HandlerOptions{MaxPayload: 50})
	u := ts.URL
	// Array and NDJSON forms; each item answered on its own.
	a := call(t, "POST", u+"/queues/b/items", "", `[{"payload":1},{"payload":2,"priority":9},{"payload":3,"delay":"bad"},{"payload":"`+strings.Repeat("y", 60)+`"}]`)
	if a.status != 200 {
		t.Fatalf("array enqueue: %d %s", a.status, a.raw)
	}
	items := a.body["items"].([]any)
	want := []float64{201, 201, 400, 413}
	for i, it := range items {
		m := it.(map[string]any)
		if m["status"].(float64) != want[i] {
			t.Errorf("item %d: %v, want status %v", i, m, want[i])
		}
	}
	a = call(t, "POST", u+"/queues/b/items", "application/x-ndjson", "{\"payload\":4}\n\n{\"payload\":5,\"idempotency_key\":\"k\"}\n{\"payload\":6,\"idempotency_key\":\"k\"}\n")
	if a.status != 200 || len(a.body["items"].([]any)) != 3 {
		t.Fatalf("ndjson enqueue: %d %s", a.status, a.raw)
	}
	if m := a.body["items"].([]any)[2].(map[string]any); m["status"].(float64) != 200 || m["duplicate"] != true {
		t.Fatalf("duplicate in a batch: %v", m)
	}
	if a := call(t, "GET", u+"/queues/b", "", ``); a.body["ready"].(float64) != 4 {
		t.Fatalf("ready %v, want 4", a.body["ready"])
	}
	a = call(t, "POST", u+"/queues/b/lease", "", `{"max_items": 10}`)
	if a.status != 200 || len(a.body["items"].([]any)) != 4 {
		t.Fatalf("batch lease: %d %s", a.status, a.raw)
	}
	first := a.body["items"].([]any)[0].(map[string]any)
	if p, _ := json.Marshal(first["payload"]); string(p) != "2" {
		t.Fatalf("priority 9 not first: %s", p)
	}
	var toks []string
	for _, it := range a.body["items"].([]any) {
		toks = append(toks, it.(map[string]any)["token"].(string))
	}
	hb, _ := json.Marshal(map[string]any{"tokens": toks})
	if a := call(t, "POST", u+"/leases/heartbeat", "", string(hb)); a.status != 200 {
		t.Fatalf("batch heartbeat: %d %s", a.status, a.raw)
	}
	body, _ := json.Marshal(map[string]any{"tokens": append(toks[:3:3], "bogus")})
	a = call(t, "POST", u+"/leases/ack", "", string(body))
	if a.status != 200 {
		t.Fatalf("batch ack: %d %s", a.status, a.raw)
	}
	res := a.body["results"].([]any)
	for i, want := range []float64{200, 200, 200, 400} {
		if got := res[i].(map[string]any)["status"].(float64); got != want {
			t.Errorf("ack %d: status %v, want %v", i, got, want)
		}
	}
	nb, _ := json.Marshal(map[string]any{"items": []map[string]any{{"token": toks[3], "error": "no", "retry_after": 0.01}, {"token": toks[0]}}})
	a = call(t, "POST", u+"/leases/nack", "", string(nb))
	res = a.body["results"].([]any)
	if res[0].(map[string]any)["status"].(float64) != 200 || res[1].(map[string]any)["status"].(float64) != 409 {
		t.Fatalf("batch nack: %s", a.raw)
	}
}

func TestAPIListCancelReplayDead(t *testing.T) {
	ts := newTestServer(t, HandlerOptions{})
	u := ts.URL
	call(t, "POST", u+"/queues/d/items", "", `[{"payload":1,"max_attempts":1},{"payload":2},{"payload":3}]`)
	a := call(t, "POST", u+"/queues/d/lease", "", ``)
	call(t, "POST", u+"/leases/"+a.body["token"].(string)+"/nack", "application/json", `{"error":"bad input"}`)
	a = call(t, "GET", u+"/queues/d/dead", "", ``)
	if len(a.body["items"].([]any)) != 1 {
		t.Fatalf("dead: %s", a.raw)
	}
	dead := a.body["items"].([]any)[0].(map[string]any)
	if dead["last_error"] != "bad input" {
		t.Fatalf("dead item: %v", dead)
	}
	a = call(t, "GET", u+"/queues/d/items?limit=2", "", ``)
	if len(a.body["items"].([]any)) != 2 || a.body["next_cursor"] == "" {
		t.Fatalf("page 1: %s", a.raw)
	}
	a = call(t, "GET", u+"/queues/d/items?limit=2&cursor="+a.body["next_cursor"].(string), "", ``)
	if len(a.body["items"].([]any)) != 1 {
		t.Fatalf("page 2: %s", a.raw)
	}
	last := a.body["items"].([]any)[0].(map[string]any)["id"].(string)
	if a := call(t, "DELETE", u+"/queues/d/items/"+last, "", ``); a.status != 200 || a.body["state"] != "cancelled" {
		t.Fatalf("cancel: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", u+"/queues/d/items/"+last+"/replay", "", ``); a.status != 409 {
		t.Fatalf("replay of a cancelled item: %d, want 409", a.status)
	}
	a = call(t, "POST", u+"/queues/d/dead/replay", "", ``)
	if a.status != 200 || len(a.body["replayed"].([]any)) != 1 {
		t.Fatalf("replay: %d %s", a.status, a.raw)
	}
	if a := call(t, "GET", u+"/queues/d/drained", "", ``); a.status != 503 || a.body["ready"].(float64) != 2 {
		t.Fatalf("drained with work left: %d %s", a.status, a.raw)
	}
	if a := call(t, "GET", u+"/queues", "", ``); len(a.body["queues"].([]any)) != 1 {
		t.Fatalf("queues: %s", a.raw)
	}
}

func TestAPIPausedHandsOutNothing(t *testing.T) {
	ts := newTestServer(t, HandlerOptions{})
	call(t, "POST", ts.URL+"/queues/p/items", "", `{"payload":1}`)
	ts.paused.Store(true)
	if a := call(t, "POST", ts.URL+"/queues/p/lease", "", `{"wait_seconds":0.1}`); a.status != 204 {
		t.Fatalf("lease while paused: %d %s", a.status, a.raw)
	}
	ts.paused.Store(false)
	if a := call(t, "POST", ts.URL+"/queues/p/lease", "", ``); a.status != 200 {
		t.Fatalf("lease after resume: %d %s", a.status, a.raw)
	}
}

func TestDecodeEnqueueLines(t *testing.T) {
	body := []byte("{\"payload\":1}\n{\"payload\":2,\"delay\":\"x\"}\n")
	items, batch, err := decodeEnqueue(body, "q", true, 1<<20, time.Now())
	if err != nil || !batch || len(items) != 2 {
		t.Fatalf("%v %v %d", err, batch, len(items))
	}
	if items[1].status != 400 || !strings.HasPrefix(items[1].err, "line 2:") {
		t.Fatalf("item 2: %+v", items[1])
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1MiB": 1 << 20, "64KiB": 64 << 10, "100": 100, "2mb": 2000000, "1G": 1 << 30} {
		var b ByteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d %v, want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1TiB", "1.5MiB"} {
		var b ByteSize
		if err := b.Set(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
