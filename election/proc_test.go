package election

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podkit/podkit/election/electiontest"
	"github.com/podkit/podkit/election/fence"
	"github.com/podkit/podkit/internal/child"
)

// proc is one `podkit elect` replica run as a real process, with its own
// application (an HTTP server that names the replica) behind --advertise.
type proc struct {
	id                      string
	api, admin, proxy, raft string
	dataDir                 string
	app                     *httptest.Server
	args                    []string
	log                     *syncBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	stopped bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ports hands out loopback addresses that were free a moment ago, all
// distinct: each stays bound until release, so the kernel cannot hand the
// same port out twice.
type ports struct{ lns []net.Listener }

func (p *ports) next(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.lns = append(p.lns, ln)
	return ln.Addr().String()
}

func (p *ports) release() {
	for _, ln := range p.lns {
		ln.Close()
	}
	p.lns = nil
}

// cluster prepares n replicas with the raft backend, each with a data
// dir; startAll starts them.
func cluster(t *testing.T, n int, extra ...string) []*proc {
	t.Helper()
	return clusterWith(t, n, nil, extra...)
}

// clusterWith is cluster with backend flags: nil means raft with --peers.
func clusterWith(t *testing.T, n int, backendArgs []string, extra ...string) []*proc {
	t.Helper()
	ps := make([]*proc, n)
	var peers []string
	var free ports
	defer free.release()
	for i := range ps {
		id := fmt.Sprintf("n%d", i+1)
		p := &proc{id: id, api: free.next(t), admin: free.next(t), proxy: free.next(t), raft: free.next(t), dataDir: t.TempDir(), log: &syncBuffer{}}
		p.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s epoch=%s", id, r.Header.Get(fence.Header))
		}))
		t.Cleanup(p.app.Close)
		peers = append(peers, id+"="+p.raft)
		ps[i] = p
	}
	for _, p := range ps {
		bargs := backendArgs
		if bargs == nil {
			bargs = []string{"--peers", strings.Join(peers, ","), "--data-dir", p.dataDir}
		}
		p.args = append([]string{"elect", "--id", p.id}, bargs...)
		p.args = append(p.args, "--listen", p.api, "--admin-addr", p.admin, "--proxy-listen", p.proxy,
			"--advertise", p.app.Listener.Addr().String(), "--drain-delay", "0s", "--log-format", "text")
		p.args = append(p.args, extra...)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.kill()
		}
		if t.Failed() {
			for _, p := range ps {
				t.Logf("--- %s log:\n%s", p.id, tail(p.log.String(), 40))
			}
		}
	})
	return ps
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs the replica (again, after a kill, with the same ports and
// data dir).
func (p *proc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], p.args...)
	cmd.Env = append(os.Environ(), roleEnv+"=podkit")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	child.Prepare(cmd, child.Options{Group: true})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.cmd, p.stopped = cmd, false
	p.mu.Unlock()
}

// kill sends SIGKILL and reaps the process.
func (p *proc) kill() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Kill()
	cmd.Wait()
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.cmd.Process.Signal(sig)
		p.stopped = sig == syscall.SIGSTOP
	}
}

var client = &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}

// leader asks the replica's API who leads.
func (p *proc) leader() (leaderJSON, error) {
	var j leaderJSON
	resp, err := client.Get("http://" + p.api + "/leader")
	if err != nil {
		return j, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return j, fmt.Errorf("GET /leader: %s", resp.Status)
	}
	return j, json.NewDecoder(resp.Body).Decode(&j)
}

func get(url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// agree waits until every replica in ps reports the same leader (one of
// ps) at an epoch above min, and returns it.
func agree(t *testing.T, ps []*proc, min uint64) (*proc, uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		why = ""
		var first leaderJSON
		var leader *proc
		for i, p := range ps {
			j, err := p.leader()
			switch {
			case err != nil:
				why = p.id + ": " + err.Error()
			case j.Leader == "":
				why = p.id + " knows no leader"
			case i > 0 && (j.Leader != first.Leader || j.Epoch != first.Epoch):
				why = fmt.Sprintf("%s sees %s@%d, %s sees %s@%d", ps[0].id, first.Leader, first.Epoch, p.id, j.Leader, j.Epoch)
			case j.Epoch <= min:
				why = fmt.Sprintf("%s sees epoch %d, want above %d", p.id, j.Epoch, min)
			case j.Self != (j.Leader == p.id):
				why = fmt.Sprintf("%s: self=%v for leader %s", p.id, j.Self, j.Leader)
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
		if why == "" && leader == nil {
			why = "leader " + first.Leader + " is not among the replicas asked"
		}
		if why == "" {
			if first.Address != leader.app.Listener.Addr().String() {
				t.Fatalf("leader %s reported with address %q, want %q", leader.id, first.Address, leader.app.Listener.Addr())
			}
			return leader, first.Epoch
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("replicas did not agree on a leader: %s", why)
	return nil, 0
}

func without(ps []*proc, x *proc) []*proc {
	var out []*proc
	for _, p := range ps {
		if p != x {
			out = append(out, p)
		}
	}
	return out
}

// resource is a fenced HTTP resource that records what it accepted.
type resource struct {
	srv   *httptest.Server
	fence *fence.Fence
	hist  *electiontest.History
}

func newResource(t *testing.T, hist *electiontest.History) *resource {
	r := &resource{fence: &fence.Fence{}, hist: hist}
	r.srv = httptest.NewServer(fence.Middleware(r.fence, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		epoch, _ := strconv.ParseUint(req.Header.Get(fence.Header), 10, 64)
		hist.Accepted(req.Header.Get("X-Writer"), epoch)
		w.WriteHeader(http.StatusNoContent)
	})))
	t.Cleanup(r.srv.Close)
	return r
}

// write writes as node with epoch; it returns the status code.
func (r *resource) write(node string, epoch uint64) (int, error) {
	req, _ := http.NewRequest("POST", r.srv.URL, nil)
	req.Header.Set(fence.Header, strconv.FormatUint(epoch, 10))
	req.Header.Set("X-Writer", node)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// actor plays each replica's application: it asks its elector who leads,
// records the observation, and writes to the resource while it leads.
func actor(ctx context.Context, p *proc, res *resource, hist *electiontest.History, wg *sync.WaitGroup) {
	defer wg.Done()
	for ctx.Err() == nil {
		j, err := p.leader()
		if err == nil {
			hist.Observe(p.id, j.Leader, j.Epoch)
			if j.Self {
				res.write(p.id, j.Epoch)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(15 * time.Millisecond):
		}
	}
}

// watch reads a replica's /watch stream into events until ctx ends.
func watch(ctx context.Context, t *testing.T, p *proc) <-chan leaderJSON {
	out := make(chan leaderJSON, 64)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.api+"/watch", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /watch: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET /watch: Content-Type %q", ct)
	}
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var event string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "leader":
				var j leaderJSON
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &j) == nil {
					select {
					case out <- j:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return out
}

func startAll(t *testing.T, ps []*proc) []*proc {
	for _, p := range ps {
		p.start(t)
	}
	return ps
}
