// Package podkittest runs podkit subprocesses for the work queue's
// end-to-end tests: the binary itself comes from testdeps.BuildPodkit.
package podkittest

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a free loopback address.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Proc is a running podkit subprocess.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	mu   sync.Mutex
	out  []string
	done chan struct{}
}

// Start runs bin with args; its output lines are kept (and logged when the
// test fails). It is killed when the test ends.
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
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	p.Cmd.Process.Signal(syscall.SIGKILL)
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

// WaitHTTP polls url until it answers 200 or d passes.
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
