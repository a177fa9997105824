package tlsproxy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	type file struct{ path, content string }
	tests := []struct {
		name   string
		cgroup string // /proc/self/cgroup
		files  []file
		want   int64
		wantOK bool
	}{
		{
			name:   "v2 namespaced container",
			cgroup: "0::/\n",
			files:  []file{{"memory.max", "268435456\n"}},
			want:   268435456, wantOK: true,
		},
		{
			name:   "v2 unlimited",
			cgroup: "0::/\n",
			files:  []file{{"memory.max", "max\n"}},
		},
		{
			name:   "v2 nested: the smallest on the way up",
			cgroup: "0::/kubepods/pod1/ctr\n",
			files: []file{
				{"kubepods/memory.max", "1073741824"},
				{"kubepods/pod1/memory.max", "536870912"},
				{"kubepods/pod1/ctr/memory.max", "max"},
			},
			want: 536870912, wantOK: true,
		},
		{
			name:   "v1 memory controller",
			cgroup: "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
			files:  []file{{"memory/docker/abc/memory.limit_in_bytes", "104857600\n"}},
			want:   104857600, wantOK: true,
		},
		{
			name:   "v1 unlimited (page-rounded int64 max)",
			cgroup: "4:memory:/\n",
			files:  []file{{"memory/memory.limit_in_bytes", "9223372036854771712\n"}},
		},
		{
			name:   "v1 path not mounted as such: the mount's own limit",
			cgroup: "9:name=systemd:/\n4:memory:/process_api/61e4\n0::/\n",
			files:  []file{{"memory/memory.limit_in_bytes", "209715200"}},
			want:   209715200, wantOK: true,
		},
		{
			name:   "no cgroup files",
			cgroup: "0::/\n",
		},
		{
			name:   "garbage",
			cgroup: "not a cgroup file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "sys")
			for _, f := range tt.files {
				p := filepath.Join(root, f.path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			proc := filepath.Join(dir, "cgroup")
			if err := os.WriteFile(proc, []byte(tt.cgroup), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := cgroupMemoryLimit(root, proc)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("cgroupMemoryLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if _, ok := cgroupMemoryLimit(t.TempDir(), "/nonexistent/cgroup"); ok {
		t.Error("a missing /proc/self/cgroup reported a limit")
	}
}

func TestApplyGCZeroLeavesRuntimeAlone(t *testing.T) {
	if s := applyGC(0, t.TempDir()); s != (gcSettings{}) {
		t.Errorf("applyGC(0) = %+v, want nothing done", s)
	}
}

func TestGCPercentDefaultYieldsToGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	if got := defaultGCPercent(); got != DefaultGCPercent {
		t.Errorf("defaultGCPercent() = %d, want %d", got, DefaultGCPercent)
	}
	t.Setenv("GOGC", "200")
	if got := defaultGCPercent(); got != 0 {
		t.Errorf("with GOGC set, defaultGCPercent() = %d, want 0", got)
	}
}
