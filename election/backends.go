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
// built in whether or not it is wired (its settings are Config.Raft, so
// this package links it anyway).
func Raft() BackendFactory {
	return BackendFactory{Name: BackendRaft, New: func(cfg Config) (Backend, error) {
		return raft.New(cfg.Raft)
	}}
}

// newBackend builds the backend cfg.Backend names, from cfg.Backends, or
// raft, which is built in.
func newBackend(cfg Config) (Backend, error) {
	backends := append(slices.Clip(cfg.Backends), Raft())
	i := slices.IndexFunc(backends, func(f BackendFactory) bool { return f.Name == cfg.Backend })
	if i < 0 {
		return nil, fmt.Errorf("--backend: backend %q is not built in", cfg.Backend)
	}
	return backends[i].New(cfg)
}
