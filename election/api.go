package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/podkit/podkit/container"
)

// The roles of the HTTP API (--listen).
const (
	// RoleReader may read who leads: GET /leader, GET /, GET /watch.
	RoleReader = "reader"
	// RoleAdmin may make the leader resign (POST /resign), and read.
	RoleAdmin = "admin"
)

var (
	readers = []string{RoleReader, RoleAdmin}
	admins  = []string{RoleAdmin}
)

// route is one endpoint of the API and the roles that may call it (any
// one suffices).
type route struct {
	method, path string
	roles        []string
	serve        func(*Elector, http.ResponseWriter, *http.Request)
}

// routes is the API in one table: the handler's mux, Access and the docs'
// table all follow it, so no endpoint is served without its roles.
var routes = []route{
	{"GET", "/leader", readers, (*Elector).serveLeader},
	{"GET", "/{$}", readers, (*Elector).serveRoot},
	{"GET", "/watch", readers, (*Elector).serveWatch},
	{"POST", "/resign", admins, (*Elector).serveResign},
}

// matcher matches a request to its route as the API's mux does (the same
// paths), so the roles a request needs are those of the handler that
// would serve it.
var matcher, byPath = func() (*http.ServeMux, map[string]*route) {
	m := http.NewServeMux()
	by := make(map[string]*route, len(routes))
	for i := range routes {
		m.Handle(routes[i].path, http.NotFoundHandler())
		by[routes[i].path] = &routes[i]
	}
	return m, by
}()

// Access is who may call what on the API: a reader reads the leadership
// (GET /leader, GET /, GET /watch), an admin also makes the leader resign
// (POST /resign). Another method on one of these paths (a 405) needs the
// path's roles; a path that is no endpoint is public (a 404 says nothing).
func Access() container.Access {
	return container.Access{
		Component: "elect",
		Subsystem: "elect",
		Roles: []container.Role{
			{Name: RoleReader, Help: "read the leadership: GET /leader, GET /, GET /watch"},
			{Name: RoleAdmin, Help: "make the leader resign (POST /resign), and read the leadership"},
		},
		Need: func(r *http.Request) []string {
			_, pattern := matcher.Handler(r)
			if rt := byPath[pattern]; rt != nil {
				return rt.roles
			}
			return nil
		},
	}
}

// leaderJSON is GET /leader's answer; GET / adds Name.
type leaderJSON struct {
	Name    *string `json:"name,omitempty"`
	Leader  string  `json:"leader"`
	Address string  `json:"address"`
	Self    bool    `json:"self"`
	Epoch   uint64  `json:"epoch"`
	Expires string  `json:"expires"`
}

func toJSON(st State) leaderJSON {
	j := leaderJSON{Leader: st.Leader, Address: st.Address, Self: st.Self, Epoch: st.Epoch}
	if !st.Expires.IsZero() {
		j.Expires = st.Expires.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	return j
}

// Handler is the HTTP API: GET /leader, GET /, GET /watch, POST /resign.
// It checks no credential itself: Run serves it behind the API's security
// (see Access).
func (e *Elector) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) { rt.serve(e, w, r) })
	}
	return mux
}

func (e *Elector) serveLeader(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, toJSON(e.Leader()))
}

// serveRoot is GET /, for the clients of the kubernetes/contrib election
// sidecar: /leader's answer plus "name".
func (e *Elector) serveRoot(w http.ResponseWriter, r *http.Request) {
	j := toJSON(e.Leader())
	j.Name = &j.Leader
	writeJSON(w, http.StatusOK, j)
}

// serveResign hands leadership over, and logs who asked.
func (e *Elector) serveResign(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	by := "anyone (the API takes no credentials)"
	if id, ok := container.CallerOf(r); ok && id.Name != "" {
		by = id.Name
	}
	before := e.Leader()
	err := e.Resign(ctx)
	switch {
	case errors.Is(err, ErrNotLeader):
		e.log.Info("resign requested, but this replica does not lead", "by", by, "peer", r.RemoteAddr, "leader", before.Leader)
		writeJSON(w, http.StatusConflict, map[string]any{"error": "not the leader", "leader": before.Leader, "epoch": before.Epoch})
	case err != nil:
		e.log.Warn("resign requested, and failed", "by", by, "peer", r.RemoteAddr, "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
	default:
		e.log.Info("resigned on request", "by", by, "peer", r.RemoteAddr, "epoch", before.Epoch)
		writeJSON(w, http.StatusOK, map[string]any{"resigned": true, "epoch": before.Epoch})
	}
}

// serveWatch streams the state, then every change, as Server-Sent Events:
// "event: leader", "id: <n>", "data: <GET /leader's JSON>".
func (e *Elector) serveWatch(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ch, cancel := e.subscribe()
	defer cancel()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	n := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case st, ok := <-ch:
			if !ok {
				return
			}
			n++
			b, _ := json.Marshal(toJSON(st))
			if _, err := fmt.Fprintf(w, "event: leader\nid: %d\ndata: %s\n\n", n, b); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
