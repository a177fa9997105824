package topz

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"

	"github.com/podkit/podkit/internal/child"
	"github.com/podkit/podkit/internal/testdeps"
)

// The test binary doubles as the helper processes the tests look at:
//
//	TOPZ_TEST_ROLE=podkit   runs `podkit topz` exactly as cmd/podkit does
//	                        (cli.Main with the topz command), for the
//	                        subprocess tests;
//	TOPZ_TEST_ROLE=threads  holds TOPZ_TEST_THREADS OS threads and sleeps.
func TestMain(m *testing.M) {
	switch os.Getenv("TOPZ_TEST_ROLE") {
	case "podkit":
		stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		os.Exit(cli.Main(context.Background(), []cli.Command{Command()}, os.Args[1:], stdio))
	case "threads":
		n, _ := strconv.Atoi(os.Getenv("TOPZ_TEST_THREADS"))
		for range n {
			go func() {
				runtime.LockOSThread()
				time.Sleep(time.Hour)
			}()
		}
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild starts a process that the test kills and reaps when it ends.
func startChild(t *testing.T, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	return startCmd(t, env, nil, name, args...)
}

// startChildFiles is startChild passing extra open files (fd 3 on).
func startChildFiles(t *testing.T, files []*os.File, name string, args ...string) *exec.Cmd {
	t.Helper()
	return startCmd(t, nil, files, name, args...)
}

func startCmd(t *testing.T, env []string, files []*os.File, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = files
	child.Prepare(cmd, child.Options{Group: true})
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// server is a topz hosted in-process under the container contract.
type server struct {
	url, admin string
}

func startTopz(t *testing.T, cfg Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	tz, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	o := container.DefaultOptions()
	o.AdminListener, o.AdminAddr = adminLn, adminLn.Addr().String()
	o.DrainDelay, o.DrainTimeout = 0, 5*time.Second
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, tz, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("topz Run: %v", err)
		}
	})
	s := &server{url: "http://" + ln.Addr().String(), admin: "http://" + adminLn.Addr().String()}
	waitOK(t, s.admin+"/readyz")
	return s
}

// waitOK polls url until it answers 200, for at most 15 s.
func waitOK(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 15s (last: %s)", url, last)
}

// get fetches url with an Accept header and returns the status, the
// Content-Type and the body.
func get(t *testing.T, url, accept string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func getJSON(t *testing.T, url string) jsonDoc {
	t.Helper()
	code, ctype, body := get(t, url, "application/json")
	if code != 200 || ctype != "application/json" {
		t.Fatalf("GET %s: %d %s: %s", url, code, ctype, body)
	}
	var doc jsonDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("GET %s: decoding: %v\n%s", url, err, body)
	}
	return doc
}

func find(doc jsonDoc, pid int) (Process, bool) {
	for _, p := range doc.Processes {
		if p.PID == pid {
			return p, true
		}
	}
	return Process{}, false
}

func find2(doc jsonDoc, a, b int) (Process, Process) {
	pa, _ := find(doc, a)
	pb, _ := find(doc, b)
	return pa, pb
}

// countFDsHere counts /proc/PID/fd the test's own way.
func countFDsHere(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/fd: %v", pid, err)
	}
	return len(ents)
}

func findByCmdline(doc jsonDoc, cmdline []string) (Process, bool) {
	for _, p := range doc.Processes {
		if reflect.DeepEqual(p.Cmdline, cmdline) {
			return p, true
		}
	}
	return Process{}, false
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is part of every Debian system (coreutils, dash) and must be installed: %v", name, err)
	}
	p, err = filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealProcesses runs children with known command lines, parents,
