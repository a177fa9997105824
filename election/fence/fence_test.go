package fence

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMiddleware(t *testing.T) {
	f := New(10)
	h := Middleware(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	tests := []struct {
		header     string
		set        bool
		wantCode   int
		wantInBody string
	}{
		{set: false, wantCode: 400, wantInBody: "missing X-Leader-Epoch"},
		{header: "abc", set: true, wantCode: 400, wantInBody: `epoch \"abc\" is not a decimal number`},
		{header: "-1", set: true, wantCode: 400, wantInBody: "not a decimal"},
		{header: "0", set: true, wantCode: 400, wantInBody: "epoch 0"},
		{header: "9", set: true, wantCode: 409, wantInBody: `"highest":10`},
		{header: "10", set: true, wantCode: 204},
		{header: " 12 ", set: true, wantCode: 204},
		{header: "11", set: true, wantCode: 409, wantInBody: "stale epoch 11: epoch 12 has been seen"},
		{header: "18446744073709551616", set: true, wantCode: 400},
	}
	for _, tc := range tests {
		t.Run(tc.header, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", nil)
			if tc.set {
				req.Header.Set(Header, tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantInBody) {
				t.Errorf("%q: %d %s; want %d containing %q", tc.header, rec.Code, rec.Body.String(), tc.wantCode, tc.wantInBody)
			}
		})
	}
	if f.Highest() != 12 {
		t.Errorf("Highest = %d, want 12", f.Highest())
	}
}

func TestStaleError(t *testing.T) {
	f := New(5)
	err := f.Check(4)
	var se *StaleError
	if !errors.Is(err, ErrStale) || !errors.As(err, &se) || se.Epoch != 4 || se.Highest != 5 {
		t.Fatalf("Check(4) = %v", err)
	}
}

// TestGuardOrders: a higher epoch is admitted only after the work of a
// lower one is released, and the lower one is refused from then on.
func TestGuardOrders(t *testing.T) {
	f := &Fence{}
	release, err := f.Guard(1)
	if err != nil {
		t.Fatal(err)
	}
	var admitted2 atomic.Bool
	done := make(chan struct{})
	go func() {
		r2, err := f.Guard(2)
		if err != nil {
			t.Error(err)
		} else {
			admitted2.Store(true)
			r2()
		}
		close(done)
	}()
	// Another epoch-1 request still runs while 2 waits for the first.
	time.Sleep(20 * time.Millisecond)
	if admitted2.Load() {
		t.Fatal("epoch 2 admitted while epoch 1 work was held")
	}
	release()
	<-done
	if err := f.Check(1); !errors.Is(err, ErrStale) {
		t.Errorf("epoch 1 after epoch 2: %v, want stale", err)
	}
}

func TestPersist(t *testing.T) {
	var stored []uint64
	fail := false
	f := &Fence{Persist: func(e uint64) error {
		if fail {
			return errors.New("disk full")
		}
		stored = append(stored, e)
		return nil
	}}
	for _, e := range []uint64{3, 3, 5} {
		if err := f.Check(e); err != nil {
			t.Fatal(err)
		}
	}
	fail = true
	if err := f.Check(6); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Check(6) with failing Persist = %v", err)
	}
	if f.Highest() != 5 || len(stored) != 2 {
		t.Errorf("highest %d, stored %v", f.Highest(), stored)
	}
}

func TestConcurrent(t *testing.T) {
	f := &Fence{}
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for e := uint64(1); e <= 50; e++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if release, err := f.Guard(e); err == nil {
				mu.Lock()
				order = append(order, e)
				mu.Unlock()
				release()
			}
		}()
	}
	wg.Wait()
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Fatalf("admitted out of order: %v", order)
		}
	}
}

func FuzzParseEpoch(f *testing.F) {
	for _, s := range []string{"1", "0", " 42 ", "-1", "abc", "18446744073709551615", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseEpoch(s)
		if err == nil && n == 0 {
			t.Fatalf("ParseEpoch(%q) accepted 0", s)
		}
	})
}
