package dirwatch

import (
	"os"
	"syscall"
)

const inotifyMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MODIFY |
	syscall.IN_CLOSE_WRITE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
	syscall.IN_ATTRIB | syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF

// Watch calls notify after every batch of inotify events in the
// directories dirs() returns, until stop is called. The set is recomputed
// after each batch and whenever rewatch is called, so a directory that
// appears later, or a symlink that now points elsewhere, is picked up;
// directories that do not exist are skipped (polling covers them). Events
// are not interpreted: the caller looks at what changed.
func Watch(dirs func() []string, notify func()) (stop, rewatch func(), err error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, nil, os.NewSyscallError("inotify_init1", err)
	}
	// A non-blocking descriptor goes through the runtime poller, so Close
	// wakes a blocked Read.
	f := os.NewFile(uintptr(fd), "inotify")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	add := func() {
		_ = raw.Control(func(fd uintptr) {
			for _, p := range dirs() {
				_, _ = syscall.InotifyAddWatch(int(fd), p, inotifyMask)
			}
		})
	}
	add()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Read(buf); err != nil {
				return // closed
			}
			add()
			notify()
		}
	}()
	return func() { f.Close() }, add, nil
}
