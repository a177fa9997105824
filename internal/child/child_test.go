//go:build unix

package child_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/child"
	"github.com/podkit/podkit/internal/testdeps"
)

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStartExit(t *testing.T) {
	tests := []struct {
		script   string
		code     int
		describe string
	}{
		{"exit 0", 0, "exit status 0"},
		{"exit 3", 3, "exit status 3"},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM), "killed by signal terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			p, err := child.Start(exec.Command("sh", "-c", tt.script), child.Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Wait()
			if got := child.ExitCode(p.State(), err); got != tt.code {
				t.Errorf("child.ExitCode = %d, want %d", got, tt.code)
			}
			if got := child.Describe(p.State(), err); got != tt.describe {
				t.Errorf("child.Describe = %q, want %q", got, tt.describe)
			}
		})
	}
	if _, err := child.Start(exec.Command("/nonexistent/podkit-child"), child.Options{}); err == nil {
		t.Fatal("child.Start of a missing program: want an error")
	}
	if got := child.ExitCode(nil, os.ErrNotExist); got != 1 {
		t.Errorf("child.ExitCode(nil) = %d, want 1", got)
	}
}

// TestGroupStop checks that Stop reaches a grandchild through the group,
// and kills a child that ignores the signal once the grace has passed.
func TestGroupStop(t *testing.T) {
	out := child.NewTail(64)
	cmd := exec.Command("sh", "-c", `trap '' TERM; sleep 300 & echo $!; wait`)
	cmd.Stdout = out
	p, err := child.Start(cmd, child.Options{Group: true})
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	testdeps.WaitFor(t, "the grandchild's pid", func() bool {
		grandchild, _ = strconv.Atoi(strings.TrimSpace(out.String()))
		return grandchild > 0
	})
	err = p.Stop(syscall.SIGTERM, 50*time.Millisecond)
	if sig, ok := child.Signaled(p.State()); !ok || sig != syscall.SIGKILL {
		t.Fatalf("Stop: %v, state %v; want the shell killed by SIGKILL", err, p.State())
	}
	testdeps.WaitFor(t, "the grandchild to be gone", func() bool { return !alive(grandchild) || zombie(grandchild) })
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal after exit: %v, want nil", err)
	}
}

// zombie reports whether pid has exited but is not reaped yet (a
// grandchild reparented to an init that reaps slowly).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	return strings.Contains(string(b), ") Z ")
}

func TestStopWithinGrace(t *testing.T) {
	p, err := child.Start(exec.Command("sleep", "300"), child.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.Stop(syscall.SIGTERM, time.Minute)
	if sig, ok := child.Signaled(p.State()); !ok || sig != syscall.SIGTERM {
		t.Fatalf("state %v, want killed by SIGTERM", p.State())
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestPrepareKeepsAttributes(t *testing.T) {
	cmd := exec.CommandContext(context.Background(), "true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	child.Prepare(cmd, child.Options{Group: true})
	if !cmd.SysProcAttr.Setsid || !cmd.SysProcAttr.Setpgid {
		t.Fatalf("SysProcAttr = %+v, want Setsid kept and Setpgid set", cmd.SysProcAttr)
	}
	// exec.Command has no Cancel: child.Prepare must not add one (child.Start would refuse it).
	plain := exec.Command("true")
	child.Prepare(plain, child.Options{Group: true})
	if plain.Cancel != nil {
		t.Fatal("child.Prepare set Cancel on a cmd without a context")
	}
	if err := plain.Run(); err != nil {
		t.Fatal(err)
	}
}

// TestContextKillsGroup checks that a CommandContext child in a group is
// killed with its group when the context ends.
func TestContextKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := child.NewTail(64)
	cmd := exec.CommandContext(ctx, "sh", "-c", `sleep 300 & echo $!; wait`)
	cmd.Stdout = out
	cmd.WaitDelay = time.Second
	p, err := child.Start(cmd, child.Options{Group: true})
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	testdeps.WaitFor(t, "the grandchild's pid", func() bool {
		grandchild, _ = strconv.Atoi(strings.TrimSpace(out.String()))
		return grandchild > 0
	})
	cancel()
	p.Wait()
	testdeps.WaitFor(t, "the grandchild to be gone", func() bool { return !alive(grandchild) || zombie(grandchild) })
}
