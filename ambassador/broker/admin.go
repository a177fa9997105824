package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podkit/podkit/internal/upstream"
)

// AdminRoutes implements container.AdminRouter: GET /endpoints.
func (b *Broker) AdminRoutes() map[string]http.Handler {
	return map[string]http.Handler{"GET /endpoints": http.HandlerFunc(b.serveEndpoints)}
}

// upstreamStatus is one upstream on GET /endpoints.
type upstreamStatus struct {
	Name   string `json:"name"`
	Mode   string `json:"mode"`
	Listen string `json:"listen"`
	Source string `json:"source"`
	// Synced is whether discovery has answered; DiscoveryError is its
	// last refresh's error.
	Synced         bool   `json:"synced"`
	DiscoveryError string `json:"discovery_error,omitempty"`
	Usable         int    `json:"usable"`
	// Error says why no endpoint is usable, when none is.
	Error     string                    `json:"error,omitempty"`
	Endpoints []upstream.EndpointStatus `json:"endpoints"`
}

// endpoints returns the state of every upstream and its endpoints, as
// GET /endpoints shows it.
func (b *Broker) endpoints() []upstreamStatus {
	var out []upstreamStatus
	for _, s := range b.services() {
		g := s.cur.Load()
		synced, derr := g.watch.Status()
		st := upstreamStatus{
			Name: g.spec.Name, Mode: g.spec.Mode, Listen: s.ln.Addr().String(), Source: g.spec.Source,
			Synced: synced, Usable: g.pool.Usable(), Endpoints: g.pool.Snapshot(),
		}
		if derr != nil {
			st.DiscoveryError = derr.Error()
		}
		if err := g.readiness(); err != nil {
			st.Error = err.Error()
		}
		if st.Endpoints == nil {
			st.Endpoints = []upstream.EndpointStatus{}
		}
		out = append(out, st)
	}
	return out
}

// serveEndpoints answers GET /endpoints: JSON, or a table with
// ?format=text or Accept: text/plain.
func (b *Broker) serveEndpoints(w http.ResponseWriter, r *http.Request) {
	ups := b.endpoints()
	w.Header().Set("Cache-Control", "no-store")
	format := r.URL.Query().Get("format")
	if format == "text" || format == "" && strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writeTable(w, ups, time.Now())
		return
	}
	if format != "" && format != "json" {
		http.Error(w, "format: want json or text", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(map[string]any{"upstreams": ups})
}

// writeTable writes the endpoints as a table, one line per endpoint.
func writeTable(w http.ResponseWriter, ups []upstreamStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tENDPOINT\tZONE\tWEIGHT\tPRIORITY\tCONDITION\tHEALTH\tEJECTED\tIN-FLIGHT\tREQUESTS\tUSABLE")
	for _, u := range ups {
		if len(u.Endpoints) == 0 {
			why := u.Error
			if why == "" {
				why = "no endpoint"
			}
			fmt.Fprintf(tw, "%s\t-\t\t\t\t\t\t\t\t\t%s\n", u.Name, why)
		}
		for _, e := range u.Endpoints {
			cond := "ready"
			switch {
			case e.Terminating && e.Serving:
				cond = "terminating"
			case e.Terminating:
				cond = "terminated"
			case !e.Ready && e.Serving:
				cond = "serving"
			case !e.Ready:
				cond = "not-ready"
			}
			ej := "no"
			if e.Ejected {
				ej = "for " + e.EjectedUntil.Sub(now).Round(time.Second).String()
			}
			zone := e.Zone
			if zone == "" {
				zone = "-"
			}
			health := e.Health
			if e.LastCheckError != "" && e.Health != "healthy" {
				health += " (" + e.LastCheckError + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%t\n",
				u.Name, e.Address, zone, e.Weight, e.Priority, cond, health, ej, e.InFlight, e.Requests, e.Usable)
		}
	}
	tw.Flush()
}
