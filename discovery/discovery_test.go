package discovery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseStatic(t *testing.T) {
	tests := []struct {
		in   string
		want []Endpoint
	}{
		{"static:10.0.0.2:6379,10.0.0.1:6379", []Endpoint{
			{Host: "10.0.0.1", Port: 6379, Weight: 1, Ready: true, Serving: true},
			{Host: "10.0.0.2", Port: 6379, Weight: 1, Ready: true, Serving: true},
		}},
		{"static:redis-0.redis:6379;weight=3;zone=eu-1a", []Endpoint{
			{Host: "redis-0.redis", Port: 6379, Weight: 3, Zone: "eu-1a", Ready: true, Serving: true},
		}},
		{"static:[::1]:80, [::1]:81", []Endpoint{
			{Host: "::1", Port: 80, Weight: 1, Ready: true, Serving: true},
			{Host: "::1", Port: 81, Weight: 1, Ready: true, Serving: true},
		}},
		// The same address twice is one endpoint; the first one wins.
		{"static:a:1;weight=2,a:1;weight=5", []Endpoint{
			{Host: "a", Port: 1, Weight: 2, Ready: true, Serving: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			src, err := Parse(tc.in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if src.Kind() != "static" || src.String() != tc.in {
				t.Fatalf("Kind, String = %q, %q", src.Kind(), src.String())
			}
			got := first(t, src)
			if !got.Equal(Set{Endpoints: tc.want}) {
				t.Fatalf("got %+v\nwant %+v", got.Endpoints, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "want KIND:SPEC"},
		{"redis:6379", `unknown kind "redis"`},
		{"static:", "want KIND:SPEC"},
		{"static:10.0.0.1", "want HOST:PORT"},
		{"static:10.0.0.1:0", "not a number in 1..65535"},
		{"static:10.0.0.1:65536", "not a number in 1..65535"},
		{"static:10.0.0.1:http", "not a number in 1..65535"},
		{"static::80", "host is empty"},
		{"static:bad host:80", "neither an IP address nor a host name"},
		{"static:a:1,,b:2", "empty entry"},
		{"static:a:1;weight=0", "weight"},
		{"static:a:1;weight=x", "weight"},
		{"static:a:1;zone=", "zone is empty"},
		{"static:a:1;color=red", `unknown attribute "color"`},
		{"static:-a:1", "neither an IP address nor a host name"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBadSource mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRoutable(t *testing.T) {
	ready := Endpoint{Host: "10.0.0.1", Port: 1, Ready: true, Serving: true}
	draining := Endpoint{Host: "10.0.0.2", Port: 1, Serving: true, Terminating: true}
	dead := Endpoint{Host: "10.0.0.3", Port: 1, Terminating: true}
	notReady := Endpoint{Host: "10.0.0.4", Port: 1}
	tests := []struct {
		name string
		in   []Endpoint
		want []Endpoint
	}{
		{"ready ones only, while any is ready", []Endpoint{ready, draining, dead, notReady}, []Endpoint{ready}},
		{"serving terminating ones when none is ready", []Endpoint{draining, dead, notReady}, []Endpoint{draining}},
		{"nothing serving: nothing", []Endpoint{dead, notReady}, nil},
		{"empty", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Set{Endpoints: tc.in}.Routable()
			if !(Set{Endpoints: got}).Equal(Set{Endpoints: tc.want}) {
				t.Fatalf("Routable = %v, want %v", got, tc.want)
			}
		})
	}
	r, s, term := Set{Endpoints: []Endpoint{ready, draining, dead, notReady}}.Counts()
	if r != 1 || s != 1 || term != 2 {
		t.Fatalf("Counts = %d %d %d, want 1 1 2", r, s, term)
	}
}

// recorder is a Receiver that keeps what it is told.
type recorder struct {
	sets chan Set
	errs chan error
}

func newRecorder() *recorder {
	return &recorder{sets: make(chan Set, 100), errs: make(chan error, 100)}
}

func (r *recorder) Update(s Set)     { r.sets <- s }
func (r *recorder) Failed(err error) { r.errs <- err }

// first runs src until its first set.
func first(t *testing.T, src Source) Set {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRecorder()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, r) }()
	select {
	case s := <-r.sets:
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v after cancel, want nil", err)
		}
		return s
	case err := <-r.errs:
		t.Fatalf("Failed(%v) before any set", err)
	case err := <-done:
		t.Fatalf("Run returned %v before any set", err)
	case <-time.After(time.Minute):
		t.Fatal("no set within a minute")
	}
	return Set{}
}
