//go:build !linux

package container

// watchDirs has no event source outside Linux: polling does the work.
func watchDirs(dirs func() []string, notify func()) (stop, rewatch func(), err error) {
	return func() {}, func() {}, nil
}
