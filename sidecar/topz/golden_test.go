package topz

import (
	"bytes"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// fixtureSnapshot scans a fixture proc tree under testdata with a fixed
// clock, so every rendering of it is reproducible.
func fixtureSnapshot(t *testing.T, root string) *Snapshot {
	t.Helper()
	sc := newScanner(filepath.Join("testdata", root), filepath.Join("testdata", "passwd"))
	sc.now = func() time.Time { return time.Unix(1700000000+86400, 500e6).UTC() }
	snap, _, err := sc.scan()
	if err != nil {
		t.Fatalf("scanning testdata/%s: %v", root, err)
	}
	snap.Took = 0
	return snap
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name, root, query string
	}{
		{"pod", "proc", ""},
		{"pod-rss-limit", "proc", "sort=rss&limit=3"},
		{"pod-pid-container", "proc", "sort=pid&container=3f1c2b9d&refresh=5"},
		{"alone", "proc-alone", ""},
	}
	renderers := []struct {
		ext    string
		render func(*bytes.Buffer, *view) error
	}{
		{"txt", func(b *bytes.Buffer, v *view) error { return renderText(b, v) }},
		{"json", func(b *bytes.Buffer, v *view) error { return renderJSON(b, v) }},
		{"html", func(b *bytes.Buffer, v *view) error { return renderHTML(b, v) }},
	}
	for _, tt := range tests {
		for _, r := range renderers {
			t.Run(tt.name+"."+r.ext, func(t *testing.T) {
				snap := fixtureSnapshot(t, tt.root)
				v, _ := url.ParseQuery(tt.query)
				q, err := ParseQuery(v)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := r.render(&buf, newView(snap, q)); err != nil {
					t.Fatalf("render: %v", err)
				}
				golden := filepath.Join("testdata", "golden", tt.name+"."+r.ext)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("%s differs from the rendering (run with -update if the change is intended):\n--- got\n%s\n--- want\n%s", golden, buf.Bytes(), want)
				}
			})
		}
	}
}

// TestFixtureScan checks what the scan of the fixture tree found, field by
// field, independently of the renderings.
func TestFixtureScan(t *testing.T) {
	snap := fixtureSnapshot(t, "proc")
	byPID := map[int]Process{}
	for _, p := range snap.Processes {
		byPID[p.PID] = p
	}
	if _, ok := byPID[62]; ok {
		t.Errorf("pid 62 (unparseable stat) was listed")
	}
	if snap.ParseErrors != 3 { // 62/stat, 61/status, 61/cgroup
		t.Errorf("ParseErrors = %d, want 3", snap.ParseErrors)
	}
	if snap.SelfPID != 40 || !byPID[40].Self {
		t.Errorf("SelfPID = %d, want 40 marked self", snap.SelfPID)
	}
	if snap.OnlyOwn() {
		t.Errorf("OnlyOwn() with six processes in three containers")
	}
	tests := []struct {
		pid                 int
		user, comm, command string
		ppid, threads, fds  int
		state, ctr, runtime string
		podUID              string
		rss                 int64
		start               string
		notes               int
		cpuPercentAtLeast   float64
		cpuPercentBelow     float64
	}{
		{pid: 1, user: "65535", comm: "pause", command: "/pause", ppid: 0, threads: 1, fds: 4, state: "S", ctr: "118b7c6d5e4f", runtime: "containerd", podUID: pod, rss: 512 << 10, start: "2023-11-14T22:13:21Z", cpuPercentBelow: 0.01},
		{pid: 7, user: "root", comm: "nginx", command: "nginx: master process /usr/sbin/nginx -g daemon off;", threads: 1, fds: 9, state: "S", ctr: "3f1c2b9d7e6a", runtime: "containerd", podUID: pod, rss: 6144 << 10, start: "2023-11-15T22:06:40Z"},
		{pid: 29, user: "nginx", comm: "nginx", command: "nginx: worker process", ppid: 7, threads: 1, fds: 12, state: "S", ctr: "3f1c2b9d7e6a", runtime: "containerd", podUID: pod, rss: 4300 << 10, cpuPercentAtLeast: 37.5, cpuPercentBelow: 37.51},
		{pid: 40, user: "nonroot", comm: "podkit", command: "/podkit topz --listen :8081", threads: 7, fds: 8, state: "S", ctr: "9a8b7c6d5e4f", runtime: "containerd", podUID: pod, rss: 14500 << 10},
		{pid: 52, user: "root", comm: "a) b (c", command: "/tmp/a) b (c 3600 arg with space", ppid: 40, threads: 2, fds: 3, state: "R", ctr: "c0ffee00c0ff", podUID: pod, rss: 1 << 20, cpuPercentAtLeast: 73.2, cpuPercentBelow: 73.21},
		{pid: 60, user: "root", comm: "defunct", command: "[defunct] <defunct>", ppid: 7, threads: 1, fds: 0, state: "Z", ctr: "3f1c2b9d7e6a", runtime: "containerd", podUID: pod, rss: 0},
		{pid: 61, user: "?", comm: "broken", command: "broken", ppid: 1, threads: 1, fds: 0, state: "S", rss: 100 * 4096, notes: 2},
	}
	for _, tt := range tests {
		p, ok := byPID[tt.pid]
		if !ok {
			t.Errorf("pid %d not listed", tt.pid)
			continue
		}
		if p.User != tt.user || p.Comm != tt.comm || p.Command != tt.command || p.PPID != tt.ppid || p.Threads != tt.threads ||
			p.FDs != tt.fds || p.State != tt.state || p.Container.ShortID != tt.ctr || p.Container.Runtime != tt.runtime ||
			p.Container.PodUID != tt.podUID || p.RSSBytes != tt.rss || len(p.Notes) != tt.notes {
			t.Errorf("pid %d = %+v\nwant %+v", tt.pid, p, tt)
		}
		if tt.start != "" && p.StartTime.Format(time.RFC3339) != tt.start {
			t.Errorf("pid %d started %s, want %s", tt.pid, p.StartTime.Format(time.RFC3339), tt.start)
		}
		if tt.cpuPercentBelow > 0 && (p.CPUPercent < tt.cpuPercentAtLeast || p.CPUPercent >= tt.cpuPercentBelow) {
			t.Errorf("pid %d CPU%% = %v, want in [%v, %v)", tt.pid, p.CPUPercent, tt.cpuPercentAtLeast, tt.cpuPercentBelow)
		}
	}
	alone := fixtureSnapshot(t, "proc-alone")
	if !alone.OnlyOwn() {
		t.Errorf("OnlyOwn() = false for a tree holding only topz")
	}
}
