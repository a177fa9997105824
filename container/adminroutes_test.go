package container

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// routedComponent serves admin routes of its own.
type routedComponent struct {
	httpComponent
	routes map[string]http.Handler
}

func (c *routedComponent) AdminRoutes() map[string]http.Handler { return c.routes }

var _ AdminRouter = (*routedComponent)(nil)

// TestAdminRoutes: a component's own routes are served on the admin
// listener with their method (GET when the key has none), other methods
// get 405, a route that clashes with the contract's or is malformed is
// skipped with a log line, and the contract's routes are unchanged.
func TestAdminRoutes(t *testing.T) {
	text := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })
	}
	c := &routedComponent{routes: map[string]http.Handler{
		"/endpoints":   text("endpoints"),
		"POST /flush":  text("flushed"),
		"GET /livez":   text("hijacked"),
		"nopath":       text("bad"),
		"GET /{x}":     text("bad"),
		"/nil-handler": nil,
	}}
	var logs bytes.Buffer
	h := newHost(c, DefaultOptions(), slog.New(slog.NewTextHandler(&logs, nil)))
	adm := h.AdminHandler()
	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		adm.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/endpoints", 200, "endpoints"},
		{"POST", "/endpoints", 405, "use GET"},
		{"POST", "/flush", 200, "flushed"},
		{"GET", "/flush", 405, "use POST"},
		{"GET", "/livez", 200, "ok\n"},
		{"GET", "/nopath", 404, ""},
		{"GET", "/nil-handler", 404, ""},
		{"GET", "/", 200, "GET /endpoints; POST /flush"},
	} {
		code, body := do(tc.method, tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
	for _, want := range []string{`route="GET /livez"`, "route=nopath", `route="GET /{x}"`, "route=/nil-handler"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line for the skipped route %s in:\n%s", want, logs.String())
		}
	}

	// A component without routes keeps the contract's alone.
	plain := newHost(&c.httpComponent, DefaultOptions(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := httptest.NewRecorder()
	plain.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/endpoints", nil))
	if rec.Code != 404 {
		t.Errorf("GET /endpoints without AdminRoutes = %d, want 404", rec.Code)
	}
}
