package tail

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// collector is a Handler that "writes" lines to a slice on Flush and
// commits them, like the logs pipeline does with its output.
type collector struct {
	mu      sync.Mutex
	pending []pend
	out     []string
	sources map[string]bool
	paused  atomic.Bool
}

type pend struct {
	s    *Source
	line string
	end  int64
}

func (c *collector) Line(s *Source, line []byte, end int64) error {
	c.pending = append(c.pending, pend{s, string(line), end})
	return nil
}
func (c *collector) Idle(*Source, time.Time) error { return nil }
func (c *collector) Drain(*Source) error           { return nil }
func (c *collector) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sources == nil {
		c.sources = map[string]bool{}
	}
	for _, p := range c.pending {
		c.out = append(c.out, p.line)
		c.sources[p.s.Path] = true
		p.s.Commit(p.end)
	}
	c.pending = c.pending[:0]
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}

func (c *collector) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.out...)
}

func testConfig(dir string, globs ...string) Config {
	return Config{
		Globs:              globs,
		StateDir:           filepath.Join(dir, "state"),
		PollInterval:       5 * time.Millisecond,
		ScanInterval:       20 * time.Millisecond,
		RotateWait:         150 * time.Millisecond,
		CheckpointInterval: 20 * time.Millisecond,
		Logger:             slog.New(slog.NewTextHandler(testLogOut(), nil)),
	}
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config, h Handler) *running {
	t.Helper()
	if c, ok := h.(*collector); ok {
		cfg.Paused = c.paused.Load
	}
	tl, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- tl.Run(ctx, nil) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}

func line(i int) string {
	return fmt.Sprintf("seq=%08d payload=%s", i, strings.Repeat("x", i%61))
}

// checkExactlyOnce compares every line written with every line emitted.
func checkExactlyOnce(t *testing.T, got []string, n int) {
	t.Helper()
	seen := make(map[string]int, len(got))
	for _, l := range got {
		seen[l]++
	}
	lost, dup := 0, 0
	var examples []string
	for i := range n {
		switch c := seen[line(i)]; {
		case c == 0:
			lost++
			if len(examples) < 5 {
				examples = append(examples, "lost "+line(i)[:12])
			}
		case c > 1:
			dup += c - 1
			if len(examples) < 5 {
				examples = append(examples, "dup "+line(i)[:12])
			}
		}
		delete(seen, line(i))
	}
	if lost != 0 || dup != 0 || len(seen) != 0 {
		t.Fatalf("%d lines written, %d emitted: %d lost, %d duplicated, %d unexpected; %v", n, len(got), lost, dup, len(seen), examples)
	}
}

func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(line(i) + "\n")
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

// writer writes lines one write(2) each, as fast as it can, and rotates
// every `every` lines with rotate (called between two writes, as a
// logger that rotates its own file does).
func writer(t *testing.T, path string, n, every int, rotate func(f *os.File, gen int) *os.File) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 128)
	for i := range n {
		if i > 0 && i%every == 0 {
			f = rotate(f, i/every)
		}
		buf = append(append(buf[:0], line(i)...), '\n')
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
}

func TestFollowsAppends(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, 0, 100)
	c := &collector{}
	start(t, testConfig(dir, filepath.Join(dir, "*.log")), c)
	testdeps.WaitFor(t, "first lines", func() bool { return c.count() == 100 })
	appendLines(t, p, 100, 250)
	testdeps.WaitFor(t, "appended lines", func() bool { return c.count() == 250 })
	checkExactlyOnce(t, c.lines(), 250)
}

func TestPartialLineWaitsForNewline(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	os.WriteFile(p, []byte("one\ntw"), 0o644)
	c := &collector{}
	start(t, testConfig(dir, p), c)
	testdeps.WaitFor(t, "first line", func() bool { return c.count() == 1 })
	time.Sleep(50 * time.Millisecond)
	if c.count() != 1 {
		t.Fatalf("partial line emitted: %q", c.lines())
	}
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("o\r\nthree\n")
	f.Close()
	testdeps.WaitFor(t, "completed line", func() bool { return c.count() == 3 })
	if got := strings.Join(c.lines(), "|"); got != "one|two|three" {
		t.Fatalf("lines %q", got)
	}
}

