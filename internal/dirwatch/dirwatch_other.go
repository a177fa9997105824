//go:build !linux

package dirwatch

// Watch has no event source outside Linux: polling does the work.
func Watch(dirs func() []string, notify func()) (stop, rewatch func(), err error) {
	return func() {}, func() {}, nil
}
