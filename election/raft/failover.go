package raft

import (
	"errors"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"syscall"
	"time"

	hraft "github.com/hashicorp/raft"
)

// crashDetector shortens failover when the leader's process is gone.
//
// The heartbeat timeout is long enough to ride out a leader that is merely
// slow (a CPU-starved node, a GC pause), so waiting it out after a real
// crash would make every crash failover that slow. But a crashed process
// (kill -9, OOM kill, a panic) on a live host leaves a port that refuses
// connections, which a slow one never does: the kernel accepts on its
// behalf. So a follower that has not heard from the leader for a few
// heartbeat intervals dials the leader's raft port; if the connection is
// refused, it starts an election at once (raft's TimeoutNow, sent to
// itself: the same step a leadership transfer takes) instead of waiting
// for the timeout. To avoid split votes, the surviving replicas take turns
// by ID; one that sees a new term or hears from a leader meanwhile stands
// down. A leader whose host is gone (no refusal, the dial times out) is
// still detected by the heartbeat timeout.
type crashDetector struct {
	self       hraft.ServerID
	selfAddr   hraft.ServerAddress // where this replica's own transport accepts
	ids        []string            // every replica, sorted
	trans      *hraft.NetworkTransport
	silentFor  time.Duration // probe once the leader has been silent this long
	turn       time.Duration // how long each survivor waits for the previous one
	log        *slog.Logger
	dial       func(addr string, timeout time.Duration) (net.Conn, error)
	leaderID   hraft.ServerID // the leader last followed
	leaderAddr hraft.ServerAddress

	goneAt  time.Time // when the leader's port was found refusing (zero: not)
	term    uint64    // the term then
	contact time.Time // LastContact then
}

func newCrashDetector(self hraft.ServerID, selfAddr hraft.ServerAddress, peers []Peer, trans *hraft.NetworkTransport, heartbeat, election time.Duration, log *slog.Logger) *crashDetector {
	ids := make([]string, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	sort.Strings(ids)
	return &crashDetector{
		self: self, selfAddr: selfAddr, ids: ids, trans: trans,
		// raft sends a heartbeat every tenth of the heartbeat timeout; a
		// probe costs a connection on loopback or the LAN.
		silentFor: min(heartbeat/4, 250*time.Millisecond),
		turn:      election / 2,
		log:       log,
		dial: func(addr string, timeout time.Duration) (net.Conn, error) {
			return net.DialTimeout("tcp", addr, timeout)
		},
	}
}

// step runs on every tick of the campaign loop.
func (d *crashDetector) step(r *hraft.Raft) {
	if r.State() != hraft.Follower {
		d.leaderID, d.goneAt = "", time.Time{}
		return
	}
	if addr, id := r.LeaderWithID(); id != "" {
		d.leaderID, d.leaderAddr = id, addr // remembered after raft forgets it
	}
	if d.leaderID == "" || d.leaderID == d.self {
		return
	}
	last := r.LastContact()
	if time.Since(last) < d.silentFor {
		d.goneAt = time.Time{}
		return
	}
	if d.goneAt.IsZero() {
		c, err := d.dial(string(d.leaderAddr), d.silentFor)
		if err == nil {
			c.Close()
			return // alive, only slow: the heartbeat timeout decides
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		d.goneAt, d.term, d.contact = time.Now(), r.CurrentTerm(), last
		d.log.Info("raft: the leader's port refuses connections; its process is gone", "leader", string(d.leaderID), "silent", time.Since(last).Round(time.Millisecond))
	}
	if time.Since(d.goneAt) < time.Duration(d.rank())*d.turn {
		return
	}
	if r.CurrentTerm() != d.term || !r.LastContact().Equal(d.contact) {
		// Another survivor started an election, or a leader spoke.
		d.leaderID, d.goneAt = "", time.Time{}
		return
	}
	d.log.Info("raft: starting an election now instead of waiting out the heartbeat timeout", "leader", string(d.leaderID))
	d.leaderID, d.goneAt = "", time.Time{}
	req := &hraft.TimeoutNowRequest{RPCHeader: hraft.RPCHeader{
		ProtocolVersion: hraft.ProtocolVersionMax,
		ID:              []byte(d.self),
		Addr:            d.trans.EncodePeer(d.self, d.selfAddr),
	}}
	if err := d.trans.TimeoutNow(d.self, d.selfAddr, req, &hraft.TimeoutNowResponse{}); err != nil {
		d.log.Warn("raft: could not start an election", "error", err)
	}
}

// rank is this replica's turn among the survivors: its place in ID order
// with the lost leader left out.
func (d *crashDetector) rank() int {
	n := 0
	for _, id := range d.ids {
		switch hraft.ServerID(id) {
		case d.self:
			return n
		case d.leaderID:
		default:
			n++
		}
	}
	return n
}

// dialAddr is an address at which ln accepts connections from this host.
func dialAddr(ln net.Listener) string {
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return ln.Addr().String()
	}
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1) // a wildcard listener is dual-stack
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}
