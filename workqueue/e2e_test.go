package workqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
)

// startQueue runs `podkit queue` on addr with dataDir.
func startQueue(t *testing.T, bin, addr, dataDir string, extra ...string) *testdeps.Proc {
	t.Helper()
	args := append([]string{"queue", "--listen", addr, "--data-dir", dataDir, "--admin-addr", "off", "--drain-delay", "0s", "--log-format", "json"}, extra...)
	p := testdeps.Start(t, "queue", bin, args...)
	testdeps.WaitHTTP(t, "http://"+addr+"/queues", 20*time.Second)
	return p
}

func TestWorkersRunAShellCommand(t *testing.T) {
	bin := testdeps.BuildPodkit(t)
	addr := testdeps.FreePort(t)
	startQueue(t, bin, addr, t.TempDir(), "--backoff-base", "10ms", "--backoff-max", "20ms")
	server := "http://" + addr
	out := t.TempDir()

	// Push with the CLI: 20 items, two of which fail every time.
	var nd strings.Builder
	for i := range 20 {
		p := fmt.Sprintf(`{"n":%d,"fail":%v}`, i, i%10 == 3)
		fmt.Fprintf(&nd, `{"payload":%s,"max_attempts":2}`+"\n", p)
	}
	push := exec.Command(bin, "queue", "push", "--server", server, "--queue", "jobs", "-")
	push.Stdin = strings.NewReader(nd.String())
	if b, err := push.CombinedOutput(); err != nil || !strings.Contains(string(b), "20 new") {
		t.Fatalf("queue push: %v: %s", err, b)
	}
	script := `set -e
payload=$(cat)
test "$payload" = "$(cat "$PODKIT_ITEM_FILE")"
case "$payload" in *'"fail":true'*) echo "cannot process item $PODKIT_ITEM_ID" >&2; exit 3;; esac
echo "$PODKIT_ITEM_ID $PODKIT_ATTEMPT" > "` + out + `/$PODKIT_ITEM_ID"`
	for i := range 2 {
		testdeps.Start(t, fmt.Sprintf("worker%d", i), bin, "worker", "--queue", server+"/queues/jobs", "--concurrency", "2",
			"--admin-addr", "off", "--drain-delay", "0s", "--wait", "1s", "--", "sh", "-c", script)
	}
	c := client.New(server, nil)
	waitDrained(t, c, "jobs", 30*time.Second)
	st, err := c.Stats(context.Background(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if st.Done != 18 || st.Dead != 2 {
		t.Fatalf("done=%d dead=%d, want 18 and 2", st.Done, st.Dead)
	}
	files, _ := os.ReadDir(out)
	if len(files) != 18 {
		t.Fatalf("the command ran to success for %d items, want 18", len(files))
	}
	page, err := c.List(context.Background(), "jobs", "dead", "", 10)
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("dead list: %+v %v", page, err)
	}
	for _, it := range page.Items {
		if !strings.Contains(it.LastError, "exit status 3") || !strings.Contains(it.LastError, "cannot process item "+it.ID) || it.Attempt != 2 {
			t.Errorf("dead item %s: attempt %d, last error %q", it.ID, it.Attempt, it.LastError)
		}
	}
	// The CLI shows the counts and replays the dead letters.
	b, err := exec.Command(bin, "queue", "stat", "--server", server).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "jobs") {
		t.Fatalf("queue stat: %v: %s", err, b)
	}
	b, err = exec.Command(bin, "queue", "ls", "--server", server, "--queue", "jobs", "--state", "dead").CombinedOutput()
	if err != nil || strings.Count(string(b), "dead") != 2 {
		t.Fatalf("queue ls: %v: %s", err, b)
	}
	b, err = exec.Command(bin, "queue", "replay", "--server", server, "--queue", "jobs").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "replayed 2") {
		t.Fatalf("queue replay: %v: %s", err, b)
	}
	waitDrained(t, c, "jobs", 30*time.Second)
	if st, _ := c.Stats(context.Background(), "jobs"); st.Dead != 2 {
		t.Fatalf("replayed poison items did not die again: %+v", st)
	}
}

