package election

import (
	"fmt"

	"github.com/podkit/podkit/election/raft"
)

// newBackend builds the backend cfg.Backend names.
func newBackend(cfg Config) (Backend, error) {
	switch cfg.Backend {
	case BackendRaft:
		return raft.New(cfg.Raft)
	}
	return nil, fmt.Errorf("--backend: backend %q is not built in", cfg.Backend)
}