// TestRenameRotationUnderLoad rotates by rename while a writer writes at
// full speed, and checks every line arrives exactly once.
func TestRenameRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	c := &collector{}
	start(t, testConfig(dir, filepath.Join(dir, "app.log*")), c)
	const n, every = 60000, 7000
	writer(t, p, n, every, func(f *os.File, gen int) *os.File {
		f.Close()
		if err := os.Rename(p, fmt.Sprintf("%s.%d", p, gen)); err != nil {
			t.Fatal(err)
		}
		nf, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return nf
	})
	testdeps.WaitFor(t, "every line", func() bool { return c.count() >= n })
	time.Sleep(300 * time.Millisecond) // let late duplicates show up
	checkExactlyOnce(t, c.lines(), n)
}

// TestCopytruncateUnderLoad rotates by copying the file and truncating it
// (logrotate's copytruncate) while a writer writes at full speed. The glob
// matches the copies, so the bytes between the last read and the
// truncation are read from the copy.
func TestCopytruncateUnderLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	c := &collector{}
	cfg := testConfig(dir, filepath.Join(dir, "app.log*"))
	var mu sync.Mutex
	kinds := map[string]int{}
	cfg.OnRotate = func(k string) { mu.Lock(); kinds[k]++; mu.Unlock() }
	start(t, cfg, c)
	const n, every = 60000, 7000
	defer func() { mu.Lock(); t.Logf("rotations seen: %v", kinds); mu.Unlock() }()
	writer(t, p, n, every, func(f *os.File, gen int) *os.File {
		src, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(fmt.Sprintf("%s.%d", p, gen))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		return f // O_APPEND: the next write lands at the new end
	})
	testdeps.WaitFor(t, "every line", func() bool { return c.count() >= n })
	time.Sleep(300 * time.Millisecond)
	checkExactlyOnce(t, c.lines(), n)
}

// TestRotatedFileWithUnreadBytes renames the file out of the glob while
// the tail is behind: the old file is still read to its end.
func TestRotatedFileWithUnreadBytes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, 0, 10)
	c := &collector{}
	start(t, testConfig(dir, p), c)
	testdeps.WaitFor(t, "first lines", func() bool { return c.count() == 10 })
	c.paused.Store(true)
	time.Sleep(20 * time.Millisecond)
	appendLines(t, p, 10, 50000) // unread when the file is renamed away
	if err := os.Rename(p, filepath.Join(dir, "rotated.old")); err != nil {
		t.Fatal(err)
	}
	appendLines(t, p, 50000, 50100)
	c.paused.Store(false)
	testdeps.WaitFor(t, "every line", func() bool { return c.count() >= 50100 })
	time.Sleep(300 * time.Millisecond)
	checkExactlyOnce(t, c.lines(), 50100)
}

// TestRestartFromCheckpoint stops the tail halfway and starts a new one on
// the same state directory, while lines keep coming.
func TestRestartFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := testConfig(dir, p)
	appendLines(t, p, 0, 1000)
	c1 := &collector{}
	r1 := start(t, cfg, c1)
	testdeps.WaitFor(t, "first run", func() bool { return c1.count() == 1000 })
	appendLines(t, p, 1000, 1500)
	testdeps.WaitFor(t, "more lines", func() bool { return c1.count() == 1500 })
	r1.stop(t)
	appendLines(t, p, 1500, 3000) // written while stopped
	c2 := &collector{}
	start(t, cfg, c2)
	appendLines(t, p, 3000, 3500)
	testdeps.WaitFor(t, "second run", func() bool { return c2.count() >= 2000 })
	time.Sleep(100 * time.Millisecond)
	checkExactlyOnce(t, append(c1.lines(), c2.lines()...), 3500)
	if c2.lines()[0] != line(1500) {
		t.Fatalf("second run began with %q, want %q", c2.lines()[0][:12], line(1500)[:12])
	}
}

