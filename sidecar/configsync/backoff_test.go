package configsync

import (
	"testing"
	"time"
)

// TestFailureBackoff: a failed sync is retried after 500ms, doubling, at
// most --poll-interval and at most 500ms·2^10, for intervals below,
// between and above those bounds.
func TestFailureBackoff(t *testing.T) {
	for _, poll := range []time.Duration{time.Millisecond, 499 * time.Millisecond, 500 * time.Millisecond, 3 * time.Second, 10 * time.Second, time.Hour} {
		p := failureBackoff(poll)
		for n := 1; n <= 40; n++ {
			want := min(time.Duration(1<<min(n-1, 10))*500*time.Millisecond, poll)
			if got := p.Delay(n); got != want {
				t.Errorf("poll %s: delay after failure %d = %s, want %s", poll, n, got, want)
			}
		}
	}
}
