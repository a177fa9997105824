//go:build !linux

package configsync

// watch is not available outside Linux: the periodic poll does the work.
func watch(paths func() []string, notify func()) (stop, rewatch func(), err error) {
	return func() {}, func() {}, nil
}
