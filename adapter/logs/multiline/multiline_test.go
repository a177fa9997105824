package multiline

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

type collect struct{ events []Event }

func (c *collect) Emit(e Event) {
	e.Data = bytes.Clone(e.Data)
	c.events = append(c.events, e)
}

func (c *collect) texts() []string {
	var out []string
	for _, e := range c.events {
		out = append(out, string(e.Data))
	}
	return out
}

func run(t testing.TB, r *Rule, input string) *collect {
	t.Helper()
	a := r.New()
	c := &collect{}
	now := time.Unix(0, 0)
	lines := strings.Split(strings.TrimSuffix(input, "\n"), "\n")
	for i, l := range lines {
		a.Push([]byte(l), int64(i+1), now, c)
	}
	a.Flush(c)
	return c
}

// TestDetectorsGolden runs each built-in detector over real stack traces
// (written by the JVM, CPython, the Go runtime and Node) and compares the
// events with the golden files.
func TestDetectorsGolden(t *testing.T) {
	for _, name := range []string{"java", "python", "go", "node", "auto"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".log"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			c := run(t, r, string(in))
			var out bytes.Buffer
			total := 0
			for i, e := range c.events {
				fmt.Fprintf(&out, "=== event %d: %d lines\n%s\n", i+1, e.Lines, e.Data)
				total += e.Lines
			}
			if want := strings.Count(string(in), "\n"); total != want {
				t.Errorf("events hold %d lines, input has %d", total, want)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("events differ from %s (run with -update to accept):\n%s", golden, out.String())
			}
		})
	}
}

// TestDetectorEventCounts pins the shape of the golden files, so an
// -update cannot quietly accept a broken detector.
func TestDetectorEventCounts(t *testing.T) {
	tests := []struct {
		name       string
		wantEvents int
		firstLines []string // first line of each multi-line event
	}{
		{"java", 4, []string{"2024-01-02 03:04:05,678 ERROR [main] com.example.Main - request failed", "2024-01-02 03:04:06,000 WARN [pool-1] com.example.Main - with suppressed"}},
		{"python", 4, []string{"2024-01-02 00:14:45,070 ERROR app: request failed", "2024-01-02 00:14:45,080 ERROR app: second failure"}},
		{"go", 4, []string{"panic: runtime error: invalid memory address or nil pointer dereference"}},
		{"node", 4, []string{"TypeError: cannot read property 'x' of undefined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _ := os.ReadFile(filepath.Join("testdata", tt.name+".log"))
			r, _ := Builtin(tt.name)
			c := run(t, r, string(in))
			if len(c.events) != tt.wantEvents {
				t.Errorf("%d events, want %d:\n%s", len(c.events), tt.wantEvents, strings.Join(c.texts(), "\n---\n"))
			}
			var multi []string
			for _, e := range c.events {
				if e.Lines > 1 {
					first, _, _ := strings.Cut(string(e.Data), "\n")
					multi = append(multi, first)
				}
			}
			if strings.Join(multi, "|") != strings.Join(tt.firstLines, "|") {
				t.Errorf("multi-line events start with %q, want %q", multi, tt.firstLines)
			}
		})
	}
}

func re(s string) Pattern { return Regexp{regexp.MustCompile(s)} }

