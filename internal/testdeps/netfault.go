package testdeps

import (
	"io"
	"net"
	"sync"
	"testing"
)

// TCPServer is a loopback TCP server that hands each connection it
// accepts to a function of the test's: a backend written byte by byte, or
// one that misbehaves on purpose (never answers, resets, truncates).
type TCPServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// ServeTCP listens on 127.0.0.1:0 and runs serve for each accepted
// connection in its own goroutine, closing the connection when serve
// returns. When the test ends the server stops accepting, closes the
// connections still open and waits for every serve to return, so serve
// must return once its connection is closed.
func ServeTCP(t testing.TB, serve func(net.Conn)) *TCPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &TCPServer{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// Addr is the server's host:port.
func (s *TCPServer) Addr() string { return s.ln.Addr().String() }

// Wait stops accepting and waits for the connections being served to
// end by themselves (the client closes them, or serve returns).
func (s *TCPServer) Wait() {
	s.ln.Close()
	s.wg.Wait()
}

// SilentTCP is a server that accepts connections and never answers: what
// it reads is discarded, and a connection stays open until the client
// closes it or the test ends. It returns the server's host:port.
func SilentTCP(t testing.TB) string {
	t.Helper()
	return ServeTCP(t, func(c net.Conn) { io.Copy(io.Discard, c) }).Addr()
}
