package procfs

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// statLine builds a /proc/PID/stat line with the given comm and the
// fields Stat holds.
func statLine(pid int, comm string) string {
	return strconv.Itoa(pid) + " (" + comm + ") S 1 1 1 0 -1 4194560 100 0 0 0 12 3 0 0 20 0 4 0 12345 10000000 256 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, in string
		comm     string
		wantErr  string
	}{
		{"plain", statLine(42, "sleep"), "sleep", ""},
		{"space and parens in comm", statLine(42, "a) b (c"), "a) b (c", ""},
		{"comm ending in paren", statLine(42, "x)"), "x)", ""},
		{"comm that looks like fields", statLine(42, ") S 1 2 3"), ") S 1 2 3", ""},
		{"empty comm", statLine(42, ""), "", ""},
		{"newline in comm", statLine(42, "a\nb"), "a\nb", ""},
		{"no parens", "42 sleep S 1", "", "no (comm)"},
		{"close before open", "42 )sleep( S 1", "", "no (comm)"},
		{"short", "42 (sleep) S 1 2 3", "", "fields after comm"},
		{"bad pid", strings.Replace(statLine(42, "x"), "42", "4x2", 1), "", "pid"},
		{"bad state", strings.Replace(statLine(42, "x"), ") S ", ") SS ", 1), "", "state"},
		{"bad ppid", strings.Replace(statLine(42, "x"), ") S 1 ", ") S one ", 1), "", "ppid"},
		{"bad utime", strings.Replace(statLine(42, "x"), " 12 3 ", " -12 3 ", 1), "", "utime"},
		{"empty", "", "", "no (comm)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseStat error = %v, want one containing %q wrapping ErrMalformed", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStat: %v", err)
			}
			want := Stat{PID: 42, Comm: tt.comm, State: 'S', PPID: 1, UTime: 12, STime: 3, Threads: 4, StartTime: 12345, RSSPages: 256}
			if s != want {
				t.Fatalf("ParseStat = %+v, want %+v", s, want)
			}
		})
	}
}

// TestParseStatHead is config-sync's view: the process tree only, from a
// line that may stop after ppid.
func TestParseStatHead(t *testing.T) {
	for _, tc := range []struct {
		in         string
		pid        int
		comm       string
		state      byte
		ppid       int
		wantErrMsg string
	}{
		{"1 (nginx) S 0 1 1 0 -1", 1, "nginx", 'S', 0, ""},
		{"42 (my (odd) app) R 7 42 42", 42, "my (odd) app", 'R', 7, ""},
		{"9 (a b) Z 3", 9, "a b", 'Z', 3, ""},
		{statLine(5, "full"), 5, "full", 'S', 1, ""},
		{"9 nginx S 3", 0, "", 0, 0, "no (comm)"},
		{"9 (x) S", 0, "", 0, 0, "want at least 2 (state and ppid)"},
		{"9 (x) S abc", 0, "", 0, 0, "ppid"},
		{"9 (x) SR 1", 0, "", 0, 0, "state"},
		{"x (x) S 1", 0, "", 0, 0, "pid"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseStatHead([]byte(tc.in))
			if tc.wantErrMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrMsg) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want %q wrapping ErrMalformed", err, tc.wantErrMsg)
				}
				return
			}
			want := Stat{PID: tc.pid, Comm: tc.comm, State: tc.state, PPID: tc.ppid}
			if err != nil || s != want {
				t.Fatalf("ParseStatHead = %+v, %v; want %+v", s, err, want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	full := "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nPPid:\t7\nUid:\t101\t102\t101\t101\nVmRSS:\t    4300 kB\nThreads:\t3\n"
	tests := []struct {
		name, in string
		want     Status
		wantErr  string
	}{
		{"full", full, Status{Name: "nginx", UID: 102, RSSBytes: 4300 * 1024, Threads: 3}, ""},
		{"kernel thread without VmRSS", "Name:\tkthreadd\nUid:\t0\t0\t0\t0\nThreads:\t1\n", Status{Name: "kthreadd", UID: 0, RSSBytes: -1, Threads: 1}, ""},
		{"escaped name", "Name:\ta\\nb\\\\c\nUid:\t0\t0\t0\t0\n", Status{Name: "a\nb\\c", UID: 0, RSSBytes: -1, Threads: -1}, ""},
		{"no uid", "Name:\tx\n", Status{}, "no Uid"},
		{"bad uid", "Uid:\tzero\tzero\n", Status{}, "Uid"},
		{"one uid field", "Uid:\t0\n", Status{}, "Uid"},
		{"bad rss unit", "Uid:\t0\t0\t0\t0\nVmRSS:\t12 MB\n", Status{}, "VmRSS"},
		{"negative threads", "Uid:\t0\t0\t0\t0\nThreads:\t-1\n", Status{}, "Threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ParseStatus([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseStatus error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStatus: %v", err)
			}
			if st != tt.want {
				t.Fatalf("ParseStatus = %+v, want %+v", st, tt.want)
			}
		})
	}
}

