package testdeps

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortRange: the ports are free and below the ephemeral range,
// where a busy machine's outgoing connections do not take them.
func TestFreePortRange(t *testing.T) {
	base := FreePortRange(t, 40)
	if base < freeLow || base+40 > freeHigh {
		t.Fatalf("base %d: the range is not within 10000-32767", base)
	}
	for i := range 40 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		if err != nil {
			t.Fatalf("port %d of the range: %v", base+i, err)
		}
		ln.Close()
	}
}

// TestFreePort: the port is free, and below the ephemeral range.
func TestFreePort(t *testing.T) {
	addr := FreePort(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := strconv.Atoi(port); p < freeLow || p >= freeHigh {
		t.Errorf("FreePort = %s, want a port from %d to %d", addr, freeLow, freeHigh-1)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
