package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		p    Policy
		want []time.Duration
	}{
		{"zero policy", Policy{}, []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms}},
		{"own bounds", Policy{Initial: 100 * ms, Max: 2 * time.Second}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms}},
		{"constant", Policy{Initial: 50 * ms, Multiplier: 1}, []time.Duration{50 * ms, 50 * ms, 50 * ms}},
		{"triple", Policy{Initial: ms, Multiplier: 3, Max: 20 * ms}, []time.Duration{ms, 3 * ms, 9 * ms, 20 * ms}},
		{"max below initial", Policy{Initial: time.Second, Max: ms}, []time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, want := range tt.want {
				if got := tt.p.Delay(i + 1); got != want {
					t.Errorf("Delay(%d) = %s, want %s", i+1, got, want)
				}
			}
		})
	}
	// Far past the cap the loop stops growing: no overflow.
	if got := (Policy{}).Delay(1 << 20); got != DefaultMax {
		t.Errorf("Delay(1<<20) = %s, want %s", got, DefaultMax)
	}
}

func TestJitter(t *testing.T) {
	for _, j := range []float64{0.2, 0.5, 1, 7} {
		p := Policy{Initial: time.Second, Max: time.Second, Jitter: j}
		lo := time.Duration(float64(time.Second) * (1 - min(j, 1)))
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(3)
			if d < lo || d > time.Second {
				t.Fatalf("Jitter %v: delay %s outside [%s, 1s]", j, d, lo)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("Jitter %v: every delay was the same", j)
		}
	}
}

func TestBackoffBudget(t *testing.T) {
	b := NewBackoff(Policy{Initial: time.Millisecond, Attempts: 3})
	for i := 1; i <= 2; i++ {
		if _, ok := b.Next(); !ok {
			t.Fatalf("Next after failure %d: budget spent, want a delay (3 attempts)", i)
		}
	}
	if _, ok := b.Next(); ok {
		t.Fatal("Next after the 3rd failure: want the budget spent")
	}
	if b.Failures() != 3 {
		t.Fatalf("Failures = %d, want 3", b.Failures())
	}
	b.Reset()
	if d, ok := b.Next(); !ok || d != time.Millisecond {
		t.Fatalf("after Reset: Next = %s, %v; want the first delay again", d, ok)
	}

	e := NewBackoff(Policy{Initial: time.Hour, MaxElapsed: 20 * time.Millisecond})
	d, ok := e.Next()
	if !ok || d > 20*time.Millisecond {
		t.Fatalf("MaxElapsed: Next = %s, %v; want a delay cut to what is left of 20ms", d, ok)
	}
	time.Sleep(25 * time.Millisecond)
	if _, ok := e.Next(); ok {
		t.Fatal("MaxElapsed passed: want the budget spent")
	}
}

func TestDo(t *testing.T) {
	fast := Policy{Initial: time.Microsecond, Max: time.Microsecond}
	errFail := errors.New("fail")

	t.Run("succeeds after failures", func(t *testing.T) {
		var calls []int
		n, err := Do(context.Background(), fast, func(_ context.Context, attempt int) error {
			calls = append(calls, attempt)
			if attempt < 3 {
				return errFail
			}
			return nil
		})
		if err != nil || n != 3 || fmt.Sprint(calls) != "[1 2 3]" {
			t.Fatalf("Do = %d, %v (calls %v); want 3, nil, [1 2 3]", n, err, calls)
		}
	})
	t.Run("attempts cap", func(t *testing.T) {
		p := fast
		p.Attempts = 4
		calls := 0
		n, err := Do(context.Background(), p, func(context.Context, int) error { calls++; return errFail })
		if !errors.Is(err, errFail) || n != 4 || calls != 4 {
			t.Fatalf("Do = %d, %v (%d calls); want 4, fail", n, err, calls)
		}
	})
	t.Run("permanent", func(t *testing.T) {
		calls := 0
		n, err := Do(context.Background(), fast, func(context.Context, int) error { calls++; return Permanent(errFail) })
		if err != errFail || n != 1 || calls != 1 {
			t.Fatalf("Do = %d, %v (%d calls); want 1 and the unwrapped error", n, err, calls)
		}
		wrapped := fmt.Errorf("op: %w", Permanent(errFail))
		_, err = Do(context.Background(), fast, func(context.Context, int) error { return wrapped })
		if err != wrapped {
			t.Fatalf("Do = %v, want the caller's wrapping kept", err)
		}
		if Permanent(nil) != nil {
			t.Fatal("Permanent(nil) != nil")
		}
	})
	t.Run("context ends during a wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		n, err := Do(ctx, Policy{Initial: time.Hour}, func(context.Context, int) error { cancel(); return errFail })
		if !errors.Is(err, errFail) || n != 1 || ctx.Err() == nil {
			t.Fatalf("Do = %d, %v; want 1 attempt and the op's error", n, err)
		}
	})
	t.Run("called once with an ended context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := 0
		n, err := Do(ctx, Policy{}, func(context.Context, int) error { calls++; return nil })
		if err != nil || n != 1 || calls != 1 {
			t.Fatalf("Do = %d, %v (%d calls); want one attempt", n, err, calls)
		}
	})
}

