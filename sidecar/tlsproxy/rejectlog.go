package tlsproxy

import (
	"log/slog"
	"sync"
	"time"
)

// rejectLogEvery is how often at most a rejected client certificate is
// logged per reason.
const rejectLogEvery = 10 * time.Second

// rejectLog logs handshakes rejected for their client certificate: at
// most one line per reason (client_cert, not_allowed) per rejectLogEvery,
// each saying how many were not logged since the last one, so a scanner
// or a misconfigured client cannot flood the log while the operator
// still sees who was turned away and why.
type rejectLog struct {
	mu         sync.Mutex
	now        func() time.Time
	last       map[string]time.Time
	suppressed map[string]int
}

func newRejectLog() *rejectLog {
	return &rejectLog{now: time.Now, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// setClock replaces time.Now (tests).
func (l *rejectLog) setClock(now func() time.Time) {
	l.mu.Lock()
	l.now = now
	l.mu.Unlock()
}

// log logs one rejection, unless one for the same reason was logged less
// than rejectLogEvery ago.
func (l *rejectLog) log(log *slog.Logger, reason, remote string, err error) {
	l.mu.Lock()
	now := l.now()
	if last, ok := l.last[reason]; ok && now.Sub(last) < rejectLogEvery {
		l.suppressed[reason]++
		l.mu.Unlock()
		return
	}
	n := l.suppressed[reason]
	l.last[reason], l.suppressed[reason] = now, 0
	l.mu.Unlock()
	log.Warn("client certificate rejected", "reason", reason, "remote", remote, "error", err, "suppressed", n)
}
