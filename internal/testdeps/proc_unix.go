//go:build unix

package testdeps

import (
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"

	"github.com/podkit/podkit/internal/child"
)

// ownGroup puts the server in its own process group, so that killGroup can
// reach the workers it forks, and, where the platform allows it (Linux),
// has the kernel kill it if the test binary dies without running its
// cleanups.
func ownGroup(cmd *exec.Cmd) {
	child.Prepare(cmd, child.Options{Group: true})
}

// killGroup kills the process group ownGroup made.
func killGroup(cmd *exec.Cmd) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// runAs makes cmd run as u (nil: the current user) in the directory dir,
// with HOME set to dir.
func runAs(cmd *exec.Cmd, u *user.User, dir string) error {
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "HOME="+dir)
	if u == nil {
		return nil
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	return nil
}
