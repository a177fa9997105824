package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: "tcp://127.0.0.1:6379"},
		{in: "tcp://db:5432"},
		{in: "http://127.0.0.1:8080/healthz"},
		{in: "https://app.local/ready"},
		{in: "ftp://x", wantErr: `unknown scheme "ftp"`},
		{in: "127.0.0.1:80", wantErr: "scheme"},
		{in: "tcp://nohost", wantErr: "want tcp://host:port"},
		{in: "tcp://h:1/path", wantErr: "want tcp://host:port"},
		{in: "http://", wantErr: "missing host"},
		{in: "localhost", wantErr: "missing scheme"},
		{in: "http://[::1", wantErr: "bad target"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v", tt.in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadTarget) {
				t.Fatalf("Parse(%q) = %v, want ErrBadTarget containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestCheckAndWait(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	ctx := context.Background()
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{ok.URL, true},
		{tlsSrv.URL, true},
		{bad.URL, false},
		{"tcp://" + strings.TrimPrefix(ok.URL, "http://"), true},
		{"tcp://" + closedAddr, false},
	} {
		tg, err := Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = tg.Check(cctx)
		cancel()
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v, want ok=%v", tc.target, err, tc.ok)
		}
	}

	// Wait returns once a late listener appears.
	late, _ := Parse("tcp://" + closedAddr)
	fails := 0
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", closedAddr)
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := Wait(wctx, []Target{late}, 50*time.Millisecond, func(Target, error) { fails++ }); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if fails == 0 {
		t.Error("Wait reported no failed attempt before the listener appeared")
	}

	// Wait ends with the context.
	never, _ := Parse(bad.URL)
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer scancel()
	if err := Wait(sctx, []Target{never}, 20*time.Millisecond, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want deadline exceeded", err)
	}
	// ... and names the target that never answered, with its last error.
	var we *WaitError
	err = Wait(sctx, []Target{never}, 20*time.Millisecond, nil)
	if !errors.As(err, &we) || len(we.Pending) != 1 || we.Pending[0] != never {
		t.Fatalf("Wait = %#v, want a *WaitError naming %s", err, never)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, bad.URL+" never answered") {
		t.Errorf("error %q does not begin with the target", msg)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"tcp://a:1", "http://x/y", "https://[::1]:8443/", "ftp://x", "", "tcp://", "http://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := Parse(s)
		if err == nil && tg.String() != s {
			t.Fatalf("String() = %q, want %q", tg.String(), s)
		}
	})
}
