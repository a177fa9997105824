package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

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
func (e *Elector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /leader", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, toJSON(e.Leader()))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		j := toJSON(e.Leader())
		j.Name = &j.Leader
		writeJSON(w, http.StatusOK, j)
	})
	mux.HandleFunc("GET /watch", e.serveWatch)
	mux.HandleFunc("POST /resign", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		before := e.Leader()
		err := e.Resign(ctx)
		switch {
		case errors.Is(err, ErrNotLeader):
			writeJSON(w, http.StatusConflict, map[string]any{"error": "not the leader", "leader": before.Leader, "epoch": before.Epoch})
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
		default:
			e.log.Info("resigned on request", "epoch", before.Epoch)
			writeJSON(w, http.StatusOK, map[string]any{"resigned": true, "epoch": before.Epoch})
		}
	})
	return mux
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
