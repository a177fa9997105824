//go:build container

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
)

// electPod is one replica: the application container (sample-app, naming
// its replica) owning the network namespace, and `podkit elect` as its
// sidecar, raft backend.
type electPod struct {
	id         string
	app, elect *containertest.Container
	api, proxy string // host addresses of the published ports
}

type electLeader struct {
	Leader  string `json:"leader"`
	Address string `json:"address"`
	Self    bool   `json:"self"`
	Epoch   uint64 `json:"epoch"`
}

var electClient = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func startElectPods(t *testing.T, net *containertest.Network) []*electPod {
	t.Helper()
	ids := []string{"a", "b", "c"}
	var peers []string
	for _, id := range ids {
		peers = append(peers, id+"=app-"+id+":7000")
	}
	var pods []*electPod
	for _, id := range ids {
		p := &electPod{id: id}
		p.app = containertest.Run(t, containertest.Options{
			Name: "elect-app-" + id, Image: containertest.Image(),
			Cmd:     []string{"sample-app", "--listen", "0.0.0.0:8080", "--message", "replica " + id, "--admin-addr", "127.0.0.1:9902"},
			Network: net.Name, Aliases: []string{"app-" + id},
			Publish: []string{"4040", "8081"},
		})
		if t.Skipped() || t.Failed() {
			t.FailNow()
		}
		p.elect = containertest.Run(t, containertest.Options{
			Name: "elect-" + id, Image: containertest.Image(),
			Cmd: []string{"elect", "--id", id, "--peers", strings.Join(peers, ","), "--data-dir", "/data",
				// Open to the test's published port (--insecure-listen).
				"--listen", "0.0.0.0:4040", "--insecure-listen", "--proxy-listen", "0.0.0.0:8081", "--advertise", "app-" + id + ":8080",
				"--admin-addr", "127.0.0.1:9901", "--drain-delay", "0s"},
			NetworkOf: p.app,
			Args:      []string{"--tmpfs", "/data:uid=65532,gid=65532"},
		})
		p.api, p.proxy = p.app.Addr(t, "4040"), p.app.Addr(t, "8081")
		pods = append(pods, p)
	}
	return pods
}

func (p *electPod) leader() (electLeader, error) {
	var j electLeader
	resp, err := electClient.Get("http://" + p.api + "/leader")
	if err != nil {
		return j, err
	}
	defer resp.Body.Close()
	return j, json.NewDecoder(resp.Body).Decode(&j)
}