// thread counts and states, and finds each of them with the right fields
// in all three formats.
func TestRealProcesses(t *testing.T) {
	sleepBin, shBin := lookPath(t, "sleep"), lookPath(t, "sh")
	dir := t.TempDir()
	// A comm name with a space and parentheses, through a symlinked
	// binary name: the kernel takes comm from the name exec'd.
	odd := filepath.Join(dir, "my) sleep (x")
	if err := os.Symlink(sleepBin, odd); err != nil {
		t.Fatal(err)
	}
	tag := strconv.Itoa(os.Getpid())
	me := os.Getpid()

	plain := startChild(t, nil, sleepBin, "3600."+tag+"1")
	// The odd one also holds three more descriptors than the plain one.
	var extra []*os.File
	for range 3 {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		extra = append(extra, f)
	}
	oddc := startChildFiles(t, extra, odd, "3600."+tag+"2")
	busy := startChild(t, nil, shBin, "-c", "while :; do :; done", "busy-"+tag)
	parent := startChild(t, nil, shBin, "-c", "sleep 3600."+tag+"3 & wait", "parent-"+tag)
	const lockedThreads = 6
	threads := startChild(t, []string{"TOPZ_TEST_ROLE=threads", "TOPZ_TEST_THREADS=" + strconv.Itoa(lockedThreads)}, os.Args[0], "-test.run=^$", "threads-"+tag)
	zombie := exec.Command(lookPath(t, "true"))
	child.Prepare(zombie, child.Options{})
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	var reapOnce sync.Once
	reap := func() { reapOnce.Do(func() { zombie.Wait() }) }
	t.Cleanup(reap) // until then it stays a zombie: nobody has waited for it

	cfg := DefaultConfig()
	cfg.Interval = 500 * time.Millisecond
	cfg.CPUWindow = 100 * time.Millisecond
	s := startTopz(t, cfg)

	// Poll until every child is seen in its settled state (the grandchild
	// forked, the zombie exited, the busy loop used CPU, the threads
	// started).
	var doc jsonDoc
	var grandchild Process
	ready := func() string {
		doc = getJSON(t, s.url+"/topz?fresh=1&sort=pid")
		for _, c := range []*exec.Cmd{plain, oddc, busy, parent, threads} {
			if _, ok := find(doc, c.Process.Pid); !ok {
				return fmt.Sprintf("child %d (%s) not listed", c.Process.Pid, c.Path)
			}
		}
		var ok bool
		if grandchild, ok = findByCmdline(doc, []string{"sleep", "3600." + tag + "3"}); !ok {
			return "grandchild sleep not listed"
		}
		if z, ok := find(doc, zombie.Process.Pid); !ok || z.State != "Z" {
			return fmt.Sprintf("zombie %d not listed as Z: %+v", zombie.Process.Pid, z)
		}
		if b, _ := find(doc, busy.Process.Pid); b.CPUPercent <= 0 {
			return "busy loop shows no CPU yet"
		}
		if th, _ := find(doc, threads.Process.Pid); th.Threads < lockedThreads+1 {
			return fmt.Sprintf("threads child shows %d threads", th.Threads)
		}
		return ""
	}
	deadline := time.Now().Add(20 * time.Second)
	for why := ready(); why != ""; why = ready() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}

	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	wantUser := u.Username
	if doc.SelfPID != me {
		t.Errorf("self_pid = %d, want the test process %d", doc.SelfPID, me)
	}
	if p, _ := find(doc, me); !p.Self {
		t.Errorf("the test process (topz's own) is not marked self: %+v", p)
	}
	if doc.Warning != "" {
		t.Errorf("warning %q although the whole host is visible", doc.Warning)
	}

	tests := []struct {
		name    string
		pid     int
		ppid    int
		comm    string
		cmdline []string
		threads int // 0: not checked
		fds     int // -2: not checked; -3: as counted in /proc/PID/fd by the test
		state   string
	}{
		{"sleep", plain.Process.Pid, me, "sleep", []string{sleepBin, "3600." + tag + "1"}, 1, -3, "S"},
		{"odd comm", oddc.Process.Pid, me, "my) sleep (x", []string{odd, "3600." + tag + "2"}, 1, -3, "S"},
		{"busy loop", busy.Process.Pid, me, "sh", []string{shBin, "-c", "while :; do :; done", "busy-" + tag}, 1, -3, ""},
		{"grandchild", grandchild.PID, parent.Process.Pid, "sleep", []string{"sleep", "3600." + tag + "3"}, 1, -2, "S"},
		{"zombie", zombie.Process.Pid, me, "true", nil, 1, 0, "Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := find(doc, tt.pid)
			if !ok {
				t.Fatalf("pid %d not listed", tt.pid)
			}
			if p.PPID != tt.ppid || p.Comm != tt.comm || !reflect.DeepEqual(p.Cmdline, tt.cmdline) {
				t.Errorf("pid %d: ppid %d comm %q cmdline %q; want ppid %d comm %q cmdline %q", tt.pid, p.PPID, p.Comm, p.Cmdline, tt.ppid, tt.comm, tt.cmdline)
			}
			if tt.threads > 0 && p.Threads != tt.threads {
				t.Errorf("pid %d: %d threads, want %d", tt.pid, p.Threads, tt.threads)
			}
			if tt.fds == -3 {
				tt.fds = countFDsHere(t, tt.pid)
			}
			if tt.fds != -2 && p.FDs != tt.fds {
				t.Errorf("pid %d: %d fds, want %d (notes %q)", tt.pid, p.FDs, tt.fds, p.Notes)
			}
			if tt.state != "" && p.State != tt.state {
				t.Errorf("pid %d: state %s, want %s", tt.pid, p.State, tt.state)
			}
			if p.UID != os.Getuid() || p.User != wantUser {
				t.Errorf("pid %d: uid %d user %q, want %d %q", tt.pid, p.UID, p.User, os.Getuid(), wantUser)
			}
			// btime has whole seconds and the wall clock may have been
			// stepped since boot: allow a minute either way.
			if d := time.Since(p.StartTime); d < -time.Minute || d > 2*time.Minute {
				t.Errorf("pid %d: start time %s is %s from now", tt.pid, p.StartTime, d)
			}
			if p.Container.Cgroup == "" {
				t.Errorf("pid %d: no cgroup path", tt.pid)
			}
			if tt.state != "Z" && p.RSSBytes <= 0 {
				t.Errorf("pid %d: rss %d", tt.pid, p.RSSBytes)
			}
		})
	}
	if a, b := find2(doc, plain.Process.Pid, oddc.Process.Pid); b.FDs-a.FDs != 3 {
		t.Errorf("fds: plain sleep %d, sleep with three more open files %d", a.FDs, b.FDs)
	}
	if z, _ := find(doc, zombie.Process.Pid); z.Command != "[true] <defunct>" {
		t.Errorf("zombie command = %q, want [true] <defunct>", z.Command)
	}

	t.Run("sort and limit", func(t *testing.T) {
		byCPU := getJSON(t, s.url+"/topz?sort=cpu")
		idx := map[int]int{}
		for i, p := range byCPU.Processes {
			idx[p.PID] = i
			if i > 0 && p.CPUPercent > byCPU.Processes[i-1].CPUPercent {
				t.Fatalf("sort=cpu: %v after %v", p.CPUPercent, byCPU.Processes[i-1].CPUPercent)
			}
		}
		if b, pl := idx[busy.Process.Pid], idx[plain.Process.Pid]; b > pl {
			t.Errorf("sort=cpu: busy loop at %d after sleep at %d", b, pl)
		}
		byRSS := getJSON(t, s.url+"/topz?sort=rss&limit=5")
		if len(byRSS.Processes) != 5 || byRSS.Shown != 5 || byRSS.Visible <= 5 {
			t.Fatalf("limit=5: %d shown of %d", len(byRSS.Processes), byRSS.Visible)
		}
		for i := 1; i < len(byRSS.Processes); i++ {
			if byRSS.Processes[i].RSSBytes > byRSS.Processes[i-1].RSSBytes {
				t.Errorf("sort=rss not descending at %d", i)
			}
		}
		byPID := getJSON(t, s.url+"/topz?sort=pid")
		for i := 1; i < len(byPID.Processes); i++ {
			if byPID.Processes[i].PID <= byPID.Processes[i-1].PID {
				t.Errorf("sort=pid not ascending at %d", i)
			}
		}
	})

	t.Run("text", func(t *testing.T) {
		code, ctype, body := get(t, s.url+"/topz?sort=pid", "")
		if code != 200 || ctype != "text/plain; charset=utf-8" {
			t.Fatalf("%d %s", code, ctype)
		}
		header := regexp.MustCompile(`(?m)^PID +PPID +USER +S +%CPU +RSS +THR +FDS +STARTED +CONTAINER +COMMAND$`)
		if !header.MatchString(body) {
			t.Fatalf("no table header in:\n%s", body)
		}
		rows := map[string][]string{}
		for _, line := range strings.Split(body, "\n") {
			if f := strings.Fields(line); len(f) >= 11 {
				rows[f[0]] = f
			}
		}
		for _, c := range []struct {
			pid   int
			ppid  int
			state string
			cmd   string
		}{
			{plain.Process.Pid, me, "S", sleepBin + " 3600." + tag + "1"},
			{oddc.Process.Pid, me, "S", odd + " 3600." + tag + "2"},
			{zombie.Process.Pid, me, "Z", "[true] <defunct>"},
		} {
			f, ok := rows[strconv.Itoa(c.pid)]
			if !ok {
				t.Errorf("pid %d has no row", c.pid)
				continue
			}
			got := strings.Join(f[10:], " ")
			if f[1] != strconv.Itoa(c.ppid) || f[2] != wantUser || f[3] != c.state || got != strings.Join(strings.Fields(c.cmd), " ") {
				t.Errorf("pid %d row %q; want ppid %d user %s state %s command %q", c.pid, f, c.ppid, wantUser, c.state, c.cmd)
			}
		}
	})

	t.Run("html", func(t *testing.T) {
		code, ctype, body := get(t, s.url+"/topz", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		if code != 200 || ctype != "text/html; charset=utf-8" {
			t.Fatalf("%d %s", code, ctype)
		}
		if !strings.HasPrefix(body, "<!doctype html>") || !strings.HasSuffix(body, "</html>\n") {
			t.Fatalf("not a whole HTML page:\n%s", body)
		}
		rowRE := regexp.MustCompile(`<tr(?: class="self")? data-pid="(\d+)">(.*?)</tr>`)
		cellRE := regexp.MustCompile(`<td[^>]*>(.*?)</td>`)
		rows := map[int][]string{}
		for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
			pid, _ := strconv.Atoi(m[1])
			for _, c := range cellRE.FindAllStringSubmatch(m[2], -1) {
				rows[pid] = append(rows[pid], c[1])
			}
		}
		if len(rows) != len(doc.Processes) && len(rows) < 10 {
			t.Errorf("%d rows in the page", len(rows))
		}
		for _, c := range []struct {
			pid  int
			cmd  string
			ppid int
		}{
			{oddc.Process.Pid, odd + " 3600." + tag + "2", me},
			{zombie.Process.Pid, "[true] <defunct>", me},
			{busy.Process.Pid, shBin + " -c while :; do :; done busy-" + tag, me},
		} {
			cells := rows[c.pid]
			if len(cells) != 11 {
				t.Errorf("pid %d: %d cells: %q", c.pid, len(cells), cells)
				continue
			}
			if html.UnescapeString(cells[10]) != c.cmd || cells[1] != strconv.Itoa(c.ppid) {
				t.Errorf("pid %d: cells %q; want command %q, ppid %d", c.pid, cells, c.cmd, c.ppid)
			}
		}
		if !strings.Contains(body, "[true] &lt;defunct&gt;") {
			t.Errorf("the zombie's command is not HTML-escaped")
		}
		if strings.Contains(body, `http-equiv="refresh"`) {
			t.Errorf("auto-refresh without ?refresh")
		}
		_, _, auto := get(t, s.url+"/topz?format=html&refresh=5", "")
		if !strings.Contains(auto, `<meta http-equiv="refresh" content="5">`) {
			t.Errorf("?refresh=5 has no refresh meta tag")
		}
	})

	// Once reaped, the zombie is gone from the next scan.
	reap()
	if p, ok := find(getJSON(t, s.url+"/topz?fresh=1"), zombie.Process.Pid); ok {
		t.Errorf("reaped zombie still listed: %+v", p)
	}
}

