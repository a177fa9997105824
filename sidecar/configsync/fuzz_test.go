package configsync

import (
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"nginx -t -c {}", []string{"nginx", "-t", "-c", "{}"}, ""},
		{"  a   b\tc\n", []string{"a", "b", "c"}, ""},
		{`sh -c 'test -s "$PODKIT_STAGED_FILE"'`, []string{"sh", "-c", `test -s "$PODKIT_STAGED_FILE"`}, ""},
		{`a "b c" d`, []string{"a", "b c", "d"}, ""},
		{`"a\"b" 'x\y'`, []string{`a"b`, `x\y`}, ""},
		{`a\ b`, []string{"a b"}, ""},
		{`''`, []string{""}, ""},
		{`x""y`, []string{"xy"}, ""},
		{"a \\\nb", []string{"a", "b"}, ""},
		{`"$HOME"`, []string{"$HOME"}, ""},
		{"", nil, ""},
		{`'open`, nil, "unterminated single quote"},
		{`"open`, nil, "unterminated double quote"},
		{`trailing\`, nil, "backslash"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := splitWords(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("splitWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzSplitWords: never panics; what it returns survives a round trip
// through single quoting.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"nginx -t -c {}", `a "b c" 'd e' f\ g`, `"x\"y"`, "'", `\`, "a\\\nb", `""''`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := splitWords(strings.Join(quoted, " "))
		if err != nil || strings.Join(again, "\x00") != strings.Join(words, "\x00") || len(again) != len(words) {
			t.Fatalf("round trip of %q: %q, %v; want %q", s, again, err, words)
		}
	})
}

// /proc/PID/stat is parsed, and fuzzed, by internal/procfs
// (TestParseStatHead, FuzzParseStat); TestSignalByProcessName and
// TestFindProcessesSkipsSelf check what config-sync makes of it.

func TestMatchName(t *testing.T) {
	for _, tc := range []struct {
		name, comm, argv0 string
		want              bool
	}{
		{"nginx", "nginx", "nginx: master process /usr/sbin/nginx", true},
		{"nginx", "bash", "/usr/sbin/nginx", true},
		{"nginx", "nginx-debug", "/usr/sbin/nginx-debug", false},
		{"prometheus-server", "prometheus-serv", "", true}, // comm is cut to 15 bytes
		{"prometheus-server", "prometheus-serv", "/bin/prometheus-server", true},
		{"prometheus-serverX", "prometheus-serv", "/bin/prometheus-server", false},
		{"/usr/sbin/nginx", "nginx", "/usr/sbin/nginx", true},
		{"/usr/sbin/nginx", "nginx", "nginx", false},
		{"", "", "", false},
	} {
		if got := matchName(tc.name, tc.comm, tc.argv0); got != tc.want {
			t.Errorf("matchName(%q, %q, %q) = %v, want %v", tc.name, tc.comm, tc.argv0, got, tc.want)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, ok := range map[string]bool{"HUP": true, "sighup": true, "SIGUSR1": true, "usr2": true, "15": true, "0": false, "65": false, "HUPP": false, "": false} {
		if _, err := parseSignal(in); (err == nil) != ok {
			t.Errorf("parseSignal(%q): err = %v, want ok=%v", in, err, ok)
		}
	}
}

// FuzzParseHeader: a header accepted never carries a line break, so it
// cannot inject another header.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"X-Tenant: blue", "Authorization: Bearer x", "bad", ": v", "A: b\r\nC: d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := parseHeader(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(name+value, "\r\n\x00") || name == "" || strings.ContainsAny(name, " :") {
			t.Fatalf("parseHeader(%q) accepted name %q value %q", s, name, value)
		}
	})
}

// FuzzParseSignal: any input gives a signal from 1 to 64 or an error.
func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"HUP", "SIGUSR1", "9", "-1", "SIG"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := parseSignal(s)
		if err == nil && (sig < 1 || sig > 64) {
			t.Fatalf("parseSignal(%q) = %d", s, sig)
		}
	})
}
