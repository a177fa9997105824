package testdeps

import (
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// ownGroup puts the server in its own process group, so that killGroup can
// reach the workers it forks, and has the kernel kill it if the test binary
// dies without running its cleanups.
func ownGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
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
