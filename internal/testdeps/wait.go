package testdeps

import (
	"testing"
	"time"
)

// WaitTimeout bounds WaitFor. It is generous because the suite must pass on
// a loaded machine: a condition that holds is seen within milliseconds, and
// only a broken one waits this long.
const WaitTimeout = 60 * time.Second

// WaitFor polls cond every 20 ms until it holds, and fails the test naming
// what it waited for if it does not hold within WaitTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, WaitTimeout, what, cond)
}

// WaitForWithin is WaitFor with its own bound, for a condition whose
// deadline is part of what the test checks.
func WaitForWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
