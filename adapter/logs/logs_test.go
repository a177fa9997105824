package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runStdin runs the adapter in-process on stdin and returns its output.
func runStdin(t *testing.T, cfg Config, in io.Reader) []byte {
	t.Helper()
	var out bytes.Buffer
	cfg.Stdin, cfg.Stdout = in, &out
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.clock = func() time.Time { return time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC) }
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.Logger = quiet()
	if err := container.Run(context.Background(), l, opts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestNormalizedGolden feeds lines of every supported format, stack traces
// included, and compares the normalized output with the golden file.
func TestNormalizedGolden(t *testing.T) {
	in, err := os.Open(filepath.Join("testdata", "input.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cfg := DefaultConfig()
	cfg.Multiline = "auto"
	cfg.DefaultTimezone = "Europe/Berlin"
	out := runStdin(t, cfg, in)
	checkShape(t, out)
	golden := filepath.Join("testdata", "normalized.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, out)
	}
}

// checkShape checks every output line: valid JSON, the five stable fields
// in order, a normalized timestamp and severity.
func checkShape(t *testing.T, out []byte) {
	t.Helper()
	for i, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		var ev struct {
			Timestamp  string         `json:"timestamp"`
			Severity   string         `json:"severity"`
			Body       *string        `json:"body"`
			Attributes map[string]any `json:"attributes"`
			Source     map[string]any `json:"source"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if !bytes.HasPrefix(line, []byte(`{"timestamp":"`)) || !bytes.Contains(line, []byte(`","severity":"`)) ||
			!bytes.Contains(line, []byte(`,"body":`)) || !bytes.Contains(line, []byte(`,"attributes":{`)) || !bytes.Contains(line, []byte(`,"source":{"type":`)) {
			t.Fatalf("line %d lacks a stable field: %s", i+1, line)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000000Z", ev.Timestamp); err != nil {
			t.Fatalf("line %d timestamp %q is not RFC 3339 UTC with nanoseconds", i+1, ev.Timestamp)
		}
		switch ev.Severity {
		case "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "UNSPECIFIED":
		default:
			t.Fatalf("line %d severity %q", i+1, ev.Severity)
		}
		if ev.Body == nil || ev.Attributes == nil || ev.Source == nil {
			t.Fatalf("line %d: missing body, attributes or source: %s", i+1, line)
		}
	}
}

func TestParseModes(t *testing.T) {
	line := `{"time":"2024-01-02T03:04:05Z","level":"info","msg":"hi"}` + "\n" + "not json\n"
	tests := []struct {
		parse string
		want  []string
	}{
		{"none", []string{`"body":"{\"time\":`, `"body":"not json"`}},
		{"json", []string{`"body":"hi","attributes":{"log.format":"json"}`, `"body":"not json","attributes":{}`}},
		{"auto", []string{`"severity":"INFO","body":"hi"`, `"body":"not json"`}},
	}
	for _, tt := range tests {
		t.Run(tt.parse, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Parse = tt.parse
			out := runStdin(t, cfg, strings.NewReader(line))
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d lines: %s", len(lines), out)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d %s\nwant it to contain %s", i+1, lines[i], w)
				}
			}
		})
	}
}

