package election

import (
	"fmt"
	"slices"

	"github.com/podkit/podkit/election/raft"
)

// A BackendFactory is a backend that Config.Backend can name: New makes it
// from the elector's configuration (the backend's section of Config).
// The program wires the backends it links (cmd/podkit wires raft, etcd and
// kubernetes, see package election/backends), so that importing this
// package links no etcd or Kubernetes client.
type BackendFactory struct {
	Name string
	New  func(Config) (Backend, error)
}

// Raft is the raft backend, embedded among the electors: the default,
// available whether or not it is wired (its settings are Config.Raft).
func Raft() BackendFactory {
	return BackendFactory{Name: BackendRaft, New: func(cfg Config) (Backend, error) {
		return raft.New(cfg.Raft)
	}}
}

// newBackend builds the backend cfg.Backend names, from cfg.Backends (or
// raft alone when none are wired).
func newBackend(cfg Config) (Backend, error) {
	backends := cfg.Backends
	if backends == nil {
		backends = []BackendFactory{Raft()}
	}
	i := slices.IndexFunc(backends, func(f BackendFactory) bool { return f.Name == cfg.Backend })
	if i < 0 {
		return nil, fmt.Errorf("--backend: backend %q is not built in", cfg.Backend)
	}
	return backends[i].New(cfg)
}
