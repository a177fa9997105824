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
	if base < 10000 || base+40 > 32768 {
		t.Fatalf("base %d: the range is not within 10000-32767", base)
	}
	for i := range 40 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		if err != nil {
			t.Fatalf("port %d of the range: %v", base+i, err)
		}
		ln.Close()
	}
	if _, _, err := net.SplitHostPort(FreePort(t)); err != nil {
		t.Fatal(err)
	}
}
