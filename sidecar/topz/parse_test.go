package topz

import (
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// statLine builds a /proc/PID/stat line with the given comm and the
// fields topz reads.
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
			s, err := parseStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("parseStat error = %v, want one containing %q wrapping ErrMalformed", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStat: %v", err)
			}
			want := statInfo{PID: 42, Comm: tt.comm, State: 'S', PPID: 1, UTime: 12, STime: 3, Threads: 4, StartTime: 12345, RSSPages: 256}
			if s != want {
				t.Fatalf("parseStat = %+v, want %+v", s, want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	full := "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nPPid:\t7\nUid:\t101\t102\t101\t101\nVmRSS:\t    4300 kB\nThreads:\t3\n"
	tests := []struct {
		name, in string
		want     statusInfo
		wantErr  string
	}{
		{"full", full, statusInfo{Name: "nginx", UID: 102, RSSBytes: 4300 * 1024, Threads: 3}, ""},
		{"kernel thread without VmRSS", "Name:\tkthreadd\nUid:\t0\t0\t0\t0\nThreads:\t1\n", statusInfo{Name: "kthreadd", UID: 0, RSSBytes: -1, Threads: 1}, ""},
		{"escaped name", "Name:\ta\\nb\\\\c\nUid:\t0\t0\t0\t0\n", statusInfo{Name: "a\nb\\c", UID: 0, RSSBytes: -1, Threads: -1}, ""},
		{"no uid", "Name:\tx\n", statusInfo{}, "no Uid"},
		{"bad uid", "Uid:\tzero\tzero\n", statusInfo{}, "Uid"},
		{"one uid field", "Uid:\t0\n", statusInfo{}, "Uid"},
		{"bad rss unit", "Uid:\t0\t0\t0\t0\nVmRSS:\t12 MB\n", statusInfo{}, "VmRSS"},
		{"negative threads", "Uid:\t0\t0\t0\t0\nThreads:\t-1\n", statusInfo{}, "Threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStatus([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseStatus error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStatus: %v", err)
			}
			if st != tt.want {
				t.Fatalf("parseStatus = %+v, want %+v", st, tt.want)
			}
		})
	}
}

const (
	id1 = "3f1c2b9d7e6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa00112233"
	id2 = "9a8b7c6d5e4f30211203a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e9f"
	pod = "7d0f6c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f"
)

func TestParseCgroup(t *testing.T) {
	podU := strings.ReplaceAll(pod, "-", "_")
	tests := []struct {
		name, in string
		want     Container
		wantErr  string
	}{
		{"docker cgroupfs v1", "12:pids:/docker/" + id1 + "\n11:memory:/docker/" + id1 + "\n0::/\n",
			Container{ID: id1, Runtime: "docker", Cgroup: "/docker/" + id1}, ""},
		{"docker systemd v2", "0::/system.slice/docker-" + id1 + ".scope\n",
			Container{ID: id1, Runtime: "docker", Cgroup: "/system.slice/docker-" + id1 + ".scope"}, ""},
		{"containerd kubepods systemd v2",
			"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podU + ".slice/cri-containerd-" + id1 + ".scope\n",
			Container{ID: id1, Runtime: "containerd", PodUID: pod, Cgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podU + ".slice/cri-containerd-" + id1 + ".scope"}, ""},
		{"kubepods cgroupfs v1", "4:memory:/kubepods/besteffort/pod" + pod + "/" + id1 + "\n",
			Container{ID: id1, PodUID: pod, Cgroup: "/kubepods/besteffort/pod" + pod + "/" + id1}, ""},
		{"cri-o", "0::/kubepods.slice/kubepods-pod" + podU + ".slice/crio-" + id1 + ".scope\n",
			Container{ID: id1, Runtime: "cri-o", PodUID: pod, Cgroup: "/kubepods.slice/kubepods-pod" + podU + ".slice/crio-" + id1 + ".scope"}, ""},
		{"cri-o conmon is not the container", "0::/kubepods.slice/kubepods-pod" + podU + ".slice/crio-conmon-" + id1 + ".scope\n",
			Container{PodUID: pod, Cgroup: "/kubepods.slice/kubepods-pod" + podU + ".slice/crio-conmon-" + id1 + ".scope"}, ""},
		{"podman", "0::/machine.slice/libpod-" + id1 + ".scope/container\n",
			Container{ID: id1, Runtime: "podman", Cgroup: "/machine.slice/libpod-" + id1 + ".scope/container"}, ""},
		{"other cgroup namespace", "0::/../" + id1 + "\n", Container{ID: id1, Cgroup: "/../" + id1}, ""},
		{"nested: innermost wins", "0::/docker/" + id1 + "/docker/" + id2 + "\n", Container{ID: id2, Runtime: "docker", Cgroup: "/docker/" + id1 + "/docker/" + id2}, ""},
		{"hybrid: v1 names it, v2 does not", "0::/\n8:pids:/docker/" + id2 + "\n", Container{ID: id2, Runtime: "docker", Cgroup: "/docker/" + id2}, ""},
		{"host process", "0::/init.scope\n", Container{Cgroup: "/init.scope"}, ""},
		{"host process v1", "9:name=systemd:/\n8:pids:/user.slice\n", Container{Cgroup: "/"}, ""},
		{"path with colon", "0::/a:b/docker-" + id1 + ".scope\n", Container{ID: id1, Runtime: "docker", Cgroup: "/a:b/docker-" + id1 + ".scope"}, ""},
		{"uppercase hex is not an id", "0::/docker/" + strings.ToUpper(id1) + "\n", Container{Cgroup: "/docker/" + strings.ToUpper(id1)}, ""},
		{"63 digits", "0::/docker/" + id1[1:] + "\n", Container{Cgroup: "/docker/" + id1[1:]}, ""},
		{"no colons", "garbage\n", Container{}, "ID:CONTROLLERS:PATH"},
		{"empty", "", Container{}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseCgroup([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCgroup error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCgroup: %v", err)
			}
			if tt.want.ID != "" {
				tt.want.ShortID = tt.want.ID[:12]
			}
			if c != tt.want {
				t.Fatalf("parseCgroup =\n %+v\nwant\n %+v", c, tt.want)
			}
		})
	}
}

