package main

import (
	"flag"
	"io"
	"net"
	"testing"
)

// TestListenDefaults holds every command's --listen default to the listen
// rule (docs/security.md, docs/container.md): every plaintext API binds
// loopback by default, and opening it to other pods is written down
// (--listen 0.0.0.0:PORT with TLS, tokens or --insecure-listen); the TLS
// front door binds every interface, since TLS is what it is for; a
// command whose traffic address has no sensible default has none. A new
// command with --listen must be placed here.
func TestListenDefaults(t *testing.T) {
	const (
		all      = "every interface"
		loopback = "loopback"
		none     = "no default"
	)
	want := map[string]string{
		"tls-proxy":  all,      // the pod's HTTPS front door, TLS by construction
		"metrics":    loopback, // opened for Prometheus with --listen 0.0.0.0:9113
		"health":     loopback, // opened for the kubelet with --listen 0.0.0.0:8008
		"queue":      loopback, // opened for workers with --listen 0.0.0.0:8080 and TLS or tokens
		"elect":      loopback, // the application beside it asks who leads
		"topz":       loopback, // shows command lines, which may hold secrets
		"sample-app": loopback, // a stand-in application for the demo and tests
		"shard":      none,     // nutcracker.yml names each pool's listen address
		"broker":     none,     // the application's own port for its upstream (127.0.0.1:6379, say)
	}
	seen := map[string]bool{}
	for _, c := range commands() {
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.Setup(fs)
		f := fs.Lookup("listen")
		if f == nil {
			continue
		}
		seen[c.Name] = true
		class, ok := want[c.Name]
		if !ok {
			t.Errorf("podkit %s has --listen (default %q) but no place in the rule: add it here and to docs/container.md", c.Name, f.DefValue)
			continue
		}
		if got := classOf(f.DefValue); got != class {
			t.Errorf("podkit %s --listen defaults to %q (%s), want %s", c.Name, f.DefValue, got, class)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("podkit %s: no --listen flag found", name)
		}
	}
}

func classOf(addr string) string {
	if addr == "" {
		return "no default"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "unparsable"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "every interface"
	}
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return "loopback"
	}
	return "a fixed address " + host
}
