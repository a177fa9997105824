package testdeps

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proc is a running subprocess of a test (a podkit binary from
// BuildPodkit, say) whose output lines are kept.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	mu   sync.Mutex
	out  []string
	done chan struct{}
}

// Start runs bin with args; its output lines (stdout and stderr) are kept,
// and logged when the test fails. It is killed, with what it started,
// when the test ends, or when the test binary dies where the platform
// allows.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	return StartIn(t, "", name, bin, args...)
}

// StartIn is Start in the working directory dir ("": the test's).
func StartIn(t testing.TB, dir, name, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Dir = dir
	ownGroup(p.Cmd)
	pr, pw := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
		}
		io.Copy(io.Discard, pr) // a line too long ends the scan, not the process
	}()
	go func() {
		p.Cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			for _, l := range p.Lines() {
				t.Logf("%s: %s", name, l)
			}
		}
	})
	return p
}

// Kill kills the process and what it started, and waits for it to exit.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	killGroup(p.Cmd)
	<-p.done
}

// Wait waits up to d for the process to exit and returns its exit code
// (-1 if it did not exit).
func (p *Proc) Wait(d time.Duration) int {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// Lines returns the output so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

// Count counts output lines containing s.
func (p *Proc) Count(s string) int {
	n := 0
	for _, l := range p.Lines() {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// WaitHTTP polls url until it answers 200, and fails the test if it does
// not within d.
func WaitHTTP(t testing.TB, url string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not answer 200 within %s (last error: %v)", url, d, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
