package gctune

import (
	"flag"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupLimit(t *testing.T) {
	tests := []struct {
		name       string
		procCgroup string
		files      map[string]string
		want       int64
		ok         bool
	}{
		{"v2 in a container", "0::/\n", map[string]string{"memory.max": "536870912\n"}, 512 << 20, true},
		{"v2 unlimited", "0::/\n", map[string]string{"memory.max": "max\n"}, 0, false},
		{"v2 limit on a parent", "0::/kubepods/pod1/c1\n", map[string]string{
			"kubepods/pod1/c1/memory.max": "max\n",
			"kubepods/pod1/memory.max":    "1073741824\n",
			"kubepods/memory.max":         "4294967296\n",
		}, 1 << 30, true},
		{"v1", "4:memory:/docker/abc\n0::/\n", map[string]string{"memory/docker/abc/memory.limit_in_bytes": "268435456\n"}, 256 << 20, true},
		{"v1 unlimited", "4:memory:/docker/abc\n", map[string]string{"memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"hybrid: v2 without memory, v1 with", "4:cpu,memory:/x\n0::/\n", map[string]string{"memory/x/memory.limit_in_bytes": "1048576000\n"}, 1048576000, true},
		{"v1 path not mounted as such: the mount's own limit", "9:name=systemd:/\n4:memory:/process_api/61e4\n0::/\n",
			map[string]string{"memory/memory.limit_in_bytes": "209715200"}, 209715200, true},
		{"no cgroup files", "0::/\n", nil, 0, false},
		{"garbage", "not a cgroup line\n", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			got, ok := cgroupLimitFrom([]byte(tt.procCgroup), root)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %d %v, want %d %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	noCgroup := t.TempDir() // /proc/self/cgroup's path has no limit files here
	tests := []struct {
		name        string
		flag        int
		flagLimit   int64
		env         map[string]string
		percent     int
		percentFrom string
		limit       int64
		limitFrom   string
	}{
		{"defaults", 0, 0, nil, 400, "default", 0, "none (no cgroup memory limit)"},
		{"flags win", 150, 1 << 30, map[string]string{"GOGC": "50", "GOMEMLIMIT": "100MiB"}, 150, "--gc-percent", 1 << 30, "--memory-limit"},
		{"environment kept", 0, 0, map[string]string{"GOGC": "50", "GOMEMLIMIT": "100MiB"}, 0, "GOGC", 0, "GOMEMLIMIT"},
		{"off, as GOGC=off", Off, 0, map[string]string{"GOGC": "50"}, Off, "--gc-percent", 0, "none (no cgroup memory limit)"},
		{"any negative is off", -7, 0, nil, Off, "--gc-percent", 0, "none (no cgroup memory limit)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Resolve(tt.flag, tt.flagLimit, 400, func(k string) string { return tt.env[k] }, noCgroup)
			if s.Percent != tt.percent || s.PercentFrom != tt.percentFrom || s.MemoryLimit != tt.limit || s.LimitFrom != tt.limitFrom {
				t.Fatalf("got %+v, want percent %d from %q, limit %d from %q", s, tt.percent, tt.percentFrom, tt.limit, tt.limitFrom)
			}
		})
	}
}

// TestPercentFlag: --gc-percent takes what GOGC takes — a percentage or
// "off" — and 0 (its default) means "not set": GOGC from the environment,
// else the component's default. Anything else is an error naming what is
// accepted.
func TestPercentFlag(t *testing.T) {
	tests := []struct {
		arg     string
		want    int
		wantErr string
	}{
		{"250", 250, ""},
		{"off", Off, ""},
		{"OFF", Off, ""},
		{"0", 0, ""},
		{"100000", 100000, ""},
		{"-1", 0, "not a percentage"},
		{"100001", 0, "at most 100000"},
		{"fast", 0, "not a percentage"},
		{"", 0, "not a percentage"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(new(strings.Builder))
			p := 123
			fs.Var(PercentFlag(&p), "gc-percent", PercentUsage(400))
			err := fs.Parse([]string{"--gc-percent", tt.arg})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || p != tt.want {
				t.Fatalf("got %d, %v; want %d", p, err, tt.want)
			}
			if got := fs.Lookup("gc-percent").Value.String(); got != tt.arg && !(tt.arg == "OFF" && got == "off") {
				t.Errorf("String() = %q, want %q", got, tt.arg)
			}
		})
	}
	if u := PercentUsage(400); !strings.Contains(u, "off") || !strings.Contains(u, "0: GOGC if set, else 400") {
		t.Errorf("usage %q does not say what off and 0 mean", u)
	}
	for p, ok := range map[int]bool{Off: true, 0: true, 1: true, 100000: true, 100001: false, -2: false} {
		if err := CheckPercent(p); (err == nil) != ok {
			t.Errorf("CheckPercent(%d) = %v", p, err)
		}
	}
}

// TestApplyOff: off turns the collector off, as GOGC=off does, and the
// restore func turns it back.
func TestApplyOff(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	restore := Settings{Percent: Off}.Apply()
	if got := debug.SetGCPercent(-1); got >= 0 {
		t.Errorf("collector percent %d after Apply(off), want negative (off)", got)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after restore the percent is %d, want 100", got)
	}
}
