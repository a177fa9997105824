package testdeps

import (
	"os"
	"testing"
)

// ReplaceFile writes content to path as a configuration management tool
// would: into a temporary file beside it, renamed over path, so that a
// component watching path never reads it half written.
func ReplaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
