package gctune

import (
	"os"
	"path/filepath"
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