func TestEncodeString(t *testing.T) {
	for _, in := range []string{"", "plain", "quote \" backslash \\ nl \n tab \t cr \r", "ctl \x00\x1f\x7f", "é ✓ 𝄞", "bad \xff\xfe utf8", "\u2028"} {
		got := appendString(nil, []byte(in))
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("appendString(%q) = %s: %v", in, got, err)
		}
		want := strings.ToValidUTF8(in, "\ufffd")
		if in == "bad \xff\xfe utf8" {
			want = "bad \ufffd\ufffd utf8"
		}
		if back != want {
			t.Errorf("appendString(%q) decodes to %q", in, back)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("rules:\n  - detector: java\n    colour: red\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"bad parse", func(c *Config) { c.Parse = "xml" }, `--parse: unknown format "xml"`},
		{"bad multiline", func(c *Config) { c.Multiline = "cobol" }, `--multiline: unknown multiline detector "cobol"`},
		{"custom without condition", func(c *Config) { c.Multiline = "custom"; c.MultilineMode = "halt_with" }, "condition_pattern is required"},
		{"custom bad regexp", func(c *Config) { c.MultilineMode = "halt_with"; c.MultilineCondition = "(" }, "--multiline-mode/--multiline-start/--multiline-condition: condition_pattern: error parsing regexp"},
		{"rules file unknown key", func(c *Config) { c.MultilineConfig = rules }, "line 3: field colour not found"},
		{"rules file missing", func(c *Config) { c.MultilineConfig = filepath.Join(dir, "nope.yaml") }, "--multiline-config: open"},
		{"bad timezone", func(c *Config) { c.DefaultTimezone = "Mars/Base" }, `--default-timezone: "Mars/Base" is not a known time zone`},
		{"bad glob", func(c *Config) { c.Files = []string{"/var/log/["} }, `--files "/var/log/["`},
		{"bad read-from", func(c *Config) { c.ReadFrom = "middle" }, `--read-from: "middle"`},
		{"bad slowlog addr", func(c *Config) { c.RedisSlowlog = []string{"localhost"} }, `--redis-slowlog "localhost": want host:port`},
		{"bad every", func(c *Config) { c.Every = 0 }, "--every: 0s must be positive"},
		{"bad limits", func(c *Config) { c.MultilineMaxLines = 0 }, "--multiline-max-lines: 0 must be at least 1"},
		{"state dir is a file", func(c *Config) { c.StateDir = rules }, "not a directory"},
		{"password file empty", func(c *Config) { c.RedisPasswordFile = empty }, "--redis-password-file: " + empty + " is empty"},
		{"password file missing", func(c *Config) { c.RedisPasswordFile = filepath.Join(dir, "nope") }, "--redis-password-file: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

// proc is `podkit logs` running as a real subprocess (the test binary,
// see main_test.go), its output going to a file.
type proc struct {
	cmd    *exec.Cmd
	out    string
	stderr *testdeps.Buffer
	done   chan error
}

func startLogs(t *testing.T, out string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], append([]string{"logs", "--drain-delay", "0s", "--log-format", "text"}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	p := &proc{cmd: cmd, out: out, stderr: &testdeps.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr, cmd.Stdin = f, p.stderr, stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("podkit logs stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("podkit logs exited with %v\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("podkit logs did not stop within 30s of SIGTERM")
	}
}

type event struct {
	Timestamp  string         `json:"timestamp"`
	Severity   string         `json:"severity"`
	Body       string         `json:"body"`
	Attributes map[string]any `json:"attributes"`
	Source     map[string]any `json:"source"`
}

func readEvents(t *testing.T, paths ...string) []event {
	t.Helper()
	var evs []event
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: output line is not JSON: %v: %s", p, err, sc.Bytes())
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

func seqLine(i int) string { return fmt.Sprintf("seq=%08d %s", i, strings.Repeat("y", i%47)) }

// TestRestartUnderRotation runs the real process on files rotated by
// rename under a writer at full speed, stops it with SIGTERM halfway,
// starts it again on the same --state-dir, and compares every line
// written with every line emitted by both runs: 0 lost, 0 duplicated.
func TestRestartUnderRotation(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	state := filepath.Join(dir, "state")
	args := []string{"--files", logPath + "*", "--state-dir", state, "--parse", "none", "--admin-addr", "off",
		"--poll-interval", "10ms", "--scan-interval", "50ms", "--rotate-wait", "200ms", "--checkpoint-interval", "50ms"}
	const n, every = 30000, 4000
	written := make(chan int, 1)
	half, resume := make(chan struct{}), make(chan struct{})
	go func() {
		f, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		for i := range n {
			if i > 0 && i%every == 0 {
				f.Close()
				os.Rename(logPath, fmt.Sprintf("%s.%d", logPath, i/every))
				f, _ = os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			}
			if i == n/2 {
				close(half)
				<-resume // podkit has stopped: the next lines land while it is down
			}
			f.WriteString(seqLine(i) + "\n")
		}
		f.Close()
		written <- n
	}()
	out1, out2 := filepath.Join(dir, "out1.json"), filepath.Join(dir, "out2.json")
	p1 := startLogs(t, out1, nil, args...)
	<-half
	// SIGTERM before the process has set up its signal handling would
	// kill it, not stop it: wait until it ships lines.
	testdeps.WaitFor(t, "the first run's first lines", func() bool { return len(readEvents(t, out1)) > 0 })
	p1.stop(t)
	close(resume)
	time.Sleep(20 * time.Millisecond)
	p2 := startLogs(t, out2, nil, args...)
	<-written
	testdeps.WaitFor(t, "every line", func() bool { return len(readEvents(t, out1, out2)) >= n })
	time.Sleep(300 * time.Millisecond) // late duplicates would show now
	p2.stop(t)
	first := readEvents(t, out1)
	if len(first) == 0 || len(first) >= n {
		t.Fatalf("the first run emitted %d lines; the restart did not happen midway", len(first))
	}
	counts := map[string]int{}
	for _, ev := range readEvents(t, out1, out2) {
		counts[ev.Body]++
		if ev.Source["type"] != "file" || !strings.HasPrefix(ev.Source["path"].(string), logPath) {
			t.Fatalf("source %v", ev.Source)
		}
	}
	lost, dup := 0, 0
	for i := range n {
		switch c := counts[seqLine(i)]; {
		case c == 0:
			lost++
		case c > 1:
			dup += c - 1
		}
		delete(counts, seqLine(i))
	}
	if lost != 0 || dup != 0 || len(counts) != 0 {
		t.Fatalf("%d written: %d lost, %d duplicated, %d unexpected", n, lost, dup, len(counts))
	}
}

// TestMultilineCheckpoint stops the process while a stack trace is still
// open: it is emitted at stop, and the restart does not repeat it.
func TestMultilineCheckpoint(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	os.WriteFile(logPath, []byte("2024-01-02 03:04:05,678 ERROR [main] a.B - failed\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)\n"), 0o644)
	args := []string{"--files", logPath, "--state-dir", filepath.Join(dir, "state"), "--multiline", "java", "--multiline-timeout", "1h", "--admin-addr", "off", "--poll-interval", "10ms"}
	out1, out2 := filepath.Join(dir, "out1.json"), filepath.Join(dir, "out2.json")
	p1 := startLogs(t, out1, nil, args...)
	// SIGTERM only once the process handles it (it logs "following file"
	// after installing its signal handler) and has read the file.
	testdeps.WaitFor(t, "the file to be followed", func() bool { return strings.Contains(p1.stderr.String(), "following file") })
	time.Sleep(300 * time.Millisecond) // the trace is open: nothing says it ended
	if evs := readEvents(t, out1); len(evs) != 0 {
		t.Fatalf("open event emitted early: %v", evs)
	}
	p1.stop(t)
	evs := readEvents(t, out1)
	if len(evs) != 1 || evs[0].Attributes["multiline.lines"] != float64(3) || evs[0].Severity != "ERROR" {
		t.Fatalf("events at stop: %+v", evs)
	}
	f, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("2024-01-02 03:04:06,000 INFO [main] a.B - next\n2024-01-02 03:04:07,000 INFO [main] a.B - last\n")
	f.Close()
	p2 := startLogs(t, out2, nil, args...)
	testdeps.WaitFor(t, "the next line", func() bool { return len(readEvents(t, out2)) >= 1 })
	testdeps.WaitFor(t, "the file to be followed", func() bool { return strings.Contains(p2.stderr.String(), "following file") })
	p2.stop(t)
	evs = readEvents(t, out2)
	if len(evs) != 2 || evs[0].Body != "next" || evs[1].Body != "last" {
		t.Fatalf("events after restart: %+v", evs)
	}
}

// TestStdinProcess pipes lines through the real process: it exits 0 at
// the end of its input, the last line (without newline) included.
func TestStdinProcess(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	p := startLogs(t, out, strings.NewReader("{\"msg\":\"a\"}\nb"), "--admin-addr", "off")
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not exit at the end of stdin")
	}
	evs := readEvents(t, out)
	if len(evs) != 2 || evs[0].Body != "a" || evs[1].Body != "b" || evs[1].Source["type"] != "stdin" {
		t.Fatalf("events %+v", evs)
	}
	if strings.Contains(p.stderr.String(), `"body"`) {
		t.Fatal("events written to stderr")
	}
}

func TestBadFlagsExit2(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("rules:\n  - detector: go\n    max_line: 5\n"), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--parse", "xml"}, "--parse"},
		{[]string{"--multiline-config", rules}, "line 3: field max_line not found"},
		{[]string{"--default-timezone", "Nowhere/Town"}, "--default-timezone"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			p := startLogs(t, filepath.Join(dir, "out"), nil, tt.args...)
			err := <-p.done
			var ee *exec.ExitError
			if !errorsAs(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2", err)
			}
			if !strings.Contains(p.stderr.String(), tt.want) {
				t.Fatalf("stderr %q, want it to name %q", p.stderr.String(), tt.want)
			}
		})
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func redisDo(t *testing.T, addr string, cmds ...[]string) {
	t.Helper()
	c, err := resp.Dial(context.Background(), "tcp", addr, resp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range cmds {
		if _, err := c.Do(context.Background(), cmd...); err != nil && !(cmd[0] == "DEBUG") {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
}

func metricValue(t *testing.T, admin, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}

// TestSlowlog polls a real redis-server that logs every command: each
// entry is written once; entries lost to a full slowlog are reported; a
// real restart of the server (DEBUG RESTART: the process re-executes
// itself, new run_id, empty slowlog) is reported; and all of it is in the
// metrics.
func TestSlowlog(t *testing.T) {
	addr := testdeps.StartRedis(t, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "8", "--enable-debug-command", "yes")
	if addr == "" {
		return
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	admin := freeAddr(t)
	p := startLogs(t, out, nil, "--redis-slowlog", addr, "--every", "100ms", "--admin-addr", admin, "--state-dir", filepath.Join(dir, "state"))
	bodies := func() map[string]int {
		m := map[string]int{}
		for _, ev := range readEvents(t, out) {
			m[ev.Body]++
		}
		return m
	}
	redisDo(t, addr, []string{"SET", "k1", "v1"}, []string{"SET", "k2", "two words"})
	testdeps.WaitFor(t, "the SET entries", func() bool { b := bodies(); return b["SET k1 v1"] == 1 && b["SET k2 two words"] == 1 })
	time.Sleep(300 * time.Millisecond) // a few more polls: still once each
	if b := bodies(); b["SET k1 v1"] != 1 || b["SET k2 two words"] != 1 {
		t.Fatalf("entries not written exactly once: %v", b)
	}
	for _, ev := range readEvents(t, out) {
		if ev.Body == "SET k1 v1" {
			if ev.Source["type"] != "redis-slowlog" || ev.Source["address"] != addr || ev.Attributes["redis.command"] != "SET" ||
				ev.Attributes["event"] != "redis.slowlog.entry" || ev.Severity != "WARN" {
				t.Fatalf("entry %+v", ev)
			}
		}
	}

	// Overflow: 40 commands in one burst, far more than slowlog-max-len 8.
	var burst [][]string
	for i := range 40 {
		burst = append(burst, []string{"SET", fmt.Sprintf("burst%d", i), "x"})
	}
	redisDo(t, addr, burst...)
	testdeps.WaitFor(t, "an overflow event", func() bool {
		for _, ev := range readEvents(t, out) {
			if ev.Attributes["event"] == "redis.slowlog.overflow" && ev.Attributes["lost_entries"].(float64) > 0 {
				return true
			}
		}
		return false
	})
	testdeps.WaitFor(t, "the last burst entry", func() bool { return bodies()["SET burst39 x"] == 1 })

	// Restart: the server re-executes itself.
	redisDo(t, addr, []string{"DEBUG", "RESTART"})
	testdeps.WaitFor(t, "redis back", func() bool {
		c, err := resp.Dial(context.Background(), "tcp", addr, resp.DialOptions{Timeout: time.Second})
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.Do(context.Background(), "PING")
		return err == nil
	})
	redisDo(t, addr, []string{"SET", "after", "restart"})
	testdeps.WaitFor(t, "a restart event and the entry after it", func() bool {
		restart := false
		for _, ev := range readEvents(t, out) {
			if ev.Attributes["event"] == "redis.slowlog.restart" {
				restart = true
			}
		}
		return restart && bodies()["SET after restart"] == 1
	})
	testdeps.WaitFor(t, "the metrics", func() bool {
		return metricValue(t, admin, "podkit_logs_slowlog_restarts_total") == "1" &&
			metricValue(t, admin, `podkit_logs_slowlog_overflows_total{addr="`+addr+`",reason="overflow"}`) != "" &&
			metricValue(t, admin, "podkit_logs_slowlog_up") == "1"
	})
	p.stop(t)
	if b := bodies(); b["SLOWLOG GET -1"] != 0 || b["INFO server"] != 0 {
		t.Errorf("the poller's own commands were written: %v", b)
	}
	for body, n := range bodies() {
		if n > 1 && strings.HasPrefix(body, "SET ") {
			t.Errorf("%q written %d times", body, n)
		}
	}
}

// TestMetrics checks the counters after a run on known input.
func TestMetrics(t *testing.T) {
	in := "2024-01-02 03:04:05,678 ERROR [main] a.B - failed\njava.lang.IllegalStateException: y\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n\tat a.B.e(B.java:3)\n" +
		"{\"msg\":\"broken\"\n{\"time\":\"soon\",\"msg\":\"ok\"}\nplain\n"
	cfg := DefaultConfig()
	cfg.Multiline = "java"
	cfg.MultilineMaxLines = 4
	cfg.Parse = "json,log4j"
	cfg.Stdin, cfg.Stdout = strings.NewReader(in), io.Discard
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.Logger = quiet()
	if err := container.Run(context.Background(), l, opts); err != nil {
		t.Fatal(err)
	}
	m := l.m
	for name, tt := range map[string]struct{ got, want float64 }{
		"lines in":              {testutil.ToFloat64(m.linesIn.WithLabelValues("stdin")), 8},
		"events out":            {testutil.ToFloat64(m.eventsOut), 5},
		"merged":                {testutil.ToFloat64(m.merged), 1},
		"truncated by lines":    {testutil.ToFloat64(m.truncated.WithLabelValues("lines")), 1},
		"json failures":         {testutil.ToFloat64(m.parseFailures.WithLabelValues("json")), 1},
		"unmatched":             {testutil.ToFloat64(m.parseFailures.WithLabelValues("unmatched")), 2},
		"timestamp failures":    {testutil.ToFloat64(m.timestampFailures), 1},
		"fluent bit input name": {testutil.ToFloat64(m.fbInRecords.WithLabelValues("stdin.0")), 8},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", name, tt.got, tt.want)
		}
	}
}
