//go:build !unix

package testdeps

import (
	"errors"
	"os/exec"
	"os/user"
)

// ownGroup does nothing outside Unix.
func ownGroup(*exec.Cmd) {}

// killGroup kills only the server's own process outside Unix.
func killGroup(cmd *exec.Cmd) { cmd.Process.Kill() }

// runAs makes cmd run in dir; running as another user is Unix-only.
func runAs(cmd *exec.Cmd, u *user.User, dir string) error {
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "HOME="+dir)
	if u != nil {
		return errors.New("running a server as another user is supported on Unix only")
	}
	return nil
}
