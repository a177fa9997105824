package election

import (
	"strings"
	"syscall"
	"testing"
)

const (
	crashLine = "the leader's port refuses connections"
	earlyLine = "starting an election now instead of waiting out the heartbeat timeout"
)

// TestCrashDetection: kill -9 the leader of replicas with a long heartbeat
// timeout (5 s); a survivor finds the leader's raft port refusing
// connections and starts an election at once, without waiting it out, and
// the survivors agree on a new leader.
func TestCrashDetection(t *testing.T) {
	ps := startAll(t, cluster(t, 3, "--raft-heartbeat-timeout", "5s", "--raft-election-timeout", "5s"))
	leader, epoch := agree(t, ps, 0)
	leader.kill()
	rest := without(ps, leader)
	agree(t, rest, epoch)
	early := 0
	for _, p := range rest {
		if strings.Contains(p.log.String(), earlyLine) {
			early++
		}
	}
	if early == 0 {
		t.Errorf("no survivor logged %q", earlyLine)
	}
}

// TestSlowLeaderIsNotCrashed: a leader that is stopped (SIGSTOP: its
// kernel still accepts connections, as for a CPU-starved process) is
// replaced by the heartbeat timeout, never taken for a crashed one.
func TestSlowLeaderIsNotCrashed(t *testing.T) {
	ps := startAll(t, cluster(t, 3))
	leader, epoch := agree(t, ps, 0)
	leader.signal(syscall.SIGSTOP)
	rest := without(ps, leader)
	agree(t, rest, epoch)
	for _, p := range rest {
		if log := p.log.String(); strings.Contains(log, crashLine) || strings.Contains(log, earlyLine) {
			t.Errorf("%s took the stopped leader for a crashed one:\n%s", p.id, tail(log, 20))
		}
	}
}
