// Package backends wires election's backends that link a client library:
// etcd (concurrency.Election, go.etcd.io) and kubernetes (a
// coordination.k8s.io Lease, client-go). A program passes the ones it
// wants to election.Command (or sets election.Config.Backends); importing
// package election alone links neither client.
package backends

import (
	"fmt"

	"github.com/podkit/podkit/election"
	"github.com/podkit/podkit/election/etcd"
	"github.com/podkit/podkit/election/kube"
)

// All returns every backend: raft, etcd and kubernetes.
func All() []election.BackendFactory {
	return []election.BackendFactory{election.Raft(), Etcd(), Kubernetes()}
}

// Etcd is the etcd backend, configured by election.Config.Etcd; the
// election's keys are under /podkit/elect/<election>/.
func Etcd() election.BackendFactory {
	return election.BackendFactory{Name: election.BackendEtcd, New: func(cfg election.Config) (election.Backend, error) {
		b, err := etcd.New(etcd.Config{
			Endpoints: cfg.Etcd.EndpointList(),
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
	}}
}

// Kubernetes is the kubernetes backend, configured by
// election.Config.Kubernetes; the Lease is named after the election.
func Kubernetes() election.BackendFactory {
	return election.BackendFactory{Name: election.BackendKubernetes, New: func(cfg election.Config) (election.Backend, error) {
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
	}}
}
