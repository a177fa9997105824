package broker

import (
	"net"
)

// httpMode is an http upstream's engine (one per generation).
type httpMode struct {
	b *Broker
	g *gen
}

func (b *Broker) newHTTP(g *gen) *httpMode { return &httpMode{b: b, g: g} }

func (h *httpMode) serve(s *svc, c net.Conn) {}
func (h *httpMode) forget(addr string)       {}
func (h *httpMode) drain()                   {}
func (h *httpMode) closeIdle()               {}
