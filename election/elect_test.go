package election

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/election/electiontest"
	"github.com/podkit/podkit/internal/kubetest"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown backend", []string{"--backend", "zookeeper"}, `--backend: unknown backend "zookeeper" (want raft, etcd or kubernetes)`},
		{"peers without address", []string{"--peers", "a=h:1,b"}, `--peers: invalid value "a=h:1,b"`},
		{"peers bad port", []string{"--peers", "a=h:1,b=h:99999"}, `port "99999"`},
		{"peers duplicate", []string{"--peers", "a=h:1,a=h:2"}, `id "a" appears twice`},
		{"id not in peers", []string{"--id", "c", "--peers", "a=h:1,b=h:2"}, `--peers: this replica's --id "c" is not in the list`},
		{"bad advertise", []string{"--advertise", "nohost"}, `--advertise: "nohost" is not host:port`},
		{"bad listen", []string{"--listen", "x"}, `--listen:`},
		{"bad notify", []string{"--notify", "ftp://x"}, `--notify "ftp://x": unknown scheme`},
		{"raft lease above heartbeat", []string{"--raft-lease-timeout", "3s"}, `leader lease timeout 3s`},
		{"etcd without endpoints", []string{"--backend", "etcd"}, `--etcd-endpoints: required`},
		{"etcd bad endpoint", []string{"--backend", "etcd", "--etcd-endpoints", "localhost:2379"}, `--etcd-endpoints: "localhost:2379" is not an http(s)://host:port URL`},
		{"etcd second endpoint bad", []string{"--backend", "etcd", "--etcd-endpoints", "http://a:2379,b:2379"}, `--etcd-endpoints: "b:2379" is not`},
		{"etcd ttl", []string{"--backend", "etcd", "--etcd-endpoints", "http://h:2379", "--etcd-ttl", "1s"}, `--etcd-ttl: 1s is below`},
		{"kube renew deadline", []string{"--backend", "kubernetes", "--lease-duration", "2s", "--renew-deadline", "3s"}, `--renew-deadline: 3s must be positive and below --lease-duration 2s`},
		{"positional", []string{"extra"}, `unexpected argument "extra"`},
		{"bad duration", []string{"--raft-heartbeat-timeout", "fast"}, `want a duration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"elect", "--id", "a", "--admin-addr", "off"}, tc.args...)
			code := cli.Main(context.Background(), []cli.Command{Command()}, args, cli.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestKillLeader: kill -9 the leader; the survivors elect a new leader
// with a higher epoch, and the leader proxy on a survivor routes to it;
// the killed replica comes back as a follower.
func TestKillLeader(t *testing.T) {
	ps := startAll(t, cluster(t, 3))
	leader, epoch := agree(t, ps, 0)
	follower := without(ps, leader)[0]
	if code, body, err := get("http://" + follower.proxy + "/"); err != nil || code != 200 || body != leader.id+" epoch="+strconv.FormatUint(epoch, 10) {
		t.Fatalf("proxy on follower %s: %d %q %v; want the leader %s's app with epoch %d", follower.id, code, body, err, leader.id, epoch)
	}

	leader.kill()
	rest := without(ps, leader)
	next, epoch2 := agree(t, rest, epoch)
	for _, p := range rest {
		want := next.id + " epoch=" + strconv.FormatUint(epoch2, 10)
		if code, body, err := get("http://" + p.proxy + "/x"); err != nil || code != 200 || body != want {
			t.Errorf("proxy on %s after the kill: %d %q %v; want %q", p.id, code, body, err, want)
		}
	}

	leader.start(t)
	again, _ := agree(t, ps, epoch2-1)
	if again == leader {
		t.Logf("the restarted replica %s won a later election", leader.id)
	}
}

// TestPauseLeader: SIGSTOP the leader longer than its lease; the others
// elect a new leader. On SIGCONT the old leader learns it is demoted, and
// its epoch is rejected by the fence once the new leader has written.
// (TestEtcd and TestKubernetes run it for the other backends.)
func TestPauseLeader(t *testing.T) {
	pauseLeader(t, startAll(t, cluster(t, 3)))
}

func pauseLeader(t *testing.T, ps []*proc) {
	hist := &electiontest.History{}
	res := newResource(t, hist)
	old, epoch := agree(t, ps, 0)
	if code, err := res.write(old.id, epoch); err != nil || code != http.StatusNoContent {
		t.Fatalf("write by the leader: %d %v", code, err)
	}

	old.signal(syscall.SIGSTOP)
	rest := without(ps, old)
	next, epoch2 := agree(t, rest, epoch)
	if code, err := res.write(next.id, epoch2); err != nil || code != http.StatusNoContent {
		t.Fatalf("write by the new leader %s at epoch %d: %d %v", next.id, epoch2, code, err)
	}
	time.Sleep(300 * time.Millisecond) // well past the lease
	old.signal(syscall.SIGCONT)

	testdeps.WaitFor(t, fmt.Sprintf("the resumed replica %s to learn it was demoted (a leader at epoch %d or later)", old.id, epoch2), func() bool {
		j, err := old.leader()
		return err == nil && !j.Self && j.Leader != "" && j.Epoch >= epoch2
	})
	if code, err := res.write(old.id, epoch); err != nil || code != http.StatusConflict {
		t.Errorf("write by the deposed leader at epoch %d: %d %v; want 409", epoch, code, err)
	}
	if err := hist.Check(); err != nil {
		t.Error(err)
	}
}

// TestFaultSchedules runs replicas whose applications write to a fenced
// resource while they lead, under randomized kill -9, SIGSTOP and resign
// schedules, and checks the history: no epoch held by two replicas,
// accepted epochs never going backwards.
func TestFaultSchedules(t *testing.T) {
	schedules, steps := 2, 8
	if n, err := strconv.Atoi(os.Getenv("PODKIT_ELECT_SCHEDULES")); err == nil && n > 0 {
		schedules = n
	}
	for s := 0; s < schedules; s++ {
		seed := uint64(time.Now().UnixNano())
		t.Run(strconv.Itoa(s), func(t *testing.T) {
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			ps := startAll(t, cluster(t, 3))
			hist := &electiontest.History{}
			res := newResource(t, hist)
			_, first := agree(t, ps, 0)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for _, p := range ps {
				wg.Add(1)
				go actor(ctx, p, res, hist, &wg)
			}
			for i := 0; i < steps; i++ {
				p := ps[rng.IntN(len(ps))]
				if rng.IntN(2) == 0 { // aim at the leader half the time
					for _, q := range ps {
						if j, err := q.leader(); err == nil && j.Self {
							p = q
						}
					}
				}
				pause := time.Duration(100+rng.IntN(700)) * time.Millisecond
				switch rng.IntN(4) {
				case 0:
					t.Logf("step %d: kill -9 %s, restart after %s", i, p.id, pause)
					p.kill()
					time.Sleep(pause)
					p.start(t)
				case 1:
					t.Logf("step %d: SIGSTOP %s for %s", i, p.id, pause)
					p.signal(syscall.SIGSTOP)
					time.Sleep(pause)
					p.signal(syscall.SIGCONT)
				case 2:
					t.Logf("step %d: POST /resign to %s", i, p.id)
					resp, err := client.Post("http://"+p.api+"/resign", "", nil)
					if err == nil {
						resp.Body.Close()
					}
				case 3:
					t.Logf("step %d: nothing for %s", i, pause)
					time.Sleep(pause)
				}
				time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
			}
			leader, last := agree(t, ps, first-1)
			// The final leader's application gets to write.
			deadline := time.Now().Add(10 * time.Second)
			for !wroteAt(hist, leader.id, last) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			wg.Wait()
			if !wroteAt(hist, leader.id, last) {
				t.Errorf("the final leader %s never wrote at epoch %d", leader.id, last)
			}
			if err := hist.Check(); err != nil {
				t.Errorf("history check failed:\n%v\nleaders:\n%s", err, hist)
			}
			t.Logf("leaders:\n%s", hist)
		})
	}
}

func wroteAt(h *electiontest.History, node string, epoch uint64) bool {
	for _, w := range h.Writes() {
		if w.Node == node && w.Epoch == epoch {
			return true
		}
	}
	return false
}

// TestUnreachablePeers: a replica whose peers are not up stays not ready,
// never claims leadership and keeps trying; once they start, it joins.
func TestUnreachablePeers(t *testing.T) {
	ps := cluster(t, 3)
	lone := ps[0]
	lone.start(t)
	// Once it answers (however long a loaded machine takes to start it),
	// watch it for a while: no leader, not ready.
	testdeps.WaitFor(t, "the lone replica's API to answer", func() bool {
		_, err := lone.leader()
		return err == nil
	})
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if j, err := lone.leader(); err == nil && (j.Leader != "" || j.Self) {
			t.Fatalf("a replica without a quorum reports a leader: %+v", j)
		}
		if code, _, err := get("http://" + lone.admin + "/readyz"); err == nil && code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d without a quorum, want 503", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := client.Get("http://" + lone.proxy + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("leader proxy with no leader: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	startAll(t, ps[1:])
	agree(t, ps, 0)
	if code, _, _ := get("http://" + lone.admin + "/readyz"); code != 200 {
		t.Errorf("/readyz = %d once a leader is known, want 200", code)
	}
}

// TestAPI covers --ready-only-when-leader, GET /, /watch, --notify,
// POST /resign and the metrics.
func TestAPI(t *testing.T) {
	notes := make(chan leaderJSON, 100)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var j leaderJSON
		if r.Method == "POST" && json.NewDecoder(r.Body).Decode(&j) == nil {
			select {
			case notes <- j:
			default:
			}
		}
	}))
	defer hook.Close()
	ps := startAll(t, cluster(t, 3, "--ready-only-when-leader", "--notify", hook.URL))
	leader, epoch := agree(t, ps, 0)
	follower := without(ps, leader)[0]

	// Readiness follows leadership.
	waitCode := func(p *proc, want int) {
		t.Helper()
		testdeps.WaitFor(t, fmt.Sprintf("%s /readyz to answer %d", p.id, want), func() bool {
			code, _, err := get("http://" + p.admin + "/readyz")
			return err == nil && code == want
		})
	}
	waitCode(leader, 200)
	waitCode(follower, 503)

	// GET / for the contrib sidecar's clients.
	code, body, err := get("http://" + follower.api + "/")
	var root map[string]any
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &root) != nil || root["name"] != leader.id || root["leader"] != leader.id {
		t.Errorf("GET / = %d %s %v; want name and leader %s", code, body, err, leader.id)
	}
	if j, _ := leader.leader(); j.Expires == "" {
		t.Errorf("the leader's /leader has no expires: %+v", j)
	} else if _, err := time.Parse(time.RFC3339, j.Expires); err != nil {
		t.Errorf("expires %q is not RFC 3339: %v", j.Expires, err)
	}

	// Metrics.
	_, metrics, _ := get("http://" + leader.admin + "/metrics")
	for _, want := range []string{"podkit_elect_is_leader 1", "podkit_elect_epoch " + strconv.FormatUint(epoch, 10), "podkit_elect_leader_transitions_total", "podkit_elect_leaderless_seconds_total", "podkit_elect_backend_errors_total 0"} {
		if !strings.Contains(metrics, want) && !strings.Contains(metrics, strings.Replace(want, " ", " ", 1)) {
			if want == "podkit_elect_epoch "+strconv.FormatUint(epoch, 10) && strings.Contains(metrics, "podkit_elect_epoch "+strconv.FormatFloat(float64(epoch), 'g', -1, 64)) {
				continue
			}
			t.Errorf("leader /metrics lacks %q", want)
		}
	}

	// Notify: every replica posts the leadership.
	deadline := time.Now().Add(10 * time.Second)
	for got := false; !got; {
		select {
		case j := <-notes:
			got = j.Leader == leader.id && j.Epoch == epoch
		case <-time.After(time.Until(deadline)):
			t.Fatal("no --notify POST naming the leader")
		}
	}

	// Watch on a follower, then resign: a non-leader is refused, the
	// leader hands over, the watcher sees the new leader.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := watch(ctx, t, follower)
	if j := <-events; j.Leader != leader.id || j.Epoch != epoch {
		t.Errorf("first /watch event %+v, want the current leader %s@%d", j, leader.id, epoch)
	}
	resp, err := client.Post("http://"+follower.api+"/resign", "", nil)
	if err != nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("POST /resign to a follower: %v %v; want 409", resp.Status, err)
	}
	resp.Body.Close()
	resp, err = client.Post("http://"+leader.api+"/resign", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /resign to the leader: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	next, epoch2 := agree(t, ps, epoch)
	if next == leader {
		t.Errorf("%s resigned and still leads", leader.id)
	}
	for {
		select {
		case j, ok := <-events:
			if !ok {
				t.Fatal("/watch ended")
			}
			if j.Leader == next.id && j.Epoch == epoch2 {
				waitCode(leader, 503)
				waitCode(next, 200)
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("/watch did not report the new leader")
		}
	}
}

// TestEtcd: the etcd backend through the real command, against an
// embedded etcd: SIGSTOP the leader past its lease (fencing, as in
// TestPauseLeader); kill -9 the leader: the survivor leads once the dead
// leader's lease expires, with a higher epoch, and the leader proxy
// follows.
func TestEtcd(t *testing.T) {
	srv := kubetest.StartEtcd(t)
	t.Run("Pause", func(t *testing.T) {
		pauseLeader(t, startAll(t, clusterWith(t, 3, []string{"--backend", "etcd", "--etcd-endpoints", srv.Endpoint, "--election", "pause-test"})))
	})
	t.Run("Kill", func(t *testing.T) {
		ps := startAll(t, clusterWith(t, 2, []string{"--backend", "etcd", "--etcd-endpoints", srv.Endpoint, "--election", "kill-test"}))
		leader, epoch := agree(t, ps, 0)
		leader.kill()
		rest := without(ps, leader)
		next, epoch2 := agree(t, rest, epoch)
		want := next.id + " epoch=" + strconv.FormatUint(epoch2, 10)
		if code, body, err := get("http://" + rest[0].proxy + "/"); err != nil || code != 200 || body != want {
			t.Errorf("proxy after the kill: %d %q %v; want %q", code, body, err, want)
		}
	})
}

// TestKubernetes: the kubernetes backend through the real command,
// against a real kube-apiserver: SIGSTOP the leader past its lease
// (fencing); kill -9 the leader: a survivor takes the Lease once it
// expires, with a higher epoch; then a graceful stop (SIGTERM) hands over.
func TestKubernetes(t *testing.T) {
	api := kubetest.Start(t)
	if api == nil {
		return
	}
	args := func(election string) []string {
		return []string{"--backend", "kubernetes", "--kubeconfig", api.Kubeconfig, "--namespace", "default",
			"--election", election, "--lease-duration", "2s", "--renew-deadline", "1500ms", "--retry-period", "200ms"}
	}
	t.Run("Pause", func(t *testing.T) {
		pauseLeader(t, startAll(t, clusterWith(t, 3, args("pause-test"))))
	})
	t.Run("Kill", func(t *testing.T) {
		ps := startAll(t, clusterWith(t, 3, args("kill-test")))
		leader, epoch := agree(t, ps, 0)
		leader.kill()
		rest := without(ps, leader)
		next, epoch2 := agree(t, rest, epoch)
		want := next.id + " epoch=" + strconv.FormatUint(epoch2, 10)
		if code, body, err := get("http://" + rest[0].proxy + "/"); err != nil || code != 200 || body != want {
			t.Errorf("proxy after the kill: %d %q %v; want %q", code, body, err, want)
		}
		next.signal(syscall.SIGTERM)
		last, _ := agree(t, without(rest, next), epoch2)
		if last == next {
			t.Errorf("%s stopped and still leads", next.id)
		}
	})
}
