//go:build unix && !linux

package child

import "syscall"

// pdeathsig is false: only Linux has a parent-death signal.
const pdeathsig = false

func setPdeathsig(*syscall.SysProcAttr) {}