// TestHTTPErrors checks that bad requests get a status and a message
// naming what was wrong, in the format asked for.
func TestHTTPErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Proc = filepath.Join("testdata", "proc")
	cfg.Passwd = filepath.Join("testdata", "passwd")
	s := startTopz(t, cfg)
	tests := []struct {
		path, accept string
		code         int
		want         string
	}{
		{"/topz?sort=mem", "", 400, `sort: "mem" is not cpu, rss or pid`},
		{"/topz?limit=0", "", 400, `limit: "0"`},
		{"/topz?limit=x", "application/json", 400, `{"error":"limit: \"x\" is not a number from 1 to 1000000"}`},
		{"/topz?format=yaml", "", 400, `format: "yaml"`},
		{"/topz?srot=cpu", "", 400, `unknown query parameter "srot"`},
		{"/topz", "image/png", 406, `Accept: "image/png"`},
		{"/nope", "", 404, "404 page not found"},
		{"/topz?format=json&limit=2", "image/png", 200, `"processes_shown": 2`},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.accept, func(t *testing.T) {
			code, _, body := get(t, s.url+tt.path, tt.accept)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("GET %s: %d %q; want %d containing %q", tt.path, code, body, tt.code, tt.want)
			}
		})
	}
	resp, err := http.Post(s.url+"/topz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /topz: %s, want 405", resp.Status)
	}
	req, _ := http.NewRequest("GET", s.url+"/", nil)
	resp, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/topz" {
		t.Errorf("GET /: %s to %q, want 302 to /topz", resp.Status, resp.Header.Get("Location"))
	}
}

