package container

import (
	"fmt"
	"net"
	"sync/atomic"
)

// Listen returns the listener a component serves on: injected when it is
// non-nil (a Config.Listener, or the admin listener given in Options),
// used as it is; otherwise a new TCP listener on addr.
//
// A failure to listen is reported as "<flag>: <net.Listen's error>", where
// flag names the setting the way the component's message always has:
// "--listen", or "--listen "+addr for the components whose message also
// repeats the address (net.Listen's error names it either way).
func Listen(flag, addr string, injected net.Listener) (net.Listener, error) {
	if injected != nil {
		return injected, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return ln, nil
}

// BoundAddr holds the bound address of a component's listener, for its
// Addr method (or ProxyAddr, StatsAddr, ...): nil until Set, then the
// listener's address. The zero value is ready to use, and it is safe for
// concurrent use: Run sets it while tests and callers poll it. It must not
// be copied after first use.
type BoundAddr struct {
	addr atomic.Pointer[net.Addr]
}

// Set records ln's address.
func (b *BoundAddr) Set(ln net.Listener) {
	a := ln.Addr()
	b.addr.Store(&a)
}

// Addr returns the address recorded by Set, or nil before it.
func (b *BoundAddr) Addr() net.Addr {
	if a := b.addr.Load(); a != nil {
		return *a
	}
	return nil
}
