package topz

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

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