func TestExitWhenDrained(t *testing.T) {
	bin := testdeps.BuildPodkit(t)
	addr := testdeps.FreePort(t)
	q := startQueue(t, bin, addr, t.TempDir(), "--exit-when-drained")
	server := "http://" + addr
	c := client.New(server, nil)
	if _, err := c.Enqueue(context.Background(), "batch", []client.Item{{Payload: json.RawMessage(`1`)}, {Payload: json.RawMessage(`2`)}}); err != nil {
		t.Fatal(err)
	}
	testdeps.Start(t, "worker", bin, "worker", "--queue", server+"/queues/batch", "--admin-addr", "off", "--drain-delay", "0s", "--", "true")
	if code := q.Wait(30 * time.Second); code != 0 {
		t.Fatalf("coordinator with --exit-when-drained: exit %d, want 0 once drained", code)
	}
}

func TestBadFlags(t *testing.T) {
	bin := testdeps.BuildPodkit(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"queue"}, "--data-dir: required"},
		{[]string{"queue", "--data-dir", "x", "--max-payload", "lots"}, "--max-payload"},
		{[]string{"queue", "--data-dir", "x", "--strict-queues"}, "--strict-queues: needs at least one --queue"},
		{[]string{"queue", "--data-dir", "x", "--queue", "bad name"}, "--queue"},
		{[]string{"queue", "--data-dir", "x", "--source", "ftp://x"}, "--source"},
		{[]string{"worker", "--queue", "http://x:1/queues/q"}, "command after --"},
		{[]string{"worker", "--queue", "http://x:1/nope", "--", "true"}, "--queue"},
		{[]string{"worker", "--queue", "http://x:1/queues/q", "--concurrency", "0", "--", "true"}, "--concurrency"},
		{[]string{"queue", "push", "--server", "nope"}, "--server"},
		{[]string{"queue", "--data-dir", "x", "--gc-percent", "-5"}, "--gc-percent"},
		{[]string{"queue", "--data-dir", "x", "--memory-limit", "1MiB"}, "--memory-limit: 1MiB is less than 16MiB"},
		{[]string{"queue", "--data-dir", "x", "--listen", ":0"}, "--listen :0 is reachable from other hosts"},
		{[]string{"queue", "--data-dir", "x", "--client-ca", "ca.crt"}, "--client-ca: client certificates need TLS"},
		{[]string{"queue", "--data-dir", "x", "--tls-cert", "a.crt", "--tls-key", "a.key", "--client-ca", "ca.crt", "--allow-cn", "reader=x"}, `"reader" is not a role of queue`},
		{[]string{"worker", "--queue", "http://x:1/queues/q", "--cert", "w.crt", "--", "true"}, "--cert and --key: give both or neither"},
		{[]string{"worker", "--queue", "http://x:1/queues/q", "--token-file", "/nonexistent/token", "--", "true"}, "--token-file"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			b, err := exec.Command(bin, tc.args...).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2: %s", err, b)
			}
			if !strings.Contains(string(b), tc.want) {
				t.Fatalf("output %q does not mention %q", b, tc.want)
			}
		})
	}
}

// TestGarbageCollectorSettings: the coordinator sets the Go runtime's
// GOGC and memory limit from its flags, keeps GOGC and GOMEMLIMIT from the
// environment, and otherwise collects at DefaultGCPercent; the runtime's
// own metrics show what it runs with.
func TestGarbageCollectorSettings(t *testing.T) {
	bin := testdeps.BuildPodkit(t)
	tests := []struct {
		name        string
		env         []string
		args        []string
		gogc, limit string // the runtime's metrics; "" not checked
	}{
		{"flags", nil, []string{"--gc-percent", "250", "--memory-limit", "300MiB"}, "250", "3.145728e+08"},
		{"flags from PODKIT_ variables", []string{"PODKIT_GC_PERCENT=300", "PODKIT_MEMORY_LIMIT=200MiB"}, nil, "300", "2.097152e+08"},
		{"GOGC and GOMEMLIMIT kept", []string{"GOGC=50", "GOMEMLIMIT=100MiB"}, nil, "50", "1.048576e+08"},
		{"default", nil, nil, strconv.Itoa(workqueue.DefaultGCPercent), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range append([]string{"GOGC=", "GOMEMLIMIT=", "PODKIT_GC_PERCENT=", "PODKIT_MEMORY_LIMIT="}, tt.env...) {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			addr, admin := testdeps.FreePort(t), testdeps.FreePort(t)
			args := append([]string{"queue", "--listen", addr, "--data-dir", t.TempDir(), "--admin-addr", admin, "--drain-delay", "0s"}, tt.args...)
			testdeps.Start(t, "queue", bin, args...)
			testdeps.WaitHTTP(t, "http://"+addr+"/queues", 20*time.Second)
			resp, err := http.Get("http://" + admin + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metric := func(name string) string {
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, name+" "); ok {
						return v
					}
				}
				return "(missing)"
			}
			if got := metric("go_gc_gogc_percent"); got != tt.gogc {
				t.Errorf("go_gc_gogc_percent %s, want %s", got, tt.gogc)
			}
			if got := metric("go_gc_gomemlimit_bytes"); tt.limit != "" && got != tt.limit {
				t.Errorf("go_gc_gomemlimit_bytes %s, want %s", got, tt.limit)
			}
		})
	}
}