// TestModes follows Vector's documented examples for each mode.
func TestModes(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		in   string
		want []string
	}{
		{
			"continue_through stack trace",
			Rule{Mode: ContinueThrough, Start: re(`^[^\s]`), Condition: re(`^[\s]+`)},
			"foo\nException in thread main\n    at a\n    at b\nbar\n",
			[]string{"foo", "Exception in thread main\n    at a\n    at b", "bar"},
		},
		{
			"continue_past backslash",
			Rule{Mode: ContinuePast, Start: re(`\\$`), Condition: re(`\\$`)},
			"one\ntwo \\\nthree \\\nfour\nfive\n",
			[]string{"one", "two \\\nthree \\\nfour", "five"},
		},
		{
			"halt_before timestamp",
			Rule{Mode: HaltBefore, Start: re(`^\[`), Condition: re(`^\[`)},
			"[1] a\n  more\n  more\n[2] b\n[3] c\n  x\n",
			[]string{"[1] a\n  more\n  more", "[2] b", "[3] c\n  x"},
		},
		{
			"halt_with semicolon",
			Rule{Mode: HaltWith, Start: re(`^SELECT`), Condition: re(`;$`)},
			"hello\nSELECT *\nFROM t\nWHERE x;\nbye\n",
			[]string{"hello", "SELECT *\nFROM t\nWHERE x;", "bye"},
		},
		{
			"no start pattern: every line may start",
			Rule{Mode: ContinueThrough, Condition: re(`^\s`)},
			"a\n b\nc\n",
			[]string{"a\n b", "c"},
		},
		{
			"line limit cuts and continues",
			Rule{Mode: ContinueThrough, Condition: re(`^\s`), MaxLines: 2},
			"a\n 1\n 2\n 3\nb\n",
			[]string{"a\n 1", " 2\n 3", "b"},
		},
		{
			"byte limit cuts and continues",
			Rule{Mode: ContinueThrough, Condition: re(`^\s`), MaxBytes: 7},
			"abc\n 12\n 34\nz\n",
			[]string{"abc\n 12", " 34", "z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := run(t, &tt.rule, tt.in)
			if got := c.texts(); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("events %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLimitsMarkTruncation(t *testing.T) {
	r := &Rule{Mode: ContinueThrough, Condition: re(`^\s`), MaxLines: 2}
	c := run(t, r, "a\n 1\n 2\n")
	if len(c.events) != 2 || !c.events[0].Truncated || c.events[1].Truncated {
		t.Fatalf("events %+v: want the first cut (Truncated) and the rest whole", c.events)
	}
}

func TestTimeoutAndEnd(t *testing.T) {
	r, _ := Builtin("java")
	a := r.New()
	c := &collect{}
	t0 := time.Unix(100, 0)
	a.Push([]byte("ERROR boom"), 11, t0, c)
	a.Push([]byte("\tat x.y(Z.java:1)"), 30, t0.Add(100*time.Millisecond), c)
	if a.Expired(t0.Add(time.Second)) {
		t.Fatal("expired one timeout after the first line; the timeout counts from the last line")
	}
	if !a.Expired(t0.Add(1100 * time.Millisecond)) {
		t.Fatal("not expired one timeout after the last line")
	}
	a.Flush(c)
	if len(c.events) != 1 || c.events[0].End != 30 || c.events[0].Lines != 2 {
		t.Fatalf("events %+v, want one of 2 lines ending at 30", c.events)
	}
	if a.Pending() || a.Expired(t0.Add(time.Hour)) {
		t.Fatal("pending after Flush")
	}
}

func TestParseFile(t *testing.T) {
	good := `
rules:
  - name: app
    paths: ["/var/log/app/*.log"]
    detector: java
  - name: continued
    mode: continue_past
    start_pattern: '\\$'
    condition_pattern: '\\$'
    timeout: 2s
    max_lines: 10
    max_bytes: 4096
`
	rules, err := ParseFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || !rules[0].Applies("/var/log/app/x.log") || rules[0].Applies("/var/log/other.log") ||
		!rules[1].Applies("/anything") || rules[1].Rule.Mode != ContinuePast || rules[1].Rule.Timeout != 2*time.Second {
		t.Fatalf("rules %+v", rules)
	}
	bad := []struct{ name, in, want string }{
		{"unknown key names line", "rules:\n  - name: x\n    detector: java\n    colour: red\n", "line 4: field colour not found"},
		{"unknown top key", "rulez: []\n", "line 1: field rulez not found"},
		{"bad mode", "rules:\n  - mode: sideways\n    condition_pattern: x\n", `rule 1: mode: unknown mode "sideways"`},
		{"bad regexp", "rules:\n  - name: r\n    mode: halt_with\n    condition_pattern: '('\n", "rule 1 (r): condition_pattern: error parsing regexp"},
		{"missing condition", "rules:\n  - mode: halt_with\n", "condition_pattern is required"},
		{"detector and mode", "rules:\n  - detector: java\n    mode: halt_with\n", "detector excludes"},
		{"unknown detector", "rules:\n  - detector: cobol\n", `unknown multiline detector "cobol"`},
		{"bad timeout", "rules:\n  - detector: go\n    timeout: soon\n", `timeout: "soon" is not a positive duration`},
		{"negative limit", "rules:\n  - detector: go\n    max_lines: -1\n", "max_lines: -1 is negative"},
		{"empty", "", "no rules"},
		{"bad path glob", "rules:\n  - detector: go\n    paths: ['[']\n", "paths"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestParseFileYAML pins what the rules file's YAML decoding accepts and
// how it reads it, where YAML libraries differ (the file was read with
// yaml v2 before podkit settled on gopkg.in/yaml.v3).
func TestParseFileYAML(t *testing.T) {
	rule := func(extra string) string { return "rules:\n  - detector: go\n" + extra }
	good := []struct {
		name, in string
		check    func(PathRule) bool
	}{
		// YAML 1.1 booleans are plain text in a string field.
		{"yes as a name", "rules:\n  - name: yes\n    detector: go\n", func(r PathRule) bool { return r.Rule.Name == "yes" }},
		{"off as a name", rule("    name: off\n"), func(r PathRule) bool { return r.Rule.Name == "off" }},
		{"number as a name", rule("    name: 010\n"), func(r PathRule) bool { return r.Rule.Name == "010" }},
		{"null name", rule("    name: ~\n"), func(r PathRule) bool { return r.Rule.Name == "" }},
		// Integers as YAML 1.1 wrote them.
		{"octal", rule("    max_lines: 0755\n"), func(r PathRule) bool { return r.Rule.MaxLines == 0o755 }},
		{"octal 0o", rule("    max_lines: 0o17\n"), func(r PathRule) bool { return r.Rule.MaxLines == 15 }},
		{"binary", rule("    max_lines: 0b11\n"), func(r PathRule) bool { return r.Rule.MaxLines == 3 }},
		{"hex", rule("    max_lines: 0x1F\n"), func(r PathRule) bool { return r.Rule.MaxLines == 31 }},
		{"underscores", rule("    max_bytes: 1_000\n"), func(r PathRule) bool { return r.Rule.MaxBytes == 1000 }},
		{"plus sign", rule("    max_bytes: +5\n"), func(r PathRule) bool { return r.Rule.MaxBytes == 5 }},
		{"float, truncated", rule("    max_lines: 1.5\n"), func(r PathRule) bool { return r.Rule.MaxLines == 1 }},
		{"exponent", rule("    max_lines: 1e3\n"), func(r PathRule) bool { return r.Rule.MaxLines == 1000 }},
		// A null path pattern is kept as "" (it matches no path): the
		// rule does not turn into one for every source.
		{"null path", rule("    paths: [~]\n"), func(r PathRule) bool { return len(r.Paths) == 1 && !r.Applies("/var/log/x.log") }},
		{"null path item", rule("    paths:\n      -\n      - '*.log'\n"), func(r PathRule) bool {
			return len(r.Paths) == 2 && r.Applies("x.log") && !r.Applies("x.txt")
		}},
		{"anchors and merge keys", "rules:\n  - &base\n    detector: go\n    max_lines: 7\n  - <<: *base\n    name: two\n", func(r PathRule) bool { return r.Rule.MaxLines == 7 }},
		{"flow mapping", "rules: [{detector: go, max_lines: 2}]\n", func(r PathRule) bool { return r.Rule.MaxLines == 2 }},
		{"only the first document", rule("---\nrules: 3\n"), func(r PathRule) bool { return r.Rule.Name == "" }},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParseFile([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(rules[0]) {
				t.Fatalf("rules %+v", rules)
			}
		})
	}
	bad := []struct{ name, in, want string }{
		{"duplicate key", rule("    detector: java\n"), "line 3: mapping key \"detector\" already defined at line 2"},
		{"duplicate top key", "rules: []\nrules: []\n", "line 2"},
		{"integer key", "1: x\nrules:\n  - detector: go\n", "line 1: field 1 not found"},
		{"boolean key", "yes: 1\n", "line 1: field yes not found"},
		{"null key", "~: 1\nrules:\n  - detector: go\n", "line 1: a key is empty"},
		{"empty anchored key", "rules:\n- detector: go\n&a :\n", "line 3: a key is empty"},
		{"boolean as an integer", rule("    max_lines: yes\n"), "line 3: cannot unmarshal"},
		{"quoted integer", rule("    max_lines: '5'\n"), "line 3: cannot unmarshal"},
		{"sexagesimal", rule("    max_lines: 1:30\n"), "line 3: cannot unmarshal"},
		{"too large", rule("    max_lines: 99999999999999999999\n"), "line 3: cannot unmarshal"},
		{"scalar for a list", rule("    paths: '*.log'\n"), "line 3: cannot unmarshal"},
		// A null rule is an empty rule, which is incomplete.
		{"null rule", "rules:\n  -\n  - detector: go\n", "rule 1: mode is required"},
		{"only null rules", "rules: [~]\n", "rule 1: mode is required"},
		{"tab indent", "rules:\n\t- detector: go\n", "line 2: found character that cannot start any token"},
		{"not a mapping", "- a\n", "cannot unmarshal !!seq"},
		{"only a comment", "# nothing\n", "no rules"},
		{"null rules", "rules: ~\n", "no rules"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.HasPrefix(err.Error(), "yaml: ") {
				t.Fatalf("error %q keeps the library's prefix", err)
			}
		})
	}
}

// FuzzAggregate checks that, whatever the lines and the rule, every line
// ends up in exactly one event, in order, and limits hold.
func FuzzAggregate(f *testing.F) {
	f.Add("a\n b\nc\n", uint8(0), `^\s`, uint8(3), "java")
	f.Add("x \\\ny\n", uint8(1), `\\$`, uint8(0), "")
	f.Add("Traceback (most recent call last):\n  File x\nValueError: y\n\nDuring handling of the above exception\n", uint8(2), `^T`, uint8(2), "python")
	f.Add("panic: x\n\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n", uint8(3), `;$`, uint8(1), "go")
	f.Fuzz(func(t *testing.T, input string, mode uint8, cond string, maxLines uint8, detector string) {
		var r *Rule
		if b, err := Builtin(detector); err == nil {
			r = b
		} else {
			c, err := regexp.Compile(cond)
			if err != nil {
				return
			}
			r = &Rule{Mode: Mode(mode % 4), Condition: Regexp{c}, Start: Regexp{c}}
		}
		r.MaxLines = int(maxLines)
		c := run(t, r, input)
		var got []string
		for _, e := range c.events {
			if r.MaxLines > 0 && e.Lines > r.MaxLines {
				t.Fatalf("event of %d lines passes MaxLines %d", e.Lines, r.MaxLines)
			}
			got = append(got, string(e.Data))
		}
		// Merged events drop trailing newlines; compare the non-empty lines.
		norm := func(s string) string {
			var keep []string
			for _, l := range strings.Split(s, "\n") {
				if l = strings.TrimRight(l, "\r"); l != "" {
					keep = append(keep, l)
				}
			}
			return strings.Join(keep, "\n")
		}
		if norm(strings.Join(got, "\n")) != norm(strings.TrimSuffix(input, "\n")) {
			t.Fatalf("lines lost or reordered:\nin  %q\nout %q", input, got)
		}
	})
}

func FuzzParseFile(f *testing.F) {
	f.Add("rules:\n  - detector: java\n")
	f.Add("rules:\n  - mode: halt_with\n    condition_pattern: ';$'\n    paths: ['*.log']\n")
	f.Add("rules: {}\n")
	f.Fuzz(func(t *testing.T, s string) {
		rules, err := ParseFile([]byte(s))
		if err != nil {
			return
		}
		for _, pr := range rules {
			a := pr.Rule.New()
			a.Push([]byte("x"), 1, time.Time{}, &collect{})
		}
	})
}

func BenchmarkJavaDetector(b *testing.B) {
	in, err := os.ReadFile(filepath.Join("testdata", "java.log"))
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(in, []byte("\n")), []byte("\n"))
	r, _ := Builtin("java")
	a := r.New()
	var s discard
	now := time.Now()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		for i, l := range lines {
			a.Push(l, int64(i), now, &s)
		}
	}
}

type discard struct{ n int }

func (d *discard) Emit(e Event) { d.n += e.Lines }