// TestMetrics checks topz's metrics on the admin listener after scans of
// the fixture tree (which has three unparseable files).
func TestMetrics(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interval = time.Hour // only the two start-up scans
	cfg.Proc = filepath.Join("testdata", "proc")
	cfg.Passwd = filepath.Join("testdata", "passwd")
	s := startTopz(t, cfg)
	get(t, s.url+"/topz?format=json", "")
	_, _, body := get(t, s.admin+"/metrics", "")
	for _, want := range []string{
		"podkit_topz_processes 7\n",
		"podkit_topz_containers 4\n",
		"podkit_topz_only_own_processes 0\n",
		`podkit_topz_parse_errors_total{file="cgroup"} 2` + "\n", // two scans at start
		`podkit_topz_parse_errors_total{file="stat"} 2` + "\n",
		`podkit_topz_parse_errors_total{file="status"} 2` + "\n",
		`podkit_topz_scrapes_total{result="ok"} 2` + "\n",
		"podkit_topz_scrape_duration_seconds_count 2\n",
		`podkit_topz_requests_total{code="200",format="json"} 1` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grep(body, "podkit_topz_"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// proc is a `podkit topz` subprocess.
type proc struct {
	cmd    *exec.Cmd
	url    string
	admin  string
	stderr *strings.Builder
	mu     *sync.Mutex
}

// runPodkit runs `podkit topz ARGS` (the test binary in the podkit role),
// optionally under a wrapper command, and waits until it serves. It reads
// the listen and admin addresses from its JSON log, so both can be
// 127.0.0.1:0.
func runPodkit(t *testing.T, wrap []string, cred *syscall.Credential, args ...string) *proc {
	t.Helper()
	bin := os.Args[0]
	if cred != nil {
		bin = exposedBinary(t)
	}
	argv := append(append(append([]string{}, wrap...), bin, "topz", "--listen", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-format", "json", "--drain-delay", "0s"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "TOPZ_TEST_ROLE=podkit")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	child.Prepare(cmd, child.Options{})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &strings.Builder{}, mu: &sync.Mutex{}}
	cmd.Stderr = lockedWriter{p.mu, p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %q: %v", argv, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addrs := make(chan [2]string, 1)
	go func() {
		var admin string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct{ Msg, Listen, Admin_addr string }
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "started":
				admin = line.Admin_addr
			case "serving":
				addrs <- [2]string{line.Listen, admin}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-addrs:
		p.url, p.admin = "http://"+a[0], "http://"+a[1]
	case <-time.After(20 * time.Second):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("topz %q did not start serving within 20s; stderr:\n%s", argv, p.stderr.String())
	}
	return p
}

// exposedBinary copies the test binary where another user may run it (the
// build directory is private to the test's user).
func exposedBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "topz-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "topz.test")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestOnlyOwnProcess runs topz alone in a new PID namespace, as a sidecar
// without a shared PID namespace is, and checks every format says so.
func TestOnlyOwnProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		testdeps.Unavailable(t, "a new PID namespace needs root (unshare --pid)", "run the tests as root")
	}
	unshare := lookPath(t, "unshare")
	if out, err := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		// Root in a container without CAP_SYS_ADMIN: no namespaces to make.
		testdeps.Unavailable(t, fmt.Sprintf("unshare --pid --mount-proc does not work here: %v: %s", err, strings.TrimSpace(string(out))), "needs CAP_SYS_ADMIN")
	}
	p := runPodkit(t, []string{unshare, "--pid", "--fork", "--mount-proc", "--kill-child"}, nil)
	doc := getJSON(t, p.url+"/topz")
	if doc.Warning != onlyOwnWarning || doc.Visible != 1 || doc.SelfPID != 1 || len(doc.Processes) != 1 || !doc.Processes[0].Self {
		t.Errorf("JSON: warning %q, %d visible, self_pid %d", doc.Warning, doc.Visible, doc.SelfPID)
	}
	_, _, text := get(t, p.url+"/topz", "text/plain")
	if !strings.Contains(text, "WARNING: "+onlyOwnWarning) {
		t.Errorf("text has no warning:\n%s", text)
	}
	_, _, page := get(t, p.url+"/topz", "text/html")
	if !strings.Contains(page, `<div class="warning" role="alert">⚠ `+html.EscapeString(onlyOwnWarning)+`</div>`) {
		t.Errorf("HTML has no warning banner")
	}
	_, _, metrics := get(t, p.admin+"/metrics", "")
	if !strings.Contains(metrics, "podkit_topz_only_own_processes 1\n") {
		t.Errorf("/metrics: %s", grep(metrics, "only_own"))
	}
	code, _, health := get(t, p.admin+"/healthz?verbose", "")
	if !strings.Contains(health, "pid-namespace-shared") || !strings.Contains(health, "PID namespace is probably not shared") {
		t.Errorf("/healthz?verbose (%d) does not name the unshared PID namespace:\n%s", code, health)
	}
	// A warning is not unreadiness: the sidecar still serves.
	waitOK(t, p.admin+"/readyz")
}

// TestOtherUsersFDs runs topz as an unprivileged user: the open file
// descriptors of other users' processes cannot be counted, which shows as
// -1 with a note, never as an error page.
func TestOtherUsersFDs(t *testing.T) {
	if os.Geteuid() != 0 {
		// topz runs as the test's user; pid 1 belongs to root.
		p := runPodkit(t, nil, nil)
		checkDenied(t, getJSON(t, p.url+"/topz?sort=pid"), 1)
		return
	}
	// A root child that topz, running as nobody, may not look into.
	sleeper := startChild(t, nil, lookPath(t, "sleep"), "3600.7")
	cred := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	p := runPodkit(t, nil, cred)
	doc := getJSON(t, p.url+"/topz?sort=pid")
	checkDenied(t, doc, sleeper.Process.Pid)
	self, _ := find(doc, doc.SelfPID)
	if self.FDs <= 0 || self.User != "nobody" || self.UID != 65534 {
		t.Errorf("topz's own process: fds %d user %q uid %d; want its fds counted, user nobody", self.FDs, self.User, self.UID)
	}
	code, _, text := get(t, p.url+"/topz", "")
	if code != 200 || !strings.Contains(text, "notes:\n  fds: permission denied") {
		t.Errorf("text (%d) has no permission note:\n%s", code, text)
	}
}

func checkDenied(t *testing.T, doc jsonDoc, pid int) {
	t.Helper()
	p, ok := find(doc, pid)
	if !ok {
		t.Fatalf("pid %d not listed", pid)
	}
	if p.FDs != -1 || len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "fds: permission denied") {
		t.Errorf("pid %d: fds %d notes %q; want -1 with a permission note", pid, p.FDs, p.Notes)
	}
	if p.Comm == "" || p.Command == "" || p.User == "" {
		t.Errorf("pid %d: the readable fields are missing: %+v", pid, p)
	}
}

// TestBadFlags checks that a bad command line exits 2 naming the flag.
func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--interval", "0s"}, "--interval: 0s is not between 100ms and 1h"},
		{[]string{"--interval", "soon"}, "--interval"},
		{[]string{"--cpu-window", "2h"}, "--cpu-window: 2h0m0s is not between 10ms and 1m"},
		{[]string{"--interval", "1s", "--cpu-window", "5s"}, "--interval: 1s is shorter than --cpu-window 5s"},
		{[]string{"--listen", "nowhere"}, "--listen"},
		{[]string{"--listen", ":8081"}, "--listen :8081 is reachable from other hosts, and the API has neither TLS"},
		{[]string{"--listen", "127.0.0.1:0", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key: give both or neither"},
		{[]string{"--listen", "127.0.0.1:0", "--allow-cn", "nobody=x"}, "need --client-ca"},
		{[]string{"--proc", ""}, "--proc: must not be empty"},
		{[]string{"--sort", "cpu"}, "unknown flag --sort"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append([]string{"topz", "--admin-addr", "off"}, tt.args...)...)
			cmd.Env = append(os.Environ(), "TOPZ_TEST_ROLE=podkit")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
			}
			if !strings.HasPrefix(string(out), "podkit topz: ") || !strings.Contains(string(out), tt.want) {
				t.Fatalf("output %q does not name %q", out, tt.want)
			}
		})
	}
	t.Run("env", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "topz", "--admin-addr", "off")
		cmd.Env = append(os.Environ(), "TOPZ_TEST_ROLE=podkit", "PODKIT_INTERVAL=never")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "PODKIT_INTERVAL (--interval)") {
			t.Fatalf("exit %v, output %q; want 2 naming PODKIT_INTERVAL", err, out)
		}
	})
	t.Run("unreadable proc root", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "topz", "--admin-addr", "off", "--listen", "127.0.0.1:0", "--proc", filepath.Join(t.TempDir(), "missing"))
		cmd.Env = append(os.Environ(), "TOPZ_TEST_ROLE=podkit")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "podkit topz: --proc ") {
			t.Fatalf("exit %v, output %q; want 1 naming --proc", err, out)
		}
	})
}