func TestParseBootTimeAndUptime(t *testing.T) {
	if b, err := ParseBootTime([]byte("cpu 1 2\nbtime 1700000000\nprocesses 3\n")); err != nil || b != 1700000000 {
		t.Fatalf("ParseBootTime = %d, %v", b, err)
	}
	for _, in := range []string{"cpu 1\n", "btime x\n", "btime -5\n"} {
		if _, err := ParseBootTime([]byte(in)); err == nil {
			t.Errorf("ParseBootTime(%q) succeeded", in)
		}
	}
	if u, err := ParseUptime([]byte("123.45 99.0\n")); err != nil || u != 123.45 {
		t.Fatalf("ParseUptime = %v, %v", u, err)
	}
	for _, in := range []string{"", "NaN 1", "-1 2", "x"} {
		if _, err := ParseUptime([]byte(in)); err == nil {
			t.Errorf("ParseUptime(%q) succeeded", in)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in    string
		want  []string
		argv0 string
	}{
		{"", nil, ""},
		{"\x00", nil, ""},
		{"sleep\x003600\x00", []string{"sleep", "3600"}, "sleep"},
		{"sh\x00-c\x00a b\x00", []string{"sh", "-c", "a b"}, "sh"},
		{"nginx: master process /usr/sbin/nginx", []string{"nginx: master process /usr/sbin/nginx"}, "nginx: master process /usr/sbin/nginx"},
		{"a\x00\x00b\x00", []string{"a", "", "b"}, "a"},
	}
	for _, tt := range tests {
		if got := ParseCmdline([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := Argv0([]byte(tt.in)); got != tt.argv0 {
			t.Errorf("Argv0(%q) = %q, want %q", tt.in, got, tt.argv0)
		}
	}
}

// FuzzParseStat: /proc/PID/stat of any shape never panics; an accepted
// line's comm lies between its parentheses, and the head agrees with the
// full parse.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine(1, "init")))
	f.Add([]byte(statLine(52, "a) b (c")))
	f.Add([]byte("62 (no closing paren S 1\n"))
	f.Add([]byte("1 () R 0"))
	f.Add([]byte("1 (nginx) S 0 1 1 0 -1 4194560"))
	f.Add([]byte("42 (a) b) (c) R 7"))
	f.Add([]byte(")( S 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, herr := ParseStatHead(b)
		if herr != nil && !errors.Is(herr, ErrMalformed) {
			t.Fatalf("head error %v does not wrap ErrMalformed", herr)
		}
		if herr == nil && !strings.Contains(string(b), "("+h.Comm+")") {
			t.Fatalf("comm %q is not between the parentheses of %q", h.Comm, b)
		}
		s, err := ParseStat(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if herr != nil {
			t.Fatalf("ParseStat accepted what ParseStatHead refused (%v)", herr)
		}
		if s.PID < 0 {
			t.Fatalf("negative pid %d accepted", s.PID)
		}
		if s.PID != h.PID || s.Comm != h.Comm || s.State != h.State || s.PPID != h.PPID {
			t.Fatalf("ParseStat %+v and ParseStatHead %+v disagree", s, h)
		}
	})
}

func FuzzParseStatComm(f *testing.F) {
	f.Add("sleep")
	f.Add("a) b (c")
	f.Add(") S 1 2")
	f.Fuzz(func(t *testing.T, comm string) {
		s, err := ParseStat([]byte(statLine(7, comm)))
		if err != nil {
			t.Fatalf("ParseStat of a well-formed line with comm %q: %v", comm, err)
		}
		if s.Comm != comm || s.PPID != 1 || s.StartTime != 12345 {
			t.Fatalf("comm %q: parsed %+v", comm, s)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tnginx\nUid:\t101\t101\t101\t101\nVmRSS:\t 4300 kB\nThreads:\t3\n"))
	f.Add([]byte("Name:\tkthreadd\nUid:\t0\t0\t0\t0\n"))
	f.Add([]byte("Uid:\t-1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if st.UID < 0 || st.RSSBytes < -1 || st.Threads < -1 {
			t.Fatalf("accepted out-of-range values: %+v", st)
		}
	})
}

// FuzzParseSystem covers /proc/stat's btime, /proc/uptime and
// /proc/PID/cmdline.
func FuzzParseSystem(f *testing.F) {
	f.Add([]byte("cpu 1 2\nbtime 1700000000\n"))
	f.Add([]byte("123.45 99.0\n"))
	f.Add([]byte("sh\x00-c\x00a b\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := ParseBootTime(b); err != nil && !errors.Is(err, ErrMalformed) || err == nil && n < 0 {
			t.Fatalf("ParseBootTime = %d, %v", n, err)
		}
		if v, err := ParseUptime(b); err != nil && !errors.Is(err, ErrMalformed) || err == nil && (v < 0 || v != v) {
			t.Fatalf("ParseUptime = %v, %v", v, err)
		}
		args := ParseCmdline(b)
		if len(args) > 0 && args[0] != Argv0(b) {
			t.Fatalf("ParseCmdline()[0] = %q, Argv0 = %q", args[0], Argv0(b))
		}
	})
}
