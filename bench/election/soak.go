package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// raftArgs turns a raft configuration name into podkit elect flags:
// "raft" is podkit's defaults, "raft-H-E-L" sets the heartbeat, election
// and lease timeouts to H, E and L milliseconds.
func raftArgs(name string) ([]string, error) {
	if name == "raft" {
		return nil, nil
	}
	f := strings.Split(name, "-")
	if len(f) != 4 || f[0] != "raft" {
		return nil, fmt.Errorf("configuration %q: want raft or raft-HB-ELECTION-LEASE (milliseconds)", name)
	}
	var out []string
	for i, flagName := range []string{"--raft-heartbeat-timeout", "--raft-election-timeout", "--raft-lease-timeout"} {
		ms, err := strconv.Atoi(f[i+1])
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("configuration %q: %q is not a number of milliseconds", name, f[i+1])
		}
		out = append(out, flagName, fmt.Sprintf("%dms", ms))
	}
	return out, nil
}

type soakResult struct {
	changes    int // new (leader, epoch) pairs after the first, seen by any replica
	leaderless int // events with no leader known, summed over the replicas
	selfLost   int // a replica that said self: true stopped saying it
	firstEpoch uint64
	lastEpoch  uint64
	expired    int // "leadership expired" lines in the replicas' logs
	hbTimeouts int // raft "heartbeat timeout reached" lines
	stepDowns  int // raft "stepping down" lines
	load       string
}

func (r soakResult) String() string {
	return fmt.Sprintf("leadership changes=%d (epochs %d -> %d), leaderless events=%d, self lost=%d; logs: %d leadership expired, %d heartbeat timeouts, %d step-downs; load %s",
		r.changes, r.firstEpoch, r.lastEpoch, r.leaderless, r.selfLost, r.expired, r.hbTimeouts, r.stepDowns, r.load)
}

type event struct {
	p  *proc
	at time.Time
	j  leaderJSON
}

// soak runs three replicas for d and counts every change of leadership
// their /watch streams report.
func soak(dir string, backendArgs []string, d time.Duration) soakResult {
	ps := startCluster(dir, backendArgs, true)
	defer func() {
		for _, p := range ps {
			p.kill()
		}
	}()
	_, epoch := agree(ps)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	events := make(chan event, 1024)
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchAll(ctx, p, events)
		}()
	}
	go func() { wg.Wait(); close(events) }()

	var loads []string
	loadTick := time.NewTicker(30 * time.Second)
	defer loadTick.Stop()
	res := soakResult{firstEpoch: epoch, lastEpoch: epoch}
	type key struct {
		leader string
		epoch  uint64
	}
	seen := map[key]bool{}
	self := map[*proc]bool{}
	start := time.Now()
	for {
		select {
		case <-loadTick.C:
			loads = append(loads, loadavg())
			continue
		case ev, ok := <-events:
			if !ok {
				res.load = loadSummary(append(loads, loadavg()))
				for _, p := range ps {
					b, _ := os.ReadFile(p.log)
					res.expired += bytes.Count(b, []byte("leadership expired"))
					res.hbTimeouts += bytes.Count(b, []byte("heartbeat timeout reached"))
					res.stepDowns += bytes.Count(b, []byte("stepping down"))
				}
				return res
			}
			j := ev.j
			if j.Leader == "" {
				res.leaderless++
				if *verbose {
					fmt.Fprintf(os.Stderr, "%8s %s: no leader known\n", ev.at.Sub(start).Round(time.Millisecond), ev.p.id)
				}
			} else if k := (key{j.Leader, j.Epoch}); len(seen) == 0 && j.Epoch == epoch {
				seen[k] = true
			} else if !seen[k] {
				seen[k] = true
				res.changes++
				if j.Epoch > res.lastEpoch {
					res.lastEpoch = j.Epoch
				}
				fmt.Fprintf(os.Stderr, "%8s %s reports a new leader %s, epoch %d\n", ev.at.Sub(start).Round(time.Millisecond), ev.p.id, j.Leader, j.Epoch)
			}
			if self[ev.p] && !j.Self {
				res.selfLost++
				fmt.Fprintf(os.Stderr, "%8s %s no longer says it leads (now: leader %q, epoch %d)\n", ev.at.Sub(start).Round(time.Millisecond), ev.p.id, j.Leader, j.Epoch)
			}
			self[ev.p] = j.Self
		}
	}
}

// watchAll sends every state p's /watch reports until ctx ends,
// reconnecting if the stream breaks.
func watchAll(ctx context.Context, p *proc, events chan<- event) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.api+"/watch", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data: ") {
				continue
			}
			var j leaderJSON
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &j) == nil {
				select {
				case events <- event{p, time.Now(), j}:
				case <-ctx.Done():
				}
			}
		}
		resp.Body.Close()
	}
}

// loadavg is the 1-minute load average.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func loadSummary(ls []string) string {
	var lo, hi, sum float64
	n := 0
	for _, s := range ls {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		if n == 0 || v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
		sum += v
		n++
	}
	if n == 0 {
		return "?"
	}
	return fmt.Sprintf("mean %.1f (min %.1f, max %.1f, %d samples)", sum/float64(n), lo, hi, n)
}