// electAgree waits until every pod in pods sees the same leader, one of
// them, above minEpoch.
func electAgree(t *testing.T, pods []*electPod, minEpoch uint64) (*electPod, uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	why := ""
	for time.Now().Before(deadline) {
		why = ""
		var first electLeader
		var leader *electPod
		for i, p := range pods {
			j, err := p.leader()
			switch {
			case err != nil:
				why = p.id + ": " + err.Error()
			case j.Leader == "":
				why = p.id + " knows no leader"
			case i > 0 && (j.Leader != first.Leader || j.Epoch != first.Epoch):
				why = fmt.Sprintf("%s sees %s@%d, %s sees %s@%d", pods[0].id, first.Leader, first.Epoch, p.id, j.Leader, j.Epoch)
			case j.Epoch <= minEpoch:
				why = fmt.Sprintf("%s sees epoch %d, want above %d", p.id, j.Epoch, minEpoch)
			}
			if why != "" {
				break
			}
			if i == 0 {
				first = j
			}
			if j.Self {
				leader = p
			}
		}
		if why == "" && leader != nil {
			return leader, first.Epoch
		}
		if why == "" {
			why = "the leader " + first.Leader + " is not among the pods asked"
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no agreement on a leader: %s", why)
	return nil, 0
}

// proxied asks p's leader proxy and returns which replica's application
// answered.
func proxied(t *testing.T, p *electPod) (string, string) {
	t.Helper()
	resp, err := electClient.Get("http://" + p.proxy + "/")
	if err != nil {
		t.Fatalf("leader proxy on %s: %v", p.id, err)
	}
	defer resp.Body.Close()
	var body struct{ Message string }
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &body)
	return strings.TrimPrefix(body.Message, "replica "), resp.Status
}

func withoutPod(pods []*electPod, x *electPod) []*electPod {
	var out []*electPod
	for _, p := range pods {
		if p != x {
			out = append(out, p)
		}
	}
	return out
}

// TestElectKillLeader: three app replicas with elector sidecars; kill the
// leader's pod; the leader proxy on the survivors routes to the new leader.
func TestElectKillLeader(t *testing.T) {
	net := containertest.NewNetwork(t, "elect")
	if net == nil {
		return
	}
	pods := startElectPods(t, net)
	leader, epoch := electAgree(t, pods, 0)
	for _, p := range pods {
		if got, status := proxied(t, p); got != leader.id {
			t.Errorf("proxy on %s reached %q (%s), want the leader %s", p.id, got, status, leader.id)
		}
	}
	leader.elect.Kill(t, "KILL")
	leader.app.Kill(t, "KILL")
	rest := withoutPod(pods, leader)
	next, _ := electAgree(t, rest, epoch)
	for _, p := range rest {
		if got, status := proxied(t, p); got != next.id {
			t.Errorf("after the kill, proxy on %s reached %q (%s), want the new leader %s", p.id, got, status, next.id)
		}
	}
}

// logRecord is one JSON log line of podkit elect.
type logRecord struct {
	Time  time.Time `json:"time"`
	Msg   string    `json:"msg"`
	Epoch uint64    `json:"epoch"`
}

func electLogs(t *testing.T, p *electPod) []logRecord {
	var out []logRecord
	sc := bufio.NewScanner(strings.NewReader(p.elect.Logs(t)))
	for sc.Scan() {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// TestElectPartition: cut the leader off the network; the majority elects
// a new leader with a higher epoch; the minority never acts as leader with
// a current epoch — while cut off it leads at most with its old epoch, and
// stops doing so — and follows the new leader once the partition heals.
func TestElectPartition(t *testing.T) {
	net := containertest.NewNetwork(t, "elect")
	if net == nil {
		return
	}
	pods := startElectPods(t, net)
	old, epoch := electAgree(t, pods, 0)

	cut := time.Now()
	net.Disconnect(t, old.app)
	rest := withoutPod(pods, old)
	next, epoch2 := electAgree(t, rest, epoch)
	if got, _ := proxied(t, rest[0]); got != next.id {
		t.Errorf("proxy on the majority reached %q, want %s", got, next.id)
	}
	time.Sleep(time.Second)
	healed := time.Now()
	net.Connect(t, old.app, "app-"+old.id)
	// Its published ports do not survive the reconnection: read its own
	// account of events from its logs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		follows := false
		for _, r := range electLogs(t, old) {
			follows = follows || (r.Time.After(healed) && r.Msg == "following" && r.Epoch >= epoch2)
		}
		if follows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the healed replica %s does not follow a leader of epoch %d or later", old.id, epoch2)
		}
		time.Sleep(200 * time.Millisecond)
	}

	steppedDown := false
	for _, r := range electLogs(t, old) {
		if r.Time.Before(cut) || r.Time.After(healed) {
			continue
		}
		switch r.Msg {
		case "leading":
			if r.Epoch >= epoch2 || r.Epoch > epoch {
				t.Errorf("the cut-off replica %s led at epoch %d while the majority had %d", old.id, r.Epoch, epoch2)
			}
		case "no leader known", "leadership expired without renewal; no longer leading":
			steppedDown = true
		}
	}
	if !steppedDown {
		t.Errorf("the cut-off replica %s never stopped leading while partitioned; logs:\n%s", old.id, old.elect.Logs(t))
	}
}
