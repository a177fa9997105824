package tlsproxy

import (
	"testing"
)

func TestApplyGCZeroLeavesRuntimeAlone(t *testing.T) {
	if s := applyGC(0, t.TempDir()); s != (gcSettings{}) {
		t.Errorf("applyGC(0) = %+v, want nothing done", s)
	}
}

func TestGCPercentDefaultYieldsToGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	if got := defaultGCPercent(); got != DefaultGCPercent {
		t.Errorf("defaultGCPercent() = %d, want %d", got, DefaultGCPercent)
	}
	t.Setenv("GOGC", "200")
	if got := defaultGCPercent(); got != 0 {
		t.Errorf("with GOGC set, defaultGCPercent() = %d, want 0", got)
	}
}