// TestCheckpointOnlyAfterFlush checks that lines handed to the handler
// but not flushed are not in the checkpoint.
func TestCheckpointOnlyAfterFlush(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, 0, 10)
	h := &holdLast{collector: &collector{}}
	cfg := testConfig(dir, p)
	r := start(t, cfg, h)
	testdeps.WaitFor(t, "lines", func() bool { return h.count() == 9 })
	r.stop(t)
	cps, err := LoadState(cfg.StateDir)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints %v, %v", cps, err)
	}
	want := int64(0)
	for i := range 9 {
		want += int64(len(line(i)) + 1)
	}
	if cps[0].Offset != want {
		t.Fatalf("checkpoint offset %d, want %d (after the 9 written lines, not the held 10th)", cps[0].Offset, want)
	}
}

// holdLast never writes the last line it was given, like a multiline
// event still open.
type holdLast struct {
	*collector
	held *pend
}

func (h *holdLast) Line(s *Source, line []byte, end int64) error {
	if h.held != nil {
		h.collector.Line(h.held.s, []byte(h.held.line), h.held.end)
	}
	h.held = &pend{s, string(line), end}
	return nil
}

func TestInodeReuseReadsFromStart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := testConfig(dir, p)
	appendLines(t, p, 0, 100)
	c1 := &collector{}
	r1 := start(t, cfg, c1)
	testdeps.WaitFor(t, "first run", func() bool { return c1.count() == 100 })
	r1.stop(t)
	// Replace the file; the new one may get the same inode, but its head
	// differs, so it is new: read from the start.
	os.Remove(p)
	if err := os.WriteFile(p, []byte("fresh one\nfresh two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := &collector{}
	start(t, cfg, c2)
	testdeps.WaitFor(t, "new file", func() bool { return c2.count() == 2 })
	if got := strings.Join(c2.lines(), "|"); got != "fresh one|fresh two" {
		t.Fatalf("lines %q", got)
	}
}

func TestReadFromEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, 0, 100)
	cfg := testConfig(dir, p)
	cfg.ReadFromEnd = true
	c := &collector{}
	start(t, cfg, c)
	time.Sleep(50 * time.Millisecond)
	appendLines(t, p, 100, 110)
	testdeps.WaitFor(t, "new lines", func() bool { return c.count() == 10 })
	if c.lines()[0] != line(100) {
		t.Fatalf("first line %q", c.lines()[0])
	}
}

func TestLongLinesAreCut(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	os.WriteFile(p, []byte(strings.Repeat("a", 2500)+"\nshort\n"), 0o644)
	cfg := testConfig(dir, p)
	cfg.MaxLineBytes = 1000
	cfg.ReadBytes = 300
	c := &collector{}
	start(t, cfg, c)
	testdeps.WaitFor(t, "lines", func() bool { return c.count() == 4 })
	got := c.lines()
	if len(got[0]) != 1000 || len(got[1]) != 1000 || len(got[2]) != 500 || got[3] != "short" {
		t.Fatalf("line lengths %d %d %d, last %q", len(got[0]), len(got[1]), len(got[2]), got[3])
	}
}

func TestNewRejectsBadGlob(t *testing.T) {
	if _, err := New(Config{Globs: []string{"/var/log/["}}, &collector{}); err == nil || !strings.Contains(err.Error(), `glob "/var/log/["`) {
		t.Fatalf("error %v", err)
	}
	if _, err := New(Config{}, &collector{}); err == nil {
		t.Fatal("no globs accepted")
	}
}

func TestStateFileIsAtomicAndValid(t *testing.T) {
	dir := t.TempDir()
	cps := []Checkpoint{{Path: "/a", Dev: 1, Inode: 2, Offset: 3, FPLen: 4, FP: "00"}}
	if err := SaveState(dir, cps); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil || len(got) != 1 || got[0] != cps[0] {
		t.Fatalf("LoadState = %v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	os.WriteFile(filepath.Join(dir, StateFile), []byte("{"), 0o644)
	if _, err := LoadState(dir); err == nil || !strings.Contains(err.Error(), StateFile) {
		t.Fatalf("corrupt state: %v", err)
	}
}

func testLogOut() io.Writer {
	if os.Getenv("TAIL_DEBUG") != "" {
		return os.Stderr
	}
	return io.Discard
}
