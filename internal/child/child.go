//go:build unix

package child

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Options say how a child is started.
type Options struct {
	// Group puts the child in a process group of its own: Signal and Kill
	// then reach every process in it (a shell script's children too), and
	// a terminal's signals do not.
	Group bool
	// KeepOnParentDeath leaves the child running when podkit dies. By
	// default it is killed (SIGKILL) by the kernel where the platform
	// allows it: on Linux, when the thread that started it exits, which in
	// a Go program is when the process exits.
	KeepOnParentDeath bool
}

// Prepare sets cmd's process attributes for o, keeping any it already has
// (a Credential, say). For a cmd made with exec.CommandContext in a group,
// the context's end kills the whole group.
func Prepare(cmd *exec.Cmd, o Options) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if o.Group {
		cmd.SysProcAttr.Setpgid = true
		if cmd.Cancel != nil {
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		}
	}
	if !o.KeepOnParentDeath {
		setPdeathsig(cmd.SysProcAttr)
	}
}

// KillsOnParentDeath reports whether this platform kills a child when
// podkit dies (Options.KeepOnParentDeath false).
const KillsOnParentDeath = pdeathsig

// Process is a started child.
type Process struct {
	cmd   *exec.Cmd
	group bool
	done  chan struct{}
	err   error // cmd.Wait's, once done is closed
}

// Start prepares cmd for o and starts it. The child is waited for in the
// background: do not call cmd.Wait; use Done, Wait or Stop.
func Start(cmd *exec.Cmd, o Options) (*Process, error) {
	Prepare(cmd, o)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, group: o.Group, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process ID (and its group's, with Options.Group).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited and its output is copied.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the child to exit and returns what exec.Cmd.Wait
// returned.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// State is the child's exit state (nil until Done is closed, or if it
// could not be waited for).
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.done:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Signal sends sig to the child, or to its whole group with
// Options.Group. A child that has exited is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	var err error
	if p.group {
		err = syscall.Kill(-p.cmd.Process.Pid, sig)
		if errors.Is(err, syscall.ESRCH) {
			err = nil
		}
	} else {
		err = p.cmd.Process.Signal(sig)
		if errors.Is(err, os.ErrProcessDone) {
			err = nil
		}
	}
	return err
}

// Kill sends SIGKILL to the child (or its group).
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Stop sends sig, waits up to grace for the child to exit, then kills it
// (and, with Options.Group, whatever is left of its group either way), and
// returns what Wait returns.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) error {
	p.Signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		if p.group {
			p.Kill()
		}
	case <-t.C:
		p.Kill()
	}
	return p.Wait()
}

// ExitCode is a finished child's status as a shell reports it: its exit
// status, or 128+N when signal N killed it; 1 when it could not be waited
// for (err, from Wait, tells why).
func ExitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if c := ps.ExitCode(); c >= 0 {
		return c
	}
	if err != nil {
		return 1
	}
	return 0
}

// Signaled returns the signal that killed the child, if one did.
func Signaled(ps *os.ProcessState) (syscall.Signal, bool) {
	if ps == nil {
		return 0, false
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal(), true
	}
	return 0, false
}

// Describe says how a child ended: "exit status N" or "killed by signal
// NAME"; for a child that could not be waited for, err's text.
func Describe(ps *os.ProcessState, err error) string {
	if ps == nil {
		if err == nil {
			return "not started"
		}
		return err.Error()
	}
	if sig, ok := Signaled(ps); ok {
		return fmt.Sprintf("killed by signal %s", sig)
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}
