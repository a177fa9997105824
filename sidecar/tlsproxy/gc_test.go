package tlsproxy

import (
	"testing"
)

// TestApplyGCZeroYieldsToGOGC: --gc-percent 0 means what it means for
// every component (gctune): GOGC when set, which the runtime has applied.
func TestApplyGCZeroYieldsToGOGC(t *testing.T) {
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	if s := applyGC(0, t.TempDir()); s != (gcSettings{limitFrom: "GOMEMLIMIT"}) {
		t.Errorf("applyGC(0) = %+v, want GOGC and GOMEMLIMIT left to the runtime", s)
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