func TestRequest(t *testing.T) {
	var hits atomic.Int32
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.Header.Get("Content-Type") + " " + string(b))
		switch r.URL.Path {
		case "/flaky":
			if n < 3 {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
		case "/teapot":
			http.Error(w, "short and stout", http.StatusTeapot)
			return
		case "/created":
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	fast := Policy{Initial: time.Microsecond, Attempts: 5}

	t.Run("retried until accepted", func(t *testing.T) {
		hits.Store(0)
		r := Request{Client: srv.Client(), URL: srv.URL + "/flaky", Body: []byte(`{"a":1}`), Header: http.Header{"Content-Type": {"application/json"}}}
		n, err := r.Do(context.Background(), fast)
		if err != nil || n != 3 {
			t.Fatalf("Do = %d, %v; want 3, nil", n, err)
		}
		if g := got.Load(); g != `POST application/json {"a":1}` {
			t.Fatalf("server saw %q", g)
		}
	})
	t.Run("status error", func(t *testing.T) {
		hits.Store(0)
		r := Request{URL: srv.URL + "/teapot"}
		n, err := r.Do(context.Background(), fast)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusTeapot || n != 5 {
			t.Fatalf("Do = %d, %v; want 5 attempts and a StatusError 418", n, err)
		}
		if want := srv.URL + "/teapot answered 418 I'm a teapot"; err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
		if !strings.Contains(string(se.Body), "short and stout") {
			t.Fatalf("Body = %q", se.Body)
		}
	})
	t.Run("final status", func(t *testing.T) {
		hits.Store(0)
		r := Request{URL: srv.URL + "/teapot", Final: func(code int) bool { return code/100 == 4 }}
		n, err := r.Do(context.Background(), fast)
		if err == nil || n != 1 || hits.Load() != 1 {
			t.Fatalf("Do = %d, %v (%d hits); want one attempt", n, err, hits.Load())
		}
	})
	t.Run("accept", func(t *testing.T) {
		r := Request{Method: http.MethodPut, URL: srv.URL + "/created", Accept: func(c int) bool { return c == http.StatusNoContent }}
		if err := r.Once(context.Background()); err == nil {
			t.Fatal("201 accepted, want only 204")
		}
		if g := got.Load(); g != "PUT  " {
			t.Fatalf("server saw %q", g)
		}
		r.Accept = func(c int) bool { return c == http.StatusCreated }
		if err := r.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("transport error", func(t *testing.T) {
		r := Request{URL: "http://127.0.0.1:1/", Timeout: 5 * time.Second}
		n, err := r.Do(context.Background(), Policy{Initial: time.Microsecond, Attempts: 2})
		if err == nil || n != 2 {
			t.Fatalf("Do = %d, %v; want 2 attempts and an error", n, err)
		}
		if _, ok := err.(*StatusError); ok {
			t.Fatalf("error %v is a StatusError", err)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		if err := (Request{URL: "http://[::1"}).Once(context.Background()); err == nil {
			t.Fatal("want an error")
		}
	})
}