func waitDrained(t *testing.T, c *client.Client, q string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := c.Drained(context.Background(), q)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			st, _ := c.Stats(context.Background(), q)
			t.Fatalf("queue %s not drained within %s (last error %v): %+v", q, d, err, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReliabilityKill9 is the reliability test: workers killed -9 at
// random, the coordinator killed -9 and restarted, and at the end every
// item is done exactly once or dead by its own failures, none lost.
// PODKIT_LONG=1 runs it with 100k items.
func TestReliabilityKill9(t *testing.T) {
	n, restarts := 20000, 3
	if os.Getenv("PODKIT_LONG") == "1" {
		n, restarts = 100000, 6
	} else if testing.Short() {
		n, restarts = 3000, 2
	}
	const workers = 8
	bin := testdeps.BuildPodkit(t)
	addr := testdeps.FreePort(t)
	dataDir := t.TempDir()
	qargs := []string{"--backoff-base", "20ms", "--backoff-max", "200ms", "--segment-size", "4MiB", "--keep-done", "1000000"}
	server := "http://" + addr
	c := client.New(server, &http.Client{Timeout: 10 * time.Second})
	ctx := context.Background()

	// The worker process in the pod: poison items always fail; the others
	// sometimes take a little while.
	var delivered sync.Map // id -> *atomic.Int32
	handler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			N      int  `json:"n"`
			Poison bool `json:"poison"`
		}
		json.NewDecoder(r.Body).Decode(&p)
		v, _ := delivered.LoadOrStore(r.Header.Get("Podkit-Item-Id"), new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
		if p.Poison {
			http.Error(w, fmt.Sprintf("poison item %d", p.N), http.StatusInternalServerError)
			return
		}
		if p.N%7 == 0 {
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
		}
	}))
	t.Cleanup(handler.Close)

	coord := startQueue(t, bin, addr, dataDir, qargs...)
	restart := func() {
		coord.Kill()
		coord = startQueue(t, bin, addr, dataDir, qargs...)
	}

	// Enqueue in batches, with a coordinator kill -9 in the middle;
	// idempotency keys make re-sending a batch safe.
	poison := 0
	for start := 0; start < n; start += 500 {
		var batch []client.Item
		for i := start; i < min(start+500, n); i++ {
			p := i%100 == 42
			if p {
				poison++
			}
			ma := 60
			if p {
				ma = 3
			}
			batch = append(batch, client.Item{Payload: json.RawMessage(fmt.Sprintf(`{"n":%d,"poison":%v}`, i, p)), IdempotencyKey: "item-" + strconv.Itoa(i), MaxAttempts: ma, Timeout: "1s"})
		}
		for try := 0; ; try++ {
			_, err := c.Enqueue(ctx, "rel", batch)
			if err == nil {
				break
			}
			if try > 200 {
				t.Fatalf("enqueue keeps failing: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if start == n/2 {
			restart()
		}
	}

	ws := make([]*testdeps.Proc, workers)
	var all []*testdeps.Proc
	startWorker := func(i int) {
		ws[i] = testdeps.Start(t, fmt.Sprintf("worker%d", i), bin, "worker", "--queue", server+"/queues/rel", "--http", handler.URL,
			"--concurrency", "4", "--wait", "1s", "--admin-addr", "off", "--drain-delay", "0s", "--log-format", "json", "--log-level", "debug")
		all = append(all, ws[i])
	}
	for i := range workers {
		startWorker(i)
	}

	// Chaos until the queue is drained.
	deadline := time.Now().Add(120 * time.Second)
	nextCoordKill := time.Now().Add(1500 * time.Millisecond)
	coordKills, workerKills := 1, 0
	for {
		if ok, _ := c.Drained(ctx, "rel"); ok {
			break
		}
		if time.Now().After(deadline) {
			st, _ := c.Stats(ctx, "rel")
			t.Fatalf("not drained in time: %+v", st)
		}
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		i := rand.IntN(workers)
		ws[i].Kill()
		workerKills++
		startWorker(i)
		if coordKills <= restarts && time.Now().After(nextCoordKill) {
			restart()
			coordKills++
			nextCoordKill = time.Now().Add(1500 * time.Millisecond)
		}
	}

	// Every item: done, or dead by its own failures; none lost.
	done, dead := 0, 0
	cursor := ""
	seen := 0
	for {
		page, err := c.List(ctx, "rel", "", cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			seen++
			var p struct {
				N      int  `json:"n"`
				Poison bool `json:"poison"`
			}
			json.Unmarshal(it.Payload, &p)
			switch {
			case p.Poison && it.State == "dead":
				dead++
				if !strings.Contains(it.LastError, "poison item") && !strings.Contains(it.LastError, "lease expired") {
					t.Errorf("poison item %s dead with %q", it.ID, it.LastError)
				}
			case !p.Poison && it.State == "done":
				done++
			default:
				t.Errorf("item %s (n=%d poison=%v) ended %s after %d attempts: %s", it.ID, p.N, p.Poison, it.State, it.Attempt, it.LastError)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if seen != n || done != n-poison || dead != poison {
		t.Fatalf("%d items stored (want %d): %d done (want %d), %d dead (want %d)", seen, n, done, n-poison, dead, poison)
	}

	// No item was acked twice: count the acks the workers logged.
	acks := map[string]int{}
	stale := 0
	for _, p := range all {
		for _, l := range p.Lines() {
			var m struct {
				Msg  string `json:"msg"`
				Item string `json:"item"`
			}
			if json.Unmarshal([]byte(l), &m) != nil {
				continue
			}
			switch m.Msg {
			case "acked":
				acks[m.Item]++
			case "stale completion rejected":
				stale++
			}
		}
	}
	for id, k := range acks {
		if k > 1 {
			t.Errorf("item %s acked %d times", id, k)
		}
	}
	torn := 0
	for _, l := range coord.Lines() {
		if strings.Contains(l, "torn tail") {
			torn++
		}
	}
	t.Logf("reliability: %d items (%d poison) through %d worker kills and %d coordinator kills: %d done, %d dead, %d acks logged, none twice; %d stale completions rejected with 409",
		n, poison, workerKills, coordKills, done, dead, len(acks), stale)
	fmt.Printf("stale completions rejected: %d\n", stale)
}

// TestWorkerWaitsOutAnUnreachableQueue runs `podkit worker` against an
// address nothing listens on, then starts `podkit queue` there: the worker
// says so in its log, is not ready (its check names the queue), counts the
// errors, and recovers by itself.
func TestWorkerWaitsOutAnUnreachableQueue(t *testing.T) {
	bin := testdeps.BuildPodkit(t)
	addr, admin := testdeps.FreePort(t), testdeps.FreePort(t)
	queueURL := "http://" + addr + "/queues/later"
	w := testdeps.Start(t, "worker", bin, "worker", "--queue", queueURL, "--admin-addr", admin, "--drain-delay", "0s",
		"--log-format", "json", "--worker-id", "w-7", "--error-log-interval", "500ms", "--", "true")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testdeps.WaitFor(t, "the worker's failure line", func() bool { return w.Count(`"msg":"queue requests failing; retrying"`) == 1 })
	testdeps.WaitFor(t, "/readyz 503", func() bool { code, _ := get("/readyz"); return code == 503 })
	if code, body := get("/healthz?verbose"); code != 503 || !strings.Contains(body, `"queue `+queueURL+`"`) || !strings.Contains(body, "connection refused") {
		t.Errorf("/healthz?verbose: %d %s", code, body)
	}
	testdeps.WaitFor(t, "the error metric", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `podkit_worker_queue_errors_total{reason="unreachable"}`)
	})
	for _, l := range w.Lines() {
		if strings.HasPrefix(l, "{") && !strings.Contains(l, `"worker":"w-7"`) {
			t.Errorf("log line without the worker's id: %s", l)
		}
	}

	startQueue(t, bin, addr, t.TempDir())
	testdeps.WaitFor(t, "the recovery line", func() bool { return w.Count(`"msg":"queue requests work again"`) == 1 })
	testdeps.WaitFor(t, "/readyz 200", func() bool { code, _ := get("/readyz"); return code == 200 })
	c := client.New("http://"+addr, nil)
	if _, err := c.Enqueue(context.Background(), "later", []client.Item{{Payload: json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, c, "later", 30*time.Second)
}
