package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/podkit/podkit/internal/buildinfo"
)

type adminServer struct {
	srv *http.Server
	ln  net.Listener
}

func (a *adminServer) addr() string {
	if a == nil || a.ln == nil {
		return "off"
	}
	return a.ln.Addr().String()
}

func (a *adminServer) close() {
	if a == nil || a.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
}

func (h *Host) startAdmin(o Options) (*adminServer, error) {
	if o.AdminListener == nil && o.AdminAddr == "off" {
		return nil, nil
	}
	ln, err := Listen("--admin-addr "+o.AdminAddr, o.AdminAddr, o.AdminListener)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h.AdminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          nil,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("admin listener failed", "error", err)
		}
	}()
	return &adminServer{srv: srv, ln: ln}, nil
}

// AdminHandler returns the admin endpoints' handler.
func (h *Host) AdminHandler() http.Handler {
	routes := []struct {
		method, path string
		handler      http.Handler
	}{
		{"GET", "/livez", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeText(w, http.StatusOK, "ok\n") })},
		{"GET", "/readyz", http.HandlerFunc(h.serveReadyz)},
		{"GET", "/healthz", http.HandlerFunc(h.serveHealthz)},
		{"GET", "/metrics", metricsHandler(h.reg)},
		{"GET", "/info", http.HandlerFunc(h.serveInfo)},
		{"GET", "/lifecycle", http.HandlerFunc(h.serveLifecycle)},
		{"POST", "/quitquitquit", loopbackOnly(func(w http.ResponseWriter, r *http.Request) {
			h.log.Info("stop requested", "via", "/quitquitquit", "remote", r.RemoteAddr)
			h.requestStop("POST /quitquitquit")
			writeText(w, http.StatusOK, "stopping\n")
		})},
		{"POST", "/pause", loopbackOnly(func(w http.ResponseWriter, r *http.Request) {
			h.setPaused(true)
			writeJSON(w, http.StatusOK, map[string]bool{"paused": true})
		})},
		{"POST", "/resume", loopbackOnly(func(w http.ResponseWriter, r *http.Request) {
			h.setPaused(false)
			writeJSON(w, http.StatusOK, map[string]bool{"paused": false})
		})},
	}
	mux := http.NewServeMux()
	allowed := map[string]string{}
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, rt.handler)
		allowed[rt.path] = rt.method
	}
	extra := h.componentRoutes(allowed)
	for _, rt := range extra {
		mux.Handle(rt.method+" "+rt.path, rt.handler)
		allowed[rt.path] = rt.method
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", m)
			writeText(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; use "+m+"\n")
			return
		}
		if r.URL.Path == "/" && r.Method == http.MethodGet {
			own := ""
			for _, rt := range extra {
				own += " " + rt.method + " " + rt.path + ";"
			}
			writeText(w, http.StatusOK, "podkit "+h.name+" admin: /livez /readyz /healthz /metrics /info /lifecycle; POST /pause /resume /quitquitquit;"+strings.TrimSuffix(own, ";")+"\n")
			return
		}
		http.NotFound(w, r)
	})
	return mux
}

// AdminRouter is implemented by components that serve routes of their
// own on the admin listener, beside the contract's (broker's GET
// /endpoints). Each key is "METHOD /path" or "/path" (GET); its handler
// answers that method on that exact path. A key naming one of the
// contract's paths, or malformed, is skipped with a log line.
type AdminRouter interface {
	AdminRoutes() map[string]http.Handler
}

type adminRoute struct {
	method, path string
	handler      http.Handler
}

// componentRoutes returns the component's own admin routes, sorted by
// path, leaving out those that clash with taken.
func (h *Host) componentRoutes(taken map[string]string) []adminRoute {
	ar, ok := h.comp.(AdminRouter)
	if !ok {
		return nil
	}
	var out []adminRoute
	for key, handler := range ar.AdminRoutes() {
		method, path, ok := strings.Cut(key, " ")
		if !ok {
			method, path = http.MethodGet, key
		}
		switch {
		case handler == nil || method == "" || strings.ContainsAny(method, " /{}") || !strings.HasPrefix(path, "/") || path == "/" || strings.ContainsAny(path, " {}"):
			h.log.Error("admin route skipped: want \"METHOD /path\" and a handler", "route", key)
			continue
		case taken[path] != "":
			h.log.Error("admin route skipped: the contract serves this path", "route", key)
			continue
		}
		out = append(out, adminRoute{strings.ToUpper(method), path, handler})
	}
	slices.SortFunc(out, func(a, b adminRoute) int { return strings.Compare(a.path, b.path) })
	return slices.CompactFunc(out, func(a, b adminRoute) bool { return a.path == b.path })
}

// loopbackOnly answers 403 unless the caller is on a loopback address.
func loopbackOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			writeText(w, http.StatusForbidden, "forbidden: "+r.URL.Path+" is only accepted from loopback\n")
			return
		}
		next(w, r)
	}
}

func (h *Host) serveReadyz(w http.ResponseWriter, r *http.Request) {
	ready, why := h.readiness()
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "reason": why})
		return
	}
	if !ready {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+why+"\n")
		return
	}
	writeText(w, http.StatusOK, "ok\n")
}

func (h *Host) serveHealthz(w http.ResponseWriter, r *http.Request) {
	ready, why := h.readiness()
	checks, allOK := h.checks.snapshot()
	healthy := ready && allOK
	code := http.StatusOK
	if !healthy {
		code = http.StatusServiceUnavailable
	}
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		status := "ok"
		if !healthy {
			status = "fail"
		}
		writeJSON(w, code, map[string]any{
			"status": status, "ready": ready, "reason": why, "checks": checks,
		})
		return
	}
	if !healthy {
		msg := "unhealthy"
		if !ready {
			msg += ": " + why
		}
		for n, c := range checks {
			if !c.OK {
				msg += fmt.Sprintf("; check %s: %s", n, c.Error)
			}
		}
		writeText(w, code, msg+"\n")
		return
	}
	writeText(w, code, "ok\n")
}

func (h *Host) serveInfo(w http.ResponseWriter, r *http.Request) {
	info := map[string]any{
		"component":  h.name,
		"build":      buildinfo.Get(),
		"started":    h.started.UTC().Format(time.RFC3339Nano),
		"contract":   humanDurations(h.opts),
		"paused":     h.Paused(),
		"ready":      first(h.readiness()),
		"admin_addr": h.opts.AdminAddr,
	}
	if c, ok := h.comp.(Configured); ok {
		info["config"] = humanDurations(c.EffectiveConfig())
	}
	h.infoMu.Lock()
	for k, f := range h.info {
		info[k] = f()
	}
	h.infoMu.Unlock()
	writeJSON(w, http.StatusOK, info)
}

func first(b bool, _ string) bool { return b }

func (h *Host) serveLifecycle(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	past, ch, unsubscribe := h.events.subscribe()
	defer unsubscribe()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	for _, e := range past {
		writeEvent(w, e)
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			writeEvent(w, e)
			fl.Flush()
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, e Event) {
	b, _ := json.Marshal(e)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprint(w, s)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
