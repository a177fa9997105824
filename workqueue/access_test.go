package workqueue

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestNeed: the roles of a request are its route's, found as the mux finds
// the handler.
func TestNeed(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           []string
	}{
		{"POST", "/queues/q/items", producer},
		{"GET", "/queues/q/items", admin},
		{"HEAD", "/queues/q/items", admin},
		{"GET", "/queues/q/items/7", producerOrAdmin},
		{"DELETE", "/queues/q/items/7", admin},
		{"PUT", "/queues/q/items/7", producerOrAdmin}, // 405: the path's roles
		{"POST", "/queues/q/lease", worker},
		{"POST", "/leases/1.1.ab/ack", worker},
		{"POST", "/leases/a%2Fb/ack", worker},
		{"POST", "/leases/ack", worker},
		{"GET", "/queues/q/drained", workerOrAdmin},
		{"GET", "/queues/x/../q/items", admin}, // redirected to its clean path: that route's roles
		{"GET", "/nope", nil},                  // 404 to anyone
		{"GET", "/queues/q/items/7/", nil},     // no such endpoint
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		if got := need(r); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: need %v, want %v", tc.method, tc.target, got, tc.want)
		}
	}
}

// TestPlainRouteIsTheMuxs: on every path the fast matcher takes, it
// finds what the mux finds: paths made of the patterns' words, wildcard
// values, and what a mux cleans or unescapes.
func TestPlainRouteIsTheMuxs(t *testing.T) {
	words := []string{"queues", "leases", "items", "dead", "replay", "drained", "lease", "ack", "nack", "heartbeat",
		"q", "42", "1.2.ab", "a%20b", "", ".", "..", "a%2Fb", "queu%65s", "{q}"}
	rnd := rand.New(rand.NewPCG(1, 2))
	methods := []string{"GET", "POST", "DELETE", "HEAD", "PUT"}
	checked := 0
	for range 20000 {
		var b strings.Builder
		for range 1 + rnd.IntN(6) {
			b.WriteString("/" + words[rnd.IntN(len(words))])
		}
		if rnd.IntN(10) == 0 {
			b.WriteString("/")
		}
		r, err := http.NewRequest(methods[rnd.IntN(len(methods))], "http://queue"+b.String(), nil)
		if err != nil {
			continue
		}
		if got, want := need(r), needMux(r); !slices.Equal(got, want) {
			t.Errorf("%s %s: need %v, the mux's route needs %v", r.Method, b.String(), got, want)
		}
		if _, ok := plainRoute(r.URL.Path); ok && r.URL.RawPath == "" {
			checked++
		}
	}
	if checked < 1000 {
		t.Errorf("only %d paths took the fast path", checked)
	}
}

// BenchmarkNeed is the role lookup every request pays, on the hot path's
// routes.
func BenchmarkNeed(b *testing.B) {
	var reqs []*http.Request
	for _, target := range []string{"/queues/jobs/lease", "/leases/42.1.9f86d081884c7d65/ack", "/queues/jobs/items"} {
		reqs = append(reqs, httptest.NewRequest("POST", target, nil))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		need(reqs[i%len(reqs)])
	}
}
