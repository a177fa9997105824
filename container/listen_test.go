package container

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
)

func TestListenUsesTheInjectedListener(t *testing.T) {
	injected, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer injected.Close()
	// The address is not even parsed: the injected listener wins.
	ln, err := Listen("--listen", "not an address", injected)
	if err != nil {
		t.Fatalf("Listen with an injected listener: %v", err)
	}
	if ln != injected {
		t.Fatalf("Listen returned %v, want the injected listener itself", ln)
	}
}

func TestListenOpensTCP(t *testing.T) {
	ln, err := Listen("--listen", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.Port == 0 || !a.IP.IsLoopback() {
		t.Fatalf("Addr() = %v, want a bound 127.0.0.1 TCP port", ln.Addr())
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialing the listener: %v", err)
	}
	c.Close()
}

func TestListenError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	tests := []struct {
		flag, addr string
		prefix     string // the message starts with it
		contains   string
	}{
		// The message names the setting as flag gives it, then net.Listen's
		// error, which names the address.
		{"--listen", addr, "--listen: listen tcp " + addr + ": ", "address already in use"},
		{"--admin-addr " + addr, addr, "--admin-addr " + addr + ": listen tcp " + addr + ": ", "address already in use"},
		{"--proxy-listen", "nope", "--proxy-listen: listen tcp: ", "nope"},
	}
	for _, tt := range tests {
		ln, err := Listen(tt.flag, tt.addr, nil)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q, %q): no error", tt.flag, tt.addr)
			continue
		}
		if ln != nil {
			t.Errorf("Listen(%q, %q) returned a listener with its error", tt.flag, tt.addr)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, tt.prefix) || !strings.Contains(msg, tt.contains) {
			t.Errorf("Listen(%q, %q) error %q, want it to start with %q and contain %q", tt.flag, tt.addr, msg, tt.prefix, tt.contains)
		}
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Errorf("Listen(%q, %q) error %q does not wrap net.Listen's *net.OpError", tt.flag, tt.addr, err)
		}
	}
}

func TestBoundAddr(t *testing.T) {
	var b BoundAddr
	if a := b.Addr(); a != nil {
		t.Fatalf("zero BoundAddr: Addr() = %v, want nil", a)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b.Set(ln)
	if a := b.Addr(); a == nil || a.String() != ln.Addr().String() {
		t.Fatalf("after Set: Addr() = %v, want %v", a, ln.Addr())
	}
}

// TestBoundAddrConcurrent: Run sets the address while callers poll it (run
// it under -race).
func TestBoundAddrConcurrent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := ln.Addr().String()
	var b BoundAddr
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if a := b.Addr(); a != nil && a.String() != want {
					t.Errorf("Addr() = %v, want nil or %v", a, want)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			b.Set(ln)
		}
	})
	wg.Wait()
	if a := b.Addr(); a == nil || a.String() != want {
		t.Fatalf("after the writers: Addr() = %v, want %v", a, want)
	}
}
