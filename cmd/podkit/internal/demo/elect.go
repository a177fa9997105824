package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/election"
	"github.com/podkit/podkit/election/raft"
)

// startElect runs three in-process electors (raft among themselves), each
// in front of a tiny application that names its replica, with the leader
// proxy on every one, and a control page to stop and restart a replica and
// watch leadership move.
func startElect(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	ids := []string{"n1", "n2", "n3"}
	type replica struct {
		id                   string
		api, proxy, raftAddr string
		app                  *http.Server
		appAddr              string
		mu                   sync.Mutex
		cancel               context.CancelFunc
		done                 <-chan error
		elector              *election.Elector
	}
	reps := make([]*replica, len(ids))
	var peers []raft.Peer
	for i, id := range ids {
		r := &replica{id: id, api: d.port(), proxy: d.port(), raftAddr: d.port()}
		ln, err := d.listen()
		if err != nil {
			return nil, nil, err
		}
		r.appAddr = ln.Addr().String()
		r.app = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			fmt.Fprintf(w, "hello from the application of replica %s (epoch %s)\n", id, req.Header.Get("X-Leader-Epoch"))
		}), ReadHeaderTimeout: 5 * time.Second}
		go r.app.Serve(ln)
		peers = append(peers, raft.Peer{ID: id, Addr: r.raftAddr})
		reps[i] = r
	}
	cln, err := d.listen() // the control page
	if err != nil {
		return nil, nil, err
	}
	control := cln.Addr().String()

	start := func(r *replica) error {
		cfg := election.DefaultConfig()
		cfg.Election = "demo"
		cfg.ID = r.id
		cfg.Listen = r.api
		cfg.ProxyListen = r.proxy
		cfg.Advertise = r.appAddr
		cfg.Raft.Peers = peers
		e, err := election.New(cfg)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		_, errc, err := d.run(rctx, e, "id", r.id)
		if err != nil {
			cancel()
			return err
		}
		r.mu.Lock()
		r.cancel, r.done, r.elector = cancel, errc, e
		r.mu.Unlock()
		return nil
	}
	stop := func(r *replica) bool {
		r.mu.Lock()
		cancel, done := r.cancel, r.done
		r.cancel, r.done, r.elector = nil, nil, nil
		r.mu.Unlock()
		if cancel == nil {
			return false
		}
		cancel()
		<-done
		return true
	}
	for _, r := range reps {
		if err := start(r); err != nil {
			cln.Close()
			return nil, nil, err
		}
	}
	find := func(id string) *replica {
		for _, r := range reps {
			if r.id == id {
				return r
			}
		}
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		view := map[string]any{}
		for _, r := range reps {
			r.mu.Lock()
			e := r.elector
			r.mu.Unlock()
			if e == nil {
				view[r.id] = "stopped"
				continue
			}
			view[r.id] = e.Leader()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		enc.Encode(map[string]any{
			"replicas": view,
			"try":      []string{"POST /stop?id=ID (stop a replica: stop the leader and watch leadership move)", "POST /start?id=ID", "POST http://<replica api>/resign on the leader"},
		})
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, req *http.Request) {
		r := find(req.URL.Query().Get("id"))
		if r == nil {
			http.Error(w, "unknown id (want n1, n2 or n3)", http.StatusBadRequest)
			return
		}
		if !stop(r) {
			http.Error(w, r.id+" is not running", http.StatusConflict)
			return
		}
		fmt.Fprintf(w, "stopped %s\n", r.id)
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, req *http.Request) {
		r := find(req.URL.Query().Get("id"))
		if r == nil {
			http.Error(w, "unknown id (want n1, n2 or n3)", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		running := r.cancel != nil
		r.mu.Unlock()
		if running {
			http.Error(w, r.id+" is running", http.StatusConflict)
			return
		}
		if err := start(r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "started %s\n", r.id)
	})
	ctl := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go ctl.Serve(cln)

	out := make(chan error, 1)
	go func() {
		<-ctx.Done()
		for _, r := range reps {
			stop(r)
			r.app.Close()
		}
		ctl.Close()
		out <- nil
	}()
	var apis []string
	for _, r := range reps {
		apis = append(apis, r.id+"=http://"+r.api)
	}
	return []Endpoint{
		{"elect", "control: each replica's view; POST /stop?id=n1 (or /start) to watch leadership move", "http://" + control + "/"},
		{"elect", "who leads, as replica n1 sees it (GET /leader, GET /watch SSE, POST /resign)", "http://" + reps[0].api + "/leader"},
		{"elect", "leader proxy on n2: forwards to the leader's application with X-Leader-Epoch", "http://" + reps[1].proxy + "/"},
		{"elect", "the three electors' APIs", strings.Join(apis, " ")},
	}, out, nil
}
