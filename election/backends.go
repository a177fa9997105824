package election

import (
	"fmt"

	"github.com/podkit/podkit/election/etcd"
	"github.com/podkit/podkit/election/kube"
	"github.com/podkit/podkit/election/raft"
)

// newBackend builds the backend cfg.Backend names.
func newBackend(cfg Config) (Backend, error) {
	switch cfg.Backend {
	case BackendRaft:
		return raft.New(cfg.Raft)
	case BackendEtcd:
		b, err := etcd.New(etcd.Config{
			Endpoints: cfg.Etcd.endpoints(),
			CAFile:    cfg.Etcd.CAFile,
			CertFile:  cfg.Etcd.CertFile,
			KeyFile:   cfg.Etcd.KeyFile,
			Prefix:    "/podkit/elect/" + cfg.Election + "/",
			TTL:       cfg.Etcd.TTL,
		})
		if err != nil {
			return nil, fmt.Errorf("--backend etcd: %w", err)
		}
		return b, nil
	case BackendKubernetes:
		b, err := kube.New(kube.Config{
			Name:          cfg.Election,
			Namespace:     cfg.Kubernetes.Namespace,
			Kubeconfig:    cfg.Kubernetes.Kubeconfig,
			LeaseDuration: cfg.Kubernetes.LeaseDuration,
			RenewDeadline: cfg.Kubernetes.RenewDeadline,
			RetryPeriod:   cfg.Kubernetes.RetryPeriod,
		})
		if err != nil {
			return nil, fmt.Errorf("--backend kubernetes: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("--backend: backend %q is not built in", cfg.Backend)
}
