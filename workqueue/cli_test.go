package workqueue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/store/wal"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// coordinator serves the queue API over a durable store in a temporary
// directory: the real coordinator, in process.
func coordinator(t *testing.T) (*client.Client, string) {
	t.Helper()
	st, err := wal.Open(t.TempDir(), wal.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(workqueue.NewHandler(st, workqueue.HandlerOptions{Logger: quietLog()}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	return client.New(srv.URL, nil), srv.URL
}

// podkit runs `podkit <args>` through the CLI entry point with the queue
// command; stdin is in.
func podkit(t *testing.T, in string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(context.Background(), []cli.Command{workqueue.Command()}, args,
		cli.IO{Stdin: strings.NewReader(in), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestCLIFlagsAfterArguments(t *testing.T) {
	c, server := coordinator(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "items.ndjson")
	if err := os.WriteFile(file, []byte("{\"payload\":1}\n{\"payload\":2,\"max_attempts\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// push FILE --queue Q: the flags after the file count.
	code, out, errs := podkit(t, "", "queue", "push", file, "--queue", "q1", "--server", server)
	if code != 0 || !strings.Contains(out, "2 new") {
		t.Fatalf("push FILE --queue Q: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if st, err := c.Stats(ctx, "q1"); err != nil || st.Ready != 2 {
		t.Fatalf("q1 after push: %+v %v", st, err)
	}
	// --raw after "-".
	code, out, errs = podkit(t, "7\n8\n", "queue", "push", "--server", server, "-", "--raw", "--queue=q2", "--batch", "1")
	if code != 0 || !strings.Contains(out, "2 new") {
		t.Fatalf("push - --raw: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// "--" ends the flags: what follows is a file name even if it looks
	// like a flag.
	dash := filepath.Join(t.TempDir(), "--json")
	os.WriteFile(dash, []byte("{\"payload\":3}\n"), 0o644)
	code, out, errs = podkit(t, "", "queue", "push", "--server", server, "--queue", "q3", "--", dash)
	if code != 0 || !strings.Contains(out, "1 new") {
		t.Fatalf("push -- FILE: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// stat --server URL Q --json: --json is a flag, not a queue.
	code, out, errs = podkit(t, "", "queue", "stat", "--server", server, "q1", "--json")
	var stats []client.Stats
	if code != 0 || json.Unmarshal([]byte(out), &stats) != nil || len(stats) != 1 || stats[0].Name != "q1" || stats[0].Ready != 2 {
		t.Fatalf("stat Q --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = podkit(t, "", "queue", "stat", "q1", "--server", server, "q2", "--json=true")
	if code != 0 || json.Unmarshal([]byte(out), &stats) != nil || len(stats) != 2 || stats[1].Name != "q2" {
		t.Fatalf("stat Q --server URL Q --json=true: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// ls with every flag after nothing in particular.
	page, _ := c.List(ctx, "q1", "", "", 10)
	lease, err := c.Lease(ctx, "q1", 2, 0)
	if err != nil || len(lease) != 2 {
		t.Fatalf("lease: %v %v", lease, err)
	}
	for _, l := range lease {
		if err := c.Nack(ctx, l.Token, "boom", 0); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs = podkit(t, "", "queue", "ls", "--queue", "q1", "--state", "dead", "--server", server, "--json", "--limit", "5")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"state":"dead"`) {
		t.Fatalf("ls ... --json --limit: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	deadID := page.Items[1].ID

	// replay ID --queue Q --server URL.
	code, out, errs = podkit(t, "", "queue", "replay", deadID, "--queue", "q1", "--server", server)
	if code != 0 || !strings.Contains(out, "replayed 1 item") {
		t.Fatalf("replay ID --queue Q: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if it, _ := c.Get(ctx, "q1", deadID); it.State != "ready" {
		t.Fatalf("replayed item: %+v", it)
	}

	// A flag that does not exist is still an error, wherever it is.
	for _, args := range [][]string{
		{"queue", "stat", "q1", "--bogus", "--server", server},
		{"queue", "push", file, "--queue", "q1", "--nope"},
		{"queue", "ls", "--queue", "q1", "--server", server, "--limit"},
	} {
		code, _, errs = podkit(t, "", args...)
		if code != 2 || !regexp.MustCompile(`unknown flag --(bogus|nope)|--limit needs a value`).MatchString(errs) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the flag named", args, code, errs)
		}
	}
	code, _, errs = podkit(t, "", "queue", "ls", "extra", "--queue", "q1", "--server", server)
	if code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("ls extra: exit %d, stderr %q", code, errs)
	}
}

func TestCLIPushPerLine(t *testing.T) {
	c, server := coordinator(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "items.ndjson")
	lines := []string{
		`{"payload":1}`,                       // 1 ok
		`hello`,                               // 2 not JSON
		`{"payload":2}`,                       // 3 ok
		`{"payload":3,"delay":"soon"}`,        // 4 refused by the queue
		`[1,2]`,                               // 5 not an object
		``,                                    // 6 blank: skipped
		`{"payload":4,"idempotency_key":"k"}`, // 7 ok
		`{"payload":5,"idempotency_key":"k"}`, // 8 duplicate
		`{"payload": tru}`,                    // 9 not JSON
	}
	os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	for _, batch := range []string{"500", "1", "2"} {
		t.Run("batch "+batch, func(t *testing.T) {
			q := "per-line-" + batch
			code, out, errs := podkit(t, "", "queue", "push", "--server", server, "--queue", q, "--batch", batch, file)
			if code != 1 {
				t.Errorf("exit %d, want 1 (some lines failed)", code)
			}
			for _, want := range []string{
				file + `:2: not JSON`,
				file + `:4: refused (400): delay "soon" is not a duration`,
				file + `:5: not a JSON object`,
				file + `:9: not JSON`,
			} {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr does not report %q:\n%s", want, errs)
				}
			}
			if strings.Contains(errs, ":4: refused (400): line ") {
				t.Errorf("the queue's own line number (of its batch) leaks into the report:\n%s", errs)
			}
			want := fmt.Sprintf("%s: 8 item line(s) to %q: 3 new, 1 duplicate, 1 refused by the queue, 3 not valid", file, q)
			if !strings.Contains(out, want) {
				t.Errorf("summary %q, want %q", out, want)
			}
			if !strings.Contains(errs, "4 of 8 item line(s) failed") {
				t.Errorf("no final error: %q", errs)
			}
			st, err := c.Stats(context.Background(), q)
			if err != nil || st.Ready != 3 {
				t.Errorf("queue after push: %+v %v; want the 3 good items", st, err)
			}
		})
	}
	// --raw: one bad payload line does not stop the others either.
	code, out, errs := podkit(t, "1\n{oops\n\"three\"\n", "queue", "push", "--server", server, "--queue", "raw", "--raw", "-")
	if code != 1 || !strings.Contains(errs, "stdin:2: not JSON") || !strings.Contains(out, "2 new") {
		t.Errorf("--raw with a bad line: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// All good: exit 0.
	code, out, errs = podkit(t, `{"payload":1}`+"\n", "queue", "push", "--server", server, "--queue", "good")
	if code != 0 || !strings.Contains(out, "1 new") || errs != "" {
		t.Errorf("good push: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// An unreachable server gives up with the reason, and the summary of
	// what got in.
	code, _, errs = podkit(t, `{"payload":1}`+"\n", "queue", "push", "--server", "http://127.0.0.1:1", "--queue", "x")
	if code != 1 || !strings.Contains(errs, "connection refused") {
		t.Errorf("push to nothing: exit %d, stderr %q", code, errs)
	}
}

func TestCLIHelp(t *testing.T) {
	flagsOf := map[string][]string{
		"stat":   {"--json", "--server URL"},
		"push":   {"--batch N", "--queue NAME", "--raw", "--server URL"},
		"ls":     {"--json", "--limit N", "--queue NAME", "--server URL", "--state STATE"},
		"replay": {"--queue NAME", "--server URL"},
	}
	for verb, flags := range flagsOf {
		for _, help := range []string{"--help", "-h"} {
			code, out, errs := podkit(t, "", "queue", verb, help)
			if code != 0 || errs != "" {
				t.Fatalf("%s %s: exit %d, stderr %q", verb, help, code, errs)
			}
			lines := strings.Split(out, "\n")
			if !strings.HasPrefix(lines[0], "Usage: podkit queue "+verb+" ") || strings.Count(lines[0], "podkit") != 1 || strings.Count(lines[0], ":") != 1 {
				t.Errorf("%s: usage line %q", verb, lines[0])
			}
			if len(lines) < 4 || lines[1] != "" || lines[2] == "" || lines[3] != "" || lines[4] != "Flags:" {
				t.Errorf("%s: want usage, blank, summary, blank, Flags:\n%s", verb, out)
			}
			for _, f := range flags {
				if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(f) + `\n      \S.* \(env PODKIT_\w+, default .+\)$`).MatchString(out) {
					t.Errorf("%s: flag %q missing or garbled:\n%s", verb, f, out)
				}
			}
			if strings.Contains(out, "default )") {
				t.Errorf("%s: an empty default is shown as nothing:\n%s", verb, out)
			}
		}
	}
}

// TestCoordinatorHelp: `podkit queue --help` names every flag's value and
// points at the verbs with their real form.
func TestCoordinatorHelp(t *testing.T) {
	code, out, errs := podkit(t, "", "queue", "--help")
	if code != 0 || errs != "" {
		t.Fatalf("queue --help: exit %d, stderr %q", code, errs)
	}
	for _, m := range regexp.MustCompile(`(?m)^  --\S+ value$`).FindAllString(out, -1) {
		// --gc-percent's help is internal/gctune's, --token-file's
		// container's (the shared API flags).
		if m != "  --gc-percent value" && m != "  --token-file value" {
			t.Errorf("flag whose value is called just \"value\": %q", m)
		}
	}
	for _, want := range []string{"  --max-payload SIZE\n", "  --segment-size SIZE\n", "  --memory-limit SIZE\n", "podkit queue stat|push|ls|replay [--server URL] [flags] [args]"} {
		if !strings.Contains(out, want) {
			t.Errorf("queue --help lacks %q:\n%s", want, out)
		}
	}
}

// TestCLIPushSplitsWhatTheQueueRefusesWhole: a batch over the coordinator's
// body limit is split until each part fits, so a push never fails for the
// size of its batches; an item too large on its own is refused alone.
func TestCLIPushSplitsWhatTheQueueRefusesWhole(t *testing.T) {
	st := wal.OpenMemory(wal.Options{Logger: quietLog()})
	srv := httptest.NewServer(workqueue.NewHandler(st, workqueue.HandlerOptions{Logger: quietLog(), MaxPayload: 1 << 10, MaxBody: 1}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	var in strings.Builder
	for i := range 300 { // 300 lines of ~1000 bytes: 300 kB, over the 65 kB body limit
		fmt.Fprintf(&in, `{"payload":"%04d%s"}`+"\n", i, strings.Repeat("x", 980))
		if i == 150 {
			fmt.Fprintf(&in, `{"payload":"%s"}`+"\n", strings.Repeat("y", 2000))
		}
	}
	code, out, errs := podkit(t, in.String(), "queue", "push", "--server", srv.URL, "--queue", "big")
	if code != 1 || !strings.Contains(out, "300 new") || !strings.Contains(errs, "stdin:152: refused (413): payload is 2002 bytes") || strings.Count(errs, "refused") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 300 new and line 152 refused", code, out, errs)
	}
	if s, _ := client.New(srv.URL, nil).Stats(context.Background(), "big"); s.Ready != 300 {
		t.Fatalf("ready %d, want 300", s.Ready)
	}
}

// TestCLIErrorFromSomethingElse: a server that is not a coordinator is
// reported with what it said.
func TestCLIErrorFromSomethingElse(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	code, out, errs := podkit(t, `{"payload":1}`+"\n", "queue", "push", "--server", srv.URL, "--queue", "q")
	if code != 1 || !strings.Contains(errs, "404 page not found") || !strings.Contains(errs, "stdin: lines 1-1:") || !strings.Contains(out, "0 new") {
		t.Errorf("push to a plain 404: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestCLIBadQueueName(t *testing.T) {
	for _, verb := range []string{"push", "ls", "replay"} {
		code, _, errs := podkit(t, `{"payload":1}`+"\n", "queue", verb, "--server", "http://127.0.0.1:1", "--queue", "no spaces")
		if code != 2 || !strings.Contains(errs, `--queue: queue name "no spaces" may only contain`) {
			t.Errorf("%s --queue 'no spaces': exit %d, stderr %q", verb, code, errs)
		}
	}
}