func TestParsePasswd(t *testing.T) {
	in := "root:x:0:0:root:/root:/bin/sh\n# comment\n\nbad\nnginx:x:101:101::/:/bin/false\ndup:x:101:1::/:/bin/false\n:x:5:5::/:\nbig:x:99999999999:0::/:\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"
	got := parsePasswd([]byte(in))
	want := map[int]string{0: "root", 101: "nginx", 65534: "nobody"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsePasswd = %v, want %v", got, want)
	}
}

func TestParseBootTimeAndUptime(t *testing.T) {
	if b, err := parseBootTime([]byte("cpu 1 2\nbtime 1700000000\nprocesses 3\n")); err != nil || b != 1700000000 {
		t.Fatalf("parseBootTime = %d, %v", b, err)
	}
	for _, in := range []string{"cpu 1\n", "btime x\n", "btime -5\n"} {
		if _, err := parseBootTime([]byte(in)); err == nil {
			t.Errorf("parseBootTime(%q) succeeded", in)
		}
	}
	if u, err := parseUptime([]byte("123.45 99.0\n")); err != nil || u != 123.45 {
		t.Fatalf("parseUptime = %v, %v", u, err)
	}
	for _, in := range []string{"", "NaN 1", "-1 2", "x"} {
		if _, err := parseUptime([]byte(in)); err == nil {
			t.Errorf("parseUptime(%q) succeeded", in)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", nil},
		{"sleep\x003600\x00", []string{"sleep", "3600"}},
		{"sh\x00-c\x00a b\x00", []string{"sh", "-c", "a b"}},
		{"nginx: master process /usr/sbin/nginx", []string{"nginx: master process /usr/sbin/nginx"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		if got := parseCmdline([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		in      string
		want    Query
		wantErr string // the parameter the error must name
	}{
		{"", Query{Sort: "cpu"}, ""},
		{"sort=rss&limit=5", Query{Sort: "rss", Limit: 5}, ""},
		{"sort=pid&format=json&refresh=5&fresh=1&container=3f1c", Query{Sort: "pid", Format: "json", Refresh: 5, Fresh: true, Container: "3f1c"}, ""},
		{"sort=mem", Query{}, "sort"},
		{"sort=", Query{}, "sort"},
		{"limit=0", Query{}, "limit"},
		{"limit=-3", Query{}, "limit"},
		{"limit=ten", Query{}, "limit"},
		{"limit=1&limit=2", Query{}, `"limit" given 2 times`},
		{"format=xml", Query{}, "format"},
		{"refresh=-1", Query{}, "refresh"},
		{"refresh=3601", Query{}, "refresh"},
		{"fresh=yes", Query{}, "fresh"},
		{"container=xyz", Query{}, "container"},
		{"container=", Query{}, "container"},
		{"sortt=cpu", Query{}, `unknown query parameter "sortt"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.in)
			q, err := ParseQuery(v)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) && !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseQuery(%q) error = %v, want one naming %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || q != tt.want {
				t.Fatalf("ParseQuery(%q) = %+v, %v; want %+v", tt.in, q, err, tt.want)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept, want string
		ok           bool
	}{
		{"", FormatText, true},
		{"*/*", FormatText, true},
		{"application/json", FormatJSON, true},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", FormatHTML, true},
		{"text/plain", FormatText, true},
		{"text/*", FormatText, true},
		{"text/html;q=0.5, application/json", FormatJSON, true},
		{"application/json;q=0, */*", FormatText, true},
		{"text/plain;q=0, text/html;q=0, */*;q=0.1", FormatJSON, true},
		{"image/png", "", false},
		{"application/json;q=0", "", false},
		{"garbage;;;", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			got, ok := Negotiate(tt.accept)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Negotiate(%q) = %q, %v; want %q, %v", tt.accept, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"sleep 10", 0, "sleep 10"},
		{"a\nb\x1b[31m", 0, `a\nb\x1b[31m`},
		{"bad\xffutf8", 0, `bad\xffutf8`},
		{"abcdefgh", 4, "abc…"},
		{"héllo", 0, "héllo"},
	}
	for _, tt := range tests {
		if got := printable(tt.in, tt.max); got != tt.want {
			t.Errorf("printable(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := map[int64]string{-1: "-", 0: "0", 1023: "1023", 1024: "1.0K", 4300 * 1024: "4.2M", 150 << 20: "150M", 3 << 30: "3.0G"}
	for in, want := range tests {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine(1, "init")))
	f.Add([]byte(statLine(52, "a) b (c")))
	f.Add([]byte("62 (no closing paren S 1\n"))
	f.Add([]byte("1 () R 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStat(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if s.PID < 0 {
			t.Fatalf("negative pid %d accepted", s.PID)
		}
	})
}

func FuzzParseStatComm(f *testing.F) {
	f.Add("sleep")
	f.Add("a) b (c")
	f.Add(") S 1 2")
	f.Fuzz(func(t *testing.T, comm string) {
		s, err := parseStat([]byte(statLine(7, comm)))
		if err != nil {
			t.Fatalf("parseStat of a well-formed line with comm %q: %v", comm, err)
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
		st, err := parseStatus(b)
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

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("12:pids:/docker/" + id1 + "\n0::/\n"))
	f.Add([]byte("0::/kubepods.slice/kubepods-pod" + strings.ReplaceAll(pod, "-", "_") + ".slice/cri-containerd-" + id1 + ".scope\n"))
	f.Add([]byte("0::/../" + id2 + "\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCgroup(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if c.ID != "" && (!isContainerID(c.ID) || c.ShortID != c.ID[:12] || !strings.Contains(c.Cgroup, c.ID)) {
			t.Fatalf("inconsistent container %+v", c)
		}
		if c.PodUID != "" && !isUUID(c.PodUID) {
			t.Fatalf("bad pod uid %q", c.PodUID)
		}
	})
}

func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101::/:/bin/false\n"))
	f.Add([]byte(":::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for uid, name := range parsePasswd(b) {
			if uid < 0 || name == "" || strings.ContainsAny(name, ":\n") {
				t.Fatalf("bad entry %d=%q", uid, name)
			}
		}
	})
}

func FuzzQuery(f *testing.F) {
	f.Add("sort=rss&limit=5&format=json", "text/html;q=0.9, */*;q=0.1")
	f.Add("container=3f1c&fresh=1", "application/json")
	f.Add("%zz", ";;q=x")
	f.Fuzz(func(t *testing.T, raw, accept string) {
		if v, err := url.ParseQuery(raw); err == nil {
			if q, err := ParseQuery(v); err == nil {
				if q.Limit < 0 || q.Refresh < 0 || (q.Sort != "cpu" && q.Sort != "rss" && q.Sort != "pid") {
					t.Fatalf("accepted %+v", q)
				}
			}
		}
		if f, ok := Negotiate(accept); ok != (f != "") {
			t.Fatalf("Negotiate(%q) = %q, %v", accept, f, ok)
		}
		if s := printable(accept, 5); !utf8.ValidString(s) {
			t.Fatalf("printable produced invalid UTF-8 %q", s)
		}
	})
}
